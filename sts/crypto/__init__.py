"""The hazmat layer: the only package importing signxml, xmlsec and ``cryptography.hazmat``."""
