"""SAML tokens: what an assertion says (:mod:`~sts.tokens.base`), the SAML 1.1 and 2.0 builders, the token
provider that makes one signed and protected token (:mod:`~sts.tokens.provider`), and the strict verifier of
assertions handed back to the STS (:mod:`~sts.tokens.validation`). Signing and encryption live in :mod:`sts.crypto`.
"""
