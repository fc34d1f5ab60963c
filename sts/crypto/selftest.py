"""Boot-time crypto round trip: sign/verify and encrypt/decrypt with the configured keys.

It catches the lxml/xmlsec libxml2 mismatch (python-xmlsec #320, #351, #352) and broken key material at deploy
time instead of on the first request.
"""

from __future__ import annotations

import secrets

from lxml import etree

from sts import ns
from sts.crypto.decrypter import TokenDecrypter
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keystore import KeyStore
from sts.crypto.signer import AssertionSigner
from sts.crypto.verifier import verify_enveloped


def run_selftest(keystore: KeyStore) -> list[str]:
    """Return a list of problems (empty when every round trip works)."""
    problems: list[str] = []
    assertion_id = "_" + secrets.token_hex(20)
    assertion = etree.Element(ns.qn(ns.SAML2, "Assertion"), nsmap={"saml2": ns.SAML2}, ID=assertion_id)
    etree.SubElement(assertion, ns.qn(ns.SAML2, "Issuer")).text = "self-test"
    try:
        signed = AssertionSigner(keystore.signing_key, keystore.signing_cert).sign_saml2(assertion)
        verify_enveloped(signed, "ID", (keystore.signing_cert,))
    except Exception as exc:  # report, never crash the check
        problems.append(f"self-test: sign/verify failed ({type(exc).__name__})")
        return problems
    if getattr(keystore.signing_key, "in_hsm", False):
        return problems  # decrypting needs the private key, which never leaves the token
    try:
        encrypted = TokenEncrypter(keystore.signing_cert, EncryptionPolicy()).encrypt(signed)
        decrypted = TokenDecrypter(keystore.signing_key).decrypt(encrypted)
        verify_enveloped(decrypted, "ID", (keystore.signing_cert,))
    except Exception as exc:
        problems.append(f"self-test: encrypt/decrypt failed ({type(exc).__name__})")
    return problems
