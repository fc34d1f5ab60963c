"""Caller authentication: passwords, the user stores and their router, and the credential validators."""
