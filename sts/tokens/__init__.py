"""SAML 1.1 and 2.0 assertion builders (unsigned; signing and encryption live in :mod:`sts.crypto`)."""
