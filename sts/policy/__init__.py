"""Issuance policy: which claims, which validity window, which subject for which relying party."""
