"""The token lifecycle bindings: Validate, Renew and Cancel (WS-Trust 1.3 §5-§7; wstrust-protocol.md §10-§11)."""
