"""``sts token inspect``: decrypt a token with the relying party's key, verify its signature against the pinned STS
certificate, and tabulate what the *signed* assertion says (SAML 2.0 or 1.1; direct paths only, so nothing from
Advice or nested assertions). Token files are untrusted: size and parser limits apply, before and after decryption.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from lxml import etree

from sts import ns
from sts.cli.common import CommandError, read_secret
from sts.cli.http_post import RESPONSE_LIMITS, clean, find_issued_token
from sts.crypto.decrypter import DecryptionRejected, TokenDecrypter
from sts.crypto.keygen import RSAPrivateKey, load_private_key
from sts.crypto.keystore import load_certificate
from sts.crypto.verifier import verify_enveloped
from sts.errors import InvalidSecurityToken, MalformedMessage
from sts.wss.timestamp import parse_xsd_datetime
from sts.xmlutil import parse_untrusted, text_of

MAX_TOKEN_FILE_BYTES = 8 << 20
_ASSERTIONS = {ns.qn(ns.SAML2, "Assertion"): "ID", ns.qn(ns.SAML1, "Assertion"): "AssertionID"}
_ENCRYPTED = (ns.qn(ns.SAML2, "EncryptedAssertion"), ns.qn(ns.XENC, "EncryptedData"))


def load_token(path: Path, rp_key: Path | None) -> tuple[etree._Element, bool]:
    """The SAML assertion in a token or response file, decrypted with ``rp_key`` if encrypted; and whether it was."""
    token = _locate_token(read_token_file(path))
    if token is None:
        raise CommandError(f"{path}: no Assertion, EncryptedAssertion or EncryptedData found")
    encrypted = token.tag in _ENCRYPTED
    if encrypted:
        token = _decrypt(token, rp_key)
    if token.tag not in _ASSERTIONS:
        raise CommandError(f"not a SAML assertion: {clean(str(token.tag))}")
    return token, encrypted


def verify_assertion(assertion: etree._Element, cert: x509.Certificate) -> etree._Element:
    """The assertion as signed by ``cert`` (pinned: no other key counts); ``SignatureRejected`` otherwise."""
    return verify_enveloped(assertion, _ASSERTIONS[assertion.tag], (cert,))


def assertion_table(signed: etree._Element) -> list[str]:
    """What a verified assertion says, one ``label: value`` line per row, values escaped for a terminal."""
    rows = _saml2_rows(signed) if signed.tag == ns.qn(ns.SAML2, "Assertion") else _saml1_rows(signed)
    after = next((i + 1 for i, (label, _) in enumerate(rows) if label == "not on or after"), len(rows))
    rows.insert(after, ("validity", _validity(signed)))
    width = max(len(label) for label, _ in rows)
    return [f"{label + ':':<{width + 1}} {clean(value)}" for label, value in rows]


def load_sts_certificate(path: Path) -> x509.Certificate:
    """The STS signing certificate to verify with (PEM or DER)."""
    try:
        return load_certificate(path)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise CommandError(f"{path}: not a PEM or DER certificate") from None


def _validity(assertion: etree._Element) -> str:
    """Whether the Conditions window holds now (no clock skew allowed: this is a report, not a decision)."""
    conditions = assertion.find(_q2("Conditions")) if assertion.tag == ns.qn(ns.SAML2, "Assertion") else None
    if assertion.tag == ns.qn(ns.SAML1, "Assertion"):
        conditions = assertion.find(_q1("Conditions"))
    if conditions is None:
        return "no Conditions"
    now = dt.datetime.now(dt.UTC)
    try:
        not_before = conditions.get("NotBefore")
        if not_before and parse_xsd_datetime(not_before) > now:
            return "NOT YET VALID"
        not_after = conditions.get("NotOnOrAfter")
        if not_after and parse_xsd_datetime(not_after) <= now:
            return "EXPIRED"
    except InvalidSecurityToken:
        return "unreadable NotBefore/NotOnOrAfter"
    return "within NotBefore/NotOnOrAfter"


def read_token_file(path: Path) -> etree._Element:
    """Parse a token file (bounded in size, through the hardened parser: it is untrusted input too)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise CommandError(f"{path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
    try:
        return parse_untrusted(data, RESPONSE_LIMITS)
    except MalformedMessage:
        raise CommandError(f"{path}: not well-formed XML (or exceeds the parser limits)") from None


def _locate_token(root: etree._Element) -> etree._Element | None:
    if root.tag in _ASSERTIONS or root.tag in _ENCRYPTED:
        return root
    issued = find_issued_token(root)
    return issued.token if issued is not None else None


def _decrypt(token: etree._Element, key_path: Path | None) -> etree._Element:
    if key_path is None:
        raise CommandError("the token is encrypted: give the relying party's private key with --rp-key KEY")
    encrypted_data = (
        token if token.tag == ns.qn(ns.XENC, "EncryptedData") else token.find(ns.qn(ns.XENC, "EncryptedData"))
    )
    if encrypted_data is None:
        raise CommandError("EncryptedAssertion without xenc:EncryptedData")
    key = _rp_key(key_path)
    try:
        plain = TokenDecrypter(key).decrypt(encrypted_data)
    except DecryptionRejected as exc:
        raise CommandError(f"cannot decrypt the token with {key_path}: {exc}") from None
    try:
        # The plaintext is as untrusted as the file: same caps, and nothing but an element.
        return parse_untrusted(etree.tostring(plain), RESPONSE_LIMITS)
    except MalformedMessage:
        raise CommandError("the decrypted token exceeds the parser limits") from None


def _rp_key(path: Path) -> RSAPrivateKey:
    try:
        try:
            return load_private_key(path, None)
        except TypeError:  # encrypted PEM: ask for its passphrase
            passphrase = read_secret(f"Passphrase for {path}: ", from_stdin=False)
            return load_private_key(path, passphrase.encode("utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise CommandError(f"{path}: not a usable RSA private key (PEM): {exc}") from None



Rows = list[tuple[str, str]]


def _q2(*path: str) -> str:
    return "/".join(ns.qn(ns.SAML2, part) for part in path)


def _q1(*path: str) -> str:
    return "/".join(ns.qn(ns.SAML1, part) for part in path)


def _texts(element: etree._Element, path: str) -> list[str]:
    return [text_of(found).strip() for found in element.findall(path)]


def _first_text(element: etree._Element, path: str) -> str:
    found = element.find(path)
    return text_of(found).strip() if found is not None else ""


def _dash(value: str | None) -> str:
    return value if value else "-"


def _attribute_rows(name: str, values: list[str]) -> Rows:
    """One row per value (multi-valued claims have one AttributeValue each, R39)."""
    return [("attribute", f"{name} = {value}") for value in values] or [("attribute", f"{name} (no value)")]


def _saml2_rows(assertion: etree._Element) -> Rows:
    """What a signed SAML 2.0 assertion says; direct paths only (nothing from Advice or nested assertions)."""
    rows: Rows = [
        ("SAML version", _dash(assertion.get("Version"))),
        ("ID", _dash(assertion.get("ID"))),
        ("issuer", _dash(_first_text(assertion, _q2("Issuer")))),
        ("issue instant", _dash(assertion.get("IssueInstant"))),
    ]
    name_id = assertion.find(_q2("Subject", "NameID"))
    if name_id is not None:
        rows.append(("subject", text_of(name_id).strip()))
        rows.append(("subject format", _dash(name_id.get("Format"))))
    else:
        rows.append(("subject", "-"))
    for confirmation in assertion.findall(_q2("Subject", "SubjectConfirmation")):
        rows.append(("confirmation", _dash(confirmation.get("Method"))))
        data = confirmation.find(_q2("SubjectConfirmationData"))
        if data is not None:
            for name, label in (("Recipient", "recipient"), ("NotOnOrAfter", "confirmation until")):
                if data.get(name):
                    rows.append((label, data.get(name, "")))
    audiences = _texts(assertion, _q2("Conditions", "AudienceRestriction", "Audience"))
    rows += [("audience", audience) for audience in audiences] or [("audience", "-")]
    conditions = assertion.find(_q2("Conditions"))
    rows.append(("not before", _dash(conditions.get("NotBefore") if conditions is not None else None)))
    rows.append(("not on or after", _dash(conditions.get("NotOnOrAfter") if conditions is not None else None)))
    for statement in assertion.findall(_q2("AuthnStatement")):
        context = _first_text(statement, _q2("AuthnContext", "AuthnContextClassRef")) or _first_text(
            statement, _q2("AuthnContext", "AuthnContextDeclRef")
        )
        rows.append(("authn context", _dash(context)))
        rows.append(("authn instant", _dash(statement.get("AuthnInstant"))))
    for attribute in assertion.findall(_q2("AttributeStatement", "Attribute")):
        rows += _attribute_rows(attribute.get("Name", ""), _texts(attribute, _q2("AttributeValue")))
    return rows


def _saml1_rows(assertion: etree._Element) -> Rows:
    """What a signed SAML 1.1 assertion says; direct paths only."""
    major, minor = assertion.get("MajorVersion"), assertion.get("MinorVersion")
    rows: Rows = [
        ("SAML version", f"{major}.{minor}" if major and minor else "-"),
        ("ID", _dash(assertion.get("AssertionID"))),
        ("issuer", _dash(assertion.get("Issuer"))),
        ("issue instant", _dash(assertion.get("IssueInstant"))),
    ]
    subject = None
    for kind in ("AuthenticationStatement", "AttributeStatement", "SubjectStatement", "AuthorizationDecisionStatement"):
        subject = assertion.find(_q1(kind, "Subject"))
        if subject is not None:
            break
    name_id = subject.find(_q1("NameIdentifier")) if subject is not None else None
    if name_id is not None:
        rows.append(("subject", text_of(name_id).strip()))
        rows.append(("subject format", _dash(name_id.get("Format"))))
    else:
        rows.append(("subject", "-"))
    methods = _texts(subject, _q1("SubjectConfirmation", "ConfirmationMethod")) if subject is not None else []
    rows += [("confirmation", method) for method in methods] or [("confirmation", "-")]
    audiences = _texts(assertion, _q1("Conditions", "AudienceRestrictionCondition", "Audience"))
    rows += [("audience", audience) for audience in audiences] or [("audience", "-")]
    conditions = assertion.find(_q1("Conditions"))
    rows.append(("not before", _dash(conditions.get("NotBefore") if conditions is not None else None)))
    rows.append(("not on or after", _dash(conditions.get("NotOnOrAfter") if conditions is not None else None)))
    for statement in assertion.findall(_q1("AuthenticationStatement")):
        rows.append(("authn method", _dash(statement.get("AuthenticationMethod"))))
        rows.append(("authn instant", _dash(statement.get("AuthenticationInstant"))))
    for attribute in assertion.findall(_q1("AttributeStatement", "Attribute")):
        name = f"{attribute.get('AttributeNamespace', '')}/{attribute.get('AttributeName', '')}"
        rows += _attribute_rows(name, _texts(attribute, _q1("AttributeValue")))
    return rows


__all__ = ["MAX_TOKEN_FILE_BYTES", "assertion_table", "load_sts_certificate", "load_token", "verify_assertion"]
