"""Caller authentication: passwords, the user store, lockout and credential validators."""
