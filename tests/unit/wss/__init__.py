"""Unit tests for sts.wss (WS-Security inbound processing)."""
