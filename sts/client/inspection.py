"""Inspecting a token as its relying party would: decrypt it with the RP's key, verify its signature against the
pinned STS certificate with the verifier the STS itself uses for Validate (:mod:`sts.tokens.validation`: one
enveloped signature naming the assertion, no nested assertion, only what is signed is read), and say what the
*signed* assertion states. Token files are untrusted: size and parser limits apply, before and after decryption.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from lxml import etree

from sts import ns
from sts.client.assertion_rows import Rows, assertion_rows
from sts.client.errors import ClientError, clean
from sts.client.options import InspectOptions
from sts.client.response import RESPONSE_LIMITS, find_issued_token
from sts.client.tokenfile import read_token_file
from sts.crypto.decrypter import DecryptionRejected, TokenDecrypter
from sts.crypto.keygen import RSAPrivateKey, load_private_key
from sts.crypto.keystore import load_certificate
from sts.errors import MalformedMessage
from sts.tokens.validation import AssertionRejected, VerifiedAssertion, saml_version, verify_assertion
from sts.xmlutil import parse_untrusted

_ENCRYPTED = (ns.qn(ns.SAML2, "EncryptedAssertion"), ns.qn(ns.XENC, "EncryptedData"))
# Why the verifier refused the assertion, in words (its reasons are codes meant for the audit log).
_REJECTIONS = {
    "not_an_assertion": "not a SAML assertion",
    "nested_assertion": "the assertion holds another assertion",
    "bad_signature": "no trusted certificate verifies the signature",
    "signed_element_mismatch": "the signature does not cover the assertion",
    "bad_conditions": "unreadable NotBefore/NotOnOrAfter",
}


class DecryptionKeyNeeded(ClientError):
    """The token is encrypted and no relying-party key was given."""


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a token file holds: whether it was encrypted, the certificate it was checked against, and either the
    verified assertion with what it says (``rows``, values as signed, not yet escaped) or why it was refused."""

    encrypted: bool
    certificate: x509.Certificate
    assertion: VerifiedAssertion | None
    rows: Rows
    rejection: str = ""

    @property
    def valid(self) -> bool:
        """Whether the verifier accepted the assertion: signed by the pinned certificate, in the shape it requires."""
        return self.assertion is not None


def inspect_token(options: InspectOptions) -> Inspection:
    """Read, decrypt and verify the token in ``options.token_file``."""
    token, encrypted = load_token(options)
    certificate_path = options.sts_certificate
    if not isinstance(certificate_path, Path):
        certificate_path = certificate_path()
    certificate = load_certificate_file(certificate_path)
    try:
        verified = verify_assertion(token, (certificate,))
    except AssertionRejected as exc:
        rejection = _REJECTIONS.get(exc.reason, exc.reason)
        return Inspection(encrypted, certificate, None, (), rejection)
    return Inspection(encrypted, certificate, verified, assertion_rows(verified, dt.datetime.now(dt.UTC)))


def load_token(options: InspectOptions) -> tuple[etree._Element, bool]:
    """The SAML assertion in a token or response file, decrypted with the RP key if encrypted; and whether it was."""
    path = options.token_file
    token = _locate_token(read_token_file(path))
    if token is None:
        raise ClientError(f"{path}: no Assertion, EncryptedAssertion or EncryptedData found")
    encrypted = token.tag in _ENCRYPTED
    if encrypted:
        token = _decrypt(token, options)
    if saml_version(token) is None:
        raise ClientError(f"not a SAML assertion: {clean(str(token.tag))}")
    return token, encrypted


def load_certificate_file(path: Path) -> x509.Certificate:
    """A certificate (PEM or DER) from a file: the STS's to verify with, or a client's for ``UseKey``."""
    try:
        return load_certificate(path)
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ClientError(f"{path}: not a PEM or DER certificate") from None


def _locate_token(root: etree._Element) -> etree._Element | None:
    if saml_version(root) is not None or root.tag in _ENCRYPTED:
        return root
    return find_issued_token(root)


def _decrypt(token: etree._Element, options: InspectOptions) -> etree._Element:
    if options.rp_key is None:
        raise DecryptionKeyNeeded("the token is encrypted: the relying party's private key is needed")
    encrypted_data = (
        token if token.tag == ns.qn(ns.XENC, "EncryptedData") else token.find(ns.qn(ns.XENC, "EncryptedData"))
    )
    if encrypted_data is None:
        raise ClientError("EncryptedAssertion without xenc:EncryptedData")
    key = _rp_key(options.rp_key, options)
    try:
        plain = TokenDecrypter(key).decrypt(encrypted_data)
    except DecryptionRejected as exc:
        raise ClientError(f"cannot decrypt the token with {options.rp_key}: {exc}") from None
    try:
        # The plaintext is as untrusted as the file: same caps, and nothing but an element.
        return parse_untrusted(etree.tostring(plain), RESPONSE_LIMITS)
    except MalformedMessage:
        raise ClientError("the decrypted token exceeds the parser limits") from None


def _rp_key(path: Path, options: InspectOptions) -> RSAPrivateKey:
    try:
        try:
            return load_private_key(path, None)
        except TypeError:  # an encrypted PEM: its passphrase is needed
            if options.passphrase is None:
                raise ClientError(f"{path}: the key is encrypted and no passphrase was given") from None
            return load_private_key(path, options.passphrase(path).encode("utf-8"))
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise ClientError(f"{path}: not a usable RSA private key (PEM): {exc}") from None


__all__ = ["DecryptionKeyNeeded", "Inspection", "inspect_token", "load_certificate_file", "load_token"]
