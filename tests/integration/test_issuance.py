"""Issue binding end to end against a real gunicorn (2 workers, TLS): the RSTR(C) shape, SAML 2.0 and 1.1
assertions, per-RP encryption, claims, NameID, faults, non-ASCII values and unique IDs.

Every issued token is checked independently of the STS's own crypto code (tests/token_checks.py): decrypted with
python-xmlsec and with the xmlsec1 CLI, and its signature verified with signxml and with xmlsec1 against the
pinned STS signing certificate (wstrust-protocol.md §5, §7, §16, §17 R1-R9, R25-R39).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import re
import shutil
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import signxml.exceptions
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml.verifier import XMLVerifier

from sts.crypto import keygen
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from tests import token_checks as checks
from tests.support import (
    S11,
    WSA,
    WSP,
    WSSE,
    WST,
    WSU,
    Instance,
    Server,
    fault_qname,
    make_instance,
    now_text,
    rst_envelope,
    start_server,
)

pytestmark = pytest.mark.integration

# --- constants -------------------------------------------------------------------------------------------------------

SAML1 = checks.SAML1
SAML2 = checks.SAML2
DS = checks.DS
XENC = checks.XENC
XENC11 = "http://www.w3.org/2009/xmlenc11#"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSID = "http://schemas.xmlsoap.org/ws/2005/05/identity"
PROFILE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
SAML20_URN = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML11_URN = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML20_PROFILE = f"{PROFILE}#SAMLV2.0"
SAML11_PROFILE = f"{PROFILE}#SAMLV1.1"
SAMLID = f"{PROFILE}#SAMLID"
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
MGF1_SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"
ELEMENT_TYPE = "http://www.w3.org/2001/04/xmlenc#Element"
NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
BEARER2 = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
BEARER1 = "urn:oasis:names:tc:SAML:1.0:cm:bearer"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
AM_PASSWORD = "urn:oasis:names:tc:SAML:1.0:am:password"
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
WSO2 = "http://wso2.org/claims"
EMAIL = f"{WSO2}/emailaddress"
GIVENNAME = f"{WSO2}/givenname"
LASTNAME = f"{WSO2}/lastname"
ID_EMAIL = f"{WSID}/claims/emailaddress"
ID_PATTERN = re.compile(r"^_[0-9a-f]{40}$")
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SKEW = dt.timedelta(seconds=60)
LIFETIME = dt.timedelta(seconds=300)

RP_DEMO = "https://localhost:8443/demo-rp/"
RP_PLAIN20 = "https://plain.example.org/saml20/"
RP_PLAIN11 = "https://plain.example.org/saml11/"
RP_CBC = "https://cbc.example.org/rp/"
RP_OAEP = "https://oaep.example.org/rp/"
RP_EMAIL = "https://email.example.org/rp/"
RP_OPEN = "https://open.example.org/rp/"
RP_LONG = "https://long.example.org/rp/"
PASSWORD = "Correct-Horse-Battery-9"
TELEPHONE = f"{WSO2}/telephone"


# --- module instance -------------------------------------------------------------------------------------------------


@dataclass
class Env:
    """The module's instance and server, the configured issuer, and key and certificate of each encrypting RP."""

    instance: Instance
    server: Server
    issuer: str
    rp_keys: dict[str, Path]
    rp_certs: dict[str, bytes]  # DER

    @property
    def sts_cert(self) -> Path:
        return self.instance.signing_cert


def _add_user(instance: Instance, name: str, *args: str) -> None:
    stdin = io.StringIO(PASSWORD + "\n")
    saved, os.sys.stdin = os.sys.stdin, stdin  # type: ignore[attr-defined]
    try:
        assert instance.cli("user", "add", name, "--password-stdin", *args) == 0
    finally:
        os.sys.stdin = saved  # type: ignore[attr-defined]


def _rp_keypair(instance: Instance, label: str) -> tuple[Path, str, bytes]:
    """A fresh RP key pair: the private key file, the truststore file name and the certificate DER."""
    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(key, f"{label} relying party")
    key_path = instance.base / "rps" / f"{label}.key.pem"
    keygen.write_private_key(key_path, key)
    keygen.write_certificate(instance.base / "rps" / f"{label}.crt.pem", cert)
    shutil.copyfile(
        instance.base / "rps" / f"{label}.crt.pem", instance.base / "keystore" / "truststore" / f"{label}.crt.pem"
    )
    return key_path, f"{label}.crt.pem", cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    instance = make_instance(tmp_path_factory.mktemp("issuance") / "var")
    _add_user(instance, "zoe", "--role", "admin", "--claim", f"{GIVENNAME}=Zoë", "--claim", f"{EMAIL}=zoe@example.com")
    _add_user(  # two values of one claim, deliberately not in alphabetical order
        instance,
        "multi",
        "--role",
        "admin",
        "--claim",
        f"{GIVENNAME}=Maria",
        "--claim",
        f"{GIVENNAME}=Anna",
        "--claim",
        f"{EMAIL}=multi@example.com",
    )
    _add_user(instance, "bare", "--role", "admin")
    _add_user(instance, "norole")
    db = Database(instance.base / "sts.db")
    rps = RelyingPartyRegistry(SqliteRelyingPartyStore(db))
    keys: dict[str, Path] = {RP_DEMO: instance.rp_key}
    certs: dict[str, bytes] = {}
    demo_cert = (instance.base / "demo-rp" / "rp.crt.pem").read_bytes()
    certs[RP_DEMO] = x509.load_pem_x509_certificate(demo_cert).public_bytes(serialization.Encoding.DER)
    for address, label, cipher, transport in (
        (RP_CBC, "cbc", "aes256-cbc", "rsa-oaep-mgf1p"),
        (RP_OAEP, "oaep", "aes256-gcm", "rsa-oaep"),
    ):
        key_path, cert_file, der = _rp_keypair(instance, label)
        keys[address], certs[address] = key_path, der
        rps.add(
            RelyingParty(
                address=address, cert_file=cert_file, cipher=cipher, key_transport=transport, claims=(EMAIL, GIVENNAME)
            )
        )
    rps.add(RelyingParty(address=RP_PLAIN20, encrypt=False, claims=(EMAIL, GIVENNAME)))
    rps.add(RelyingParty(address=RP_PLAIN11, encrypt=False, token_type="saml11", claims=(EMAIL, GIVENNAME)))
    rps.add(RelyingParty(address=RP_EMAIL, encrypt=False, nameid="email", claims=(GIVENNAME,)))
    rps.add(RelyingParty(address=RP_OPEN, encrypt=False, claims=()))
    rps.add(RelyingParty(address=RP_LONG, encrypt=False, token_type="saml11", claims=(EMAIL,), lifetime=3600))
    db.close()
    issuer = tomllib.loads(instance.config.read_text())["issuer"]["name"]
    server = start_server(instance, workers=2, tls=True)
    try:
        yield Env(instance, server, issuer, keys, certs)
    finally:
        server.stop()


# --- requests --------------------------------------------------------------------------------------------------------


def _post(env: Env, body: bytes) -> requests.Response:
    return env.server.post(body, action=f"{WST}/RST/Issue")


def issue(
    env: Env,
    *,
    user: str = "admin",
    applies_to: str = RP_DEMO,
    token_type: str = SAML20_URN,
    extra_rst: str = "",
) -> requests.Response:
    password = env.instance.demo_password if user == "admin" else PASSWORD
    return _post(env, rst_envelope(user, password, applies_to=applies_to, token_type=token_type, extra_rst=extra_rst))


def envelope(env: Env, *, token_type: str = SAML20_URN, applies_to: str = RP_DEMO, extra_rst: str = "") -> bytes:
    return rst_envelope(
        "admin", env.instance.demo_password, token_type=token_type, applies_to=applies_to, extra_rst=extra_rst
    )


def replace_once(body: bytes, old: str, new: str) -> bytes:
    assert body.count(old.encode()) == 1, old
    return body.replace(old.encode(), new.encode())


def without_token_type(body: bytes, token_type: str) -> bytes:
    return replace_once(body, f"<wst:TokenType>{token_type}</wst:TokenType>", "")


def with_context(body: bytes, context: str) -> bytes:
    return replace_once(body, "<wst:RequestSecurityToken ", f'<wst:RequestSecurityToken Context="{context}" ')


def claims_xml(dialect: str, *claims: tuple[str, str | None]) -> str:
    types = "".join(
        f'<wsid:ClaimType Uri="{uri}"' + (f' Optional="{optional}"' if optional is not None else "") + "/>"
        for uri, optional in claims
    )
    return f'<wst:Claims Dialect="{dialect}" xmlns:wsid="{WSID}">{types}</wst:Claims>'


# --- reading answers -------------------------------------------------------------------------------------------------


def rstr_of(response: requests.Response) -> etree._Element:
    """The one RSTR of a WS-Trust 1.3 RSTRC in a SOAP 1.1 answer (R4)."""
    assert response.status_code == 200, response.content[:2000]
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{S11}}}Envelope"
    body = root.find(f"{{{S11}}}Body")
    assert body is not None and len(body) == 1
    collection = body[0]
    assert collection.tag == f"{{{WST}}}RequestSecurityTokenResponseCollection"
    assert [child.tag for child in collection] == [f"{{{WST}}}RequestSecurityTokenResponse"]
    return collection[0]


def local_names(element: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in element if isinstance(child.tag, str)]


def requested_token(rstr: etree._Element) -> etree._Element:
    """The token: first and only child node of RequestedSecurityToken, no text or whitespace around it (R1)."""
    holder = rstr.find(f"{{{WST}}}RequestedSecurityToken")
    assert holder is not None
    assert holder.text is None, f"text before the token: {holder.text!r}"
    assert len(holder) == 1, "RequestedSecurityToken must hold exactly one node"
    token = holder[0]
    assert isinstance(token.tag, str), "the first child node is not an element"
    assert token.tail is None, f"text after the token: {token.tail!r}"
    return token


def declares_itself(token: etree._Element, namespace: str) -> None:
    """The token declares ``namespace`` on itself; no ancestor does (so it stands alone when cut out)."""
    assert namespace in token.nsmap.values()
    parent = token.getparent()
    assert parent is not None
    assert namespace not in parent.nsmap.values(), "an ancestor declares the token's namespace"


def raw_cut(body: bytes, local: str) -> bytes:
    """Cut ``<p:local …>…</p:local>`` out of the serialized response by text, as regex-based clients do (R5)."""
    found = re.search(rb"<(\w+):" + local.encode() + rb"[\s>].*?</\1:" + local.encode() + rb">", body, re.S)
    assert found is not None, f"no {local} in the response"
    return found.group(0)


def parse_instant(text: str | None) -> dt.datetime:
    assert text is not None and INSTANT.match(text), text
    return dt.datetime.fromisoformat(text)


@dataclass
class Opened:
    """An issued token after independent decryption and verification."""

    token: etree._Element  # as found in RequestedSecurityToken
    plaintext: bytes  # the assertion bytes the RP works on
    assertion: etree._Element  # parsed plaintext, signature included
    signed: etree._Element  # what signxml says is signed


def open_token(
    env: Env,
    response: requests.Response,
    rstr: etree._Element,
    *,
    saml11: bool,
    rp: str | None = RP_DEMO,
    xmlsec1_decrypts: bool = True,
) -> Opened:
    """Decrypt (``rp`` None: not encrypted) with both tools and verify with both tools."""
    token = requested_token(rstr)
    body = response.content
    if rp is None:
        expected = f"{{{SAML1 if saml11 else SAML2}}}Assertion"
        assert token.tag == expected, token.tag
        declares_itself(token, SAML1 if saml11 else SAML2)
        cut = raw_cut(body, "Assertion")  # the text a client cuts out must stand alone and verify
        assert etree.tostring(etree.fromstring(cut), method="c14n", exclusive=True) == etree.tostring(
            token, method="c14n", exclusive=True
        )
        plaintexts = [cut, etree.tostring(token)]
    else:
        if saml11:
            assert token.tag == f"{{{XENC}}}EncryptedData", token.tag
            declares_itself(token, XENC)
            encrypted = etree.fromstring(raw_cut(body, "EncryptedData"))
        else:
            assert token.tag == f"{{{SAML2}}}EncryptedAssertion", token.tag
            declares_itself(token, SAML2)
            wrapper = etree.fromstring(raw_cut(body, "EncryptedAssertion"))
            assert [child.tag for child in wrapper] == [f"{{{XENC}}}EncryptedData"]
            encrypted = wrapper[0]
        check_encryption_shape(encrypted, env.rp_certs[rp])
        plaintexts = [checks.decrypt_with_python_xmlsec(encrypted, env.rp_keys[rp])]
        if xmlsec1_decrypts:
            plaintexts.append(checks.decrypt_with_xmlsec1(etree.tostring(encrypted), env.rp_keys[rp]))
    canonical = {etree.tostring(etree.fromstring(p), method="c14n", exclusive=True) for p in plaintexts}
    assert len(canonical) == 1, "the tools disagree about the plaintext"
    signed = [checks.verify_with_both(p, env.sts_cert, saml11) for p in plaintexts]
    return Opened(token, plaintexts[0], etree.fromstring(plaintexts[0]), signed[0])


def check_encryption_shape(encrypted: etree._Element, rp_cert_der: bytes) -> None:
    """EncryptedData of type Element; EncryptedKey inside its ds:KeyInfo, naming the RP certificate (R32, R34)."""
    assert encrypted.tag == f"{{{XENC}}}EncryptedData"
    assert encrypted.get("Type") == ELEMENT_TYPE
    assert [etree.QName(c).localname for c in encrypted] == ["EncryptionMethod", "KeyInfo", "CipherData"]
    keys = encrypted.findall(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey")
    assert len(keys) == 1, "EncryptedKey must sit inside EncryptedData/ds:KeyInfo"
    assert encrypted.find(f"{{{DS}}}KeyInfo/{{{DS}}}RetrievalMethod") is None
    certs = keys[0].findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    assert [base64.b64decode("".join((c.text or "").split())) for c in certs] == [rp_cert_der]


def algorithms(encrypted: etree._Element) -> tuple[str | None, str | None]:
    data = encrypted.find(f"{{{XENC}}}EncryptionMethod")
    key = encrypted.find(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
    assert data is not None and key is not None
    return data.get("Algorithm"), key.get("Algorithm")


def encrypted_data_of(token: etree._Element) -> etree._Element:
    if token.tag == f"{{{XENC}}}EncryptedData":
        return token
    found = token.find(f"{{{XENC}}}EncryptedData")
    assert found is not None
    return found


def check_references(rstr: etree._Element, token_type: str, value_type: str, assertion_id: str) -> None:
    """RequestedAttachedReference and RequestedUnattachedReference: identical STRs to the assertion (R7)."""
    for wrapper in ("RequestedAttachedReference", "RequestedUnattachedReference"):
        strs = rstr.findall(f"{{{WST}}}{wrapper}/{{{WSSE}}}SecurityTokenReference")
        assert len(strs) == 1, wrapper
        assert strs[0].get(f"{{{WSSE11}}}TokenType") == token_type
        key_ids = strs[0].findall(f"{{{WSSE}}}KeyIdentifier")
        assert len(key_ids) == 1 and len(strs[0]) == 1
        assert key_ids[0].get("ValueType") == value_type
        assert key_ids[0].text == assertion_id


def check_lifetime(rstr: etree._Element, not_before: str | None, not_on_or_after: str | None) -> None:
    created = rstr.findall(f"{{{WST}}}Lifetime/{{{WSU}}}Created")
    expires = rstr.findall(f"{{{WST}}}Lifetime/{{{WSU}}}Expires")
    assert [c.text for c in created] == [not_before]
    assert [e.text for e in expires] == [not_on_or_after]


def check_applies_to(rstr: etree._Element, address: str) -> None:
    addresses = rstr.findall(f"{{{WSP}}}AppliesTo/{{{WSA}}}EndpointReference/{{{WSA}}}Address")
    assert [a.text for a in addresses] == [address]


def saml2_attributes(assertion: etree._Element) -> list[tuple[str | None, str | None, list[str | None]]]:
    return [
        (a.get("Name"), a.get("NameFormat"), [v.text for v in a.findall(f"{{{SAML2}}}AttributeValue")])
        for a in assertion.findall(f"{{{SAML2}}}AttributeStatement/{{{SAML2}}}Attribute")
    ]


def saml1_attributes(assertion: etree._Element) -> list[tuple[str | None, str | None, list[str | None]]]:
    return [
        (a.get("AttributeNamespace"), a.get("AttributeName"), [v.text for v in a.findall(f"{{{SAML1}}}AttributeValue")])
        for a in assertion.findall(f"{{{SAML1}}}AttributeStatement/{{{SAML1}}}Attribute")
    ]


def uri_attributes(assertion: etree._Element) -> list[tuple[str | None, list[str | None]]]:
    """(Name, values) of a SAML 2.0 assertion, checking every NameFormat is uri."""
    found = saml2_attributes(assertion)
    assert all(fmt == ATTRNAME_URI for _, fmt, _ in found)
    return [(name, values) for name, _, values in found]


def assert_fault(response: requests.Response, namespace: str, local: str) -> None:
    """A SOAP 1.1 fault with exactly this QName, HTTP 500 (§13), no token."""
    assert response.status_code == 500, (response.status_code, response.content[:2000])
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert fault_qname(response.content) == (namespace, local)
    assert b"RequestSecurityTokenResponse" not in response.content


def check_saml2(
    env: Env, opened: Opened, *, audience: str, name_id: str = "admin", name_format: str = NAMEID_UNSPECIFIED
) -> None:
    """The SAML 2.0 bearer assertion of §16 for an RP with the default lifetime and skew."""
    full, signed = opened.assertion, opened.signed
    assert local_names(full) == ["Issuer", "Signature", "Subject", "Conditions", "AuthnStatement", "AttributeStatement"]
    assert full[1].tag == f"{{{DS}}}Signature"  # immediately after Issuer (R26)
    assert local_names(signed) == ["Issuer", "Subject", "Conditions", "AuthnStatement", "AttributeStatement"]
    assert signed.get("Version") == "2.0"
    assert ID_PATTERN.match(signed.get("ID") or "")
    issued_at = parse_instant(signed.get("IssueInstant"))
    assert [i.text for i in signed.findall(f"{{{SAML2}}}Issuer")] == [env.issuer]
    name_ids = signed.findall(f"{{{SAML2}}}Subject/{{{SAML2}}}NameID")
    assert [(n.text, n.get("Format")) for n in name_ids] == [(name_id, name_format)]
    confirmations = signed.findall(f"{{{SAML2}}}Subject/{{{SAML2}}}SubjectConfirmation")
    assert [c.get("Method") for c in confirmations] == [BEARER2]
    data = confirmations[0].findall(f"{{{SAML2}}}SubjectConfirmationData")
    assert len(data) == 1
    assert data[0].get("Recipient") == audience  # R35
    assert data[0].get("NotBefore") is None
    assert parse_instant(data[0].get("NotOnOrAfter")) == issued_at + LIFETIME
    conditions = signed.find(f"{{{SAML2}}}Conditions")
    assert conditions is not None
    assert parse_instant(conditions.get("NotBefore")) == issued_at - SKEW
    assert parse_instant(conditions.get("NotOnOrAfter")) == issued_at + LIFETIME
    audiences = conditions.findall(f"{{{SAML2}}}AudienceRestriction/{{{SAML2}}}Audience")
    assert [a.text for a in audiences] == [audience]  # R37
    authn = signed.findall(f"{{{SAML2}}}AuthnStatement")
    assert len(authn) == 1  # R36
    assert parse_instant(authn[0].get("AuthnInstant")) == issued_at
    refs = authn[0].findall(f"{{{SAML2}}}AuthnContext/{{{SAML2}}}AuthnContextClassRef")
    assert [r.text for r in refs] == [PPT]


# --- 1. SAML 2.0, encrypted for the demo RP --------------------------------------------------------------------------


@pytest.mark.parametrize("token_type", [SAML20_URN, SAML20_PROFILE])
def test_saml20_encrypted_for_demo_rp(env: Env, token_type: str) -> None:
    """Shape, encryption (E01), signature (I09) and validity window (I07: NotBefore = IssueInstant - skew,
    NotOnOrAfter = IssueInstant + lifetime, RSTR Lifetime = the conditions) of the demo RP's token."""
    response = issue(env, token_type=token_type)
    rstr = rstr_of(response)
    assert local_names(rstr) == [
        "TokenType",
        "RequestedSecurityToken",
        "RequestedAttachedReference",
        "RequestedUnattachedReference",
        "AppliesTo",
        "Lifetime",
        "KeyType",
    ]
    assert rstr.get("Context") is None
    assert [t.text for t in rstr.findall(f"{{{WST}}}TokenType")] == [token_type]  # the requested spelling (R3)
    assert [k.text for k in rstr.findall(f"{{{WST}}}KeyType")] == [f"{WST}/Bearer"]
    check_applies_to(rstr, RP_DEMO)
    opened = open_token(env, response, rstr, saml11=False)
    encrypted = encrypted_data_of(opened.token)
    assert algorithms(encrypted) == (AES256_GCM, RSA_OAEP_MGF1P)
    check_saml2(env, opened, audience=RP_DEMO)
    assert uri_attributes(opened.signed) == [(EMAIL, ["admin@example.com"]), (GIVENNAME, ["Demo"])]
    conditions = opened.signed.find(f"{{{SAML2}}}Conditions")
    assert conditions is not None
    check_lifetime(rstr, conditions.get("NotBefore"), conditions.get("NotOnOrAfter"))
    assertion_id = opened.signed.get("ID") or ""
    check_references(rstr, SAML20_PROFILE, SAMLID, assertion_id)


# --- 2. SAML 1.1, encrypted ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token_type", [SAML11_PROFILE, SAML11_URN])
def test_saml11_encrypted_for_demo_rp(env: Env, token_type: str) -> None:
    response = issue(env, token_type=token_type)
    rstr = rstr_of(response)
    assert local_names(rstr) == [
        "TokenType",
        "RequestedSecurityToken",
        "RequestedAttachedReference",
        "RequestedUnattachedReference",
        "AppliesTo",
        "Lifetime",
        "KeyType",
    ]
    assert [t.text for t in rstr.findall(f"{{{WST}}}TokenType")] == [token_type]
    opened = open_token(env, response, rstr, saml11=True)
    assert opened.token.tag == f"{{{XENC}}}EncryptedData"  # bare EncryptedData (R33)
    assert algorithms(opened.token) == (AES256_GCM, RSA_OAEP_MGF1P)
    full, signed = opened.assertion, opened.signed
    assert local_names(full) == ["Conditions", "AuthenticationStatement", "AttributeStatement", "Signature"]
    assert full[-1].tag == f"{{{DS}}}Signature"  # last child (R26)
    assert (signed.get("MajorVersion"), signed.get("MinorVersion")) == ("1", "1")
    assertion_id = signed.get("AssertionID") or ""
    assert ID_PATTERN.match(assertion_id)
    assert signed.get("ID") is None
    assert signed.get("Issuer") == env.issuer
    issued_at = parse_instant(signed.get("IssueInstant"))
    conditions = signed.find(f"{{{SAML1}}}Conditions")
    assert conditions is not None
    assert parse_instant(conditions.get("NotBefore")) == issued_at - SKEW
    assert parse_instant(conditions.get("NotOnOrAfter")) == issued_at + LIFETIME
    audiences = conditions.findall(f"{{{SAML1}}}AudienceRestrictionCondition/{{{SAML1}}}Audience")
    assert [a.text for a in audiences] == [RP_DEMO]
    authn = signed.findall(f"{{{SAML1}}}AuthenticationStatement")
    assert len(authn) == 1
    assert authn[0].get("AuthenticationMethod") == AM_PASSWORD
    assert parse_instant(authn[0].get("AuthenticationInstant")) == issued_at
    for statement in (authn[0], signed.find(f"{{{SAML1}}}AttributeStatement")):
        assert statement is not None
        subject = statement.findall(f"{{{SAML1}}}Subject")
        assert len(subject) == 1
        names = subject[0].findall(f"{{{SAML1}}}NameIdentifier")
        assert [(n.text, n.get("Format")) for n in names] == [("admin", NAMEID_UNSPECIFIED)]
        methods = subject[0].findall(f"{{{SAML1}}}SubjectConfirmation/{{{SAML1}}}ConfirmationMethod")
        assert [m.text for m in methods] == [BEARER1]
    assert saml1_attributes(signed) == [
        (WSO2, "emailaddress", ["admin@example.com"]),
        (WSO2, "givenname", ["Demo"]),
    ]  # R39: split at the last "/"
    check_lifetime(rstr, conditions.get("NotBefore"), conditions.get("NotOnOrAfter"))
    check_references(rstr, SAML11_PROFILE, SAML_ASSERTION_ID, assertion_id)


# --- 3. unencrypted tokens -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applies_to", "token_type", "saml11"),
    [(RP_PLAIN20, SAML20_PROFILE, False), (RP_PLAIN11, SAML11_PROFILE, True)],
    ids=["saml20", "saml11"],
)
def test_unencrypted_assertion_stands_alone(env: Env, applies_to: str, token_type: str, saml11: bool) -> None:
    response = issue(env, applies_to=applies_to, token_type=token_type)
    rstr = rstr_of(response)
    assert [t.text for t in rstr.findall(f"{{{WST}}}TokenType")] == [token_type]
    opened = open_token(env, response, rstr, saml11=saml11, rp=None)
    # Cut out with lxml and re-parsed alone, the assertion still verifies with both tools.
    alone = etree.tostring(etree.fromstring(etree.tostring(opened.token)))
    signed = checks.verify_with_both(alone, env.sts_cert, saml11)
    if saml11:
        assert signed.get("Issuer") == env.issuer
        assert saml1_attributes(signed) == [
            (WSO2, "emailaddress", ["admin@example.com"]),
            (WSO2, "givenname", ["Demo"]),
        ]
        check_references(rstr, SAML11_PROFILE, SAML_ASSERTION_ID, signed.get("AssertionID") or "")
    else:
        check_saml2(env, opened, audience=applies_to)
        assert uri_attributes(signed) == [(EMAIL, ["admin@example.com"]), (GIVENNAME, ["Demo"])]
        check_references(rstr, SAML20_PROFILE, SAMLID, signed.get("ID") or "")
    check_applies_to(rstr, applies_to)


# --- 4. token type default -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applies_to", "expected", "saml11", "rp"),
    [(RP_DEMO, SAML20_URN, False, RP_DEMO), (RP_PLAIN11, SAML11_URN, True, None)],
    ids=["saml20-rp", "saml11-rp"],
)
def test_no_token_type_gives_rp_default_in_urn_form(
    env: Env, applies_to: str, expected: str, saml11: bool, rp: str | None
) -> None:
    body = without_token_type(envelope(env, applies_to=applies_to), SAML20_URN)
    response = _post(env, body)
    rstr = rstr_of(response)
    assert [t.text for t in rstr.findall(f"{{{WST}}}TokenType")] == [expected]
    opened = open_token(env, response, rstr, saml11=saml11, rp=rp)
    if saml11:
        check_references(rstr, SAML11_PROFILE, SAML_ASSERTION_ID, opened.signed.get("AssertionID") or "")
    else:
        check_references(rstr, SAML20_PROFILE, SAMLID, opened.signed.get("ID") or "")


# --- 5. claims -------------------------------------------------------------------------------------------------------


def test_claims_request_selects_subset(env: Env) -> None:
    response = issue(env, extra_rst=claims_xml(WSO2, (EMAIL, None)))
    opened = open_token(env, response, rstr_of(response), saml11=False)
    assert uri_attributes(opened.signed) == [(EMAIL, ["admin@example.com"])]


def test_optional_claim_outside_rp_set_is_left_out(env: Env) -> None:
    # admin has a lastname, but the demo RP was granted only emailaddress and givenname.
    response = issue(env, extra_rst=claims_xml(WSO2, (LASTNAME, "true"), (GIVENNAME, None)))
    opened = open_token(env, response, rstr_of(response), saml11=False)
    assert uri_attributes(opened.signed) == [(GIVENNAME, ["Demo"])]


def test_required_claim_outside_rp_set_fails(env: Env) -> None:
    response = issue(env, extra_rst=claims_xml(WSO2, (LASTNAME, "false"), (EMAIL, None)))
    assert_fault(response, WST, "RequestFailed")


def test_identity_dialect_claim_emitted_under_its_uri(env: Env) -> None:
    response = issue(env, extra_rst=claims_xml(WSID, (ID_EMAIL, None)))
    opened = open_token(env, response, rstr_of(response), saml11=False)
    assert uri_attributes(opened.signed) == [(ID_EMAIL, ["admin@example.com"])]


def test_multi_valued_claim_gives_one_value_each_in_order(env: Env) -> None:
    response = issue(env, user="multi")
    opened = open_token(env, response, rstr_of(response), saml11=False)
    assert uri_attributes(opened.signed) == [(EMAIL, ["multi@example.com"]), (GIVENNAME, ["Maria", "Anna"])]
    response = issue(env, user="multi", token_type=SAML11_PROFILE)
    opened = open_token(env, response, rstr_of(response), saml11=True)
    assert saml1_attributes(opened.signed) == [
        (WSO2, "emailaddress", ["multi@example.com"]),
        (WSO2, "givenname", ["Maria", "Anna"]),
    ]


def test_namespace_qualified_dialect_is_read(env: Env) -> None:
    """Rahas writes the Dialect attribute in the trust namespace (R40)."""
    asked = claims_xml(WSO2, (GIVENNAME, None)).replace(' Dialect="', ' wst:Dialect="')
    response = issue(env, extra_rst=asked)
    opened = open_token(env, response, rstr_of(response), saml11=False)
    assert uri_attributes(opened.signed) == [(GIVENNAME, ["Demo"])]


def test_rp_without_configured_claims_gets_what_is_asked(env: Env) -> None:
    asked = claims_xml(WSO2, (LASTNAME, None), (TELEPHONE, "true"), (EMAIL, None))  # no telephone for admin
    response = issue(env, applies_to=RP_OPEN, extra_rst=asked)
    opened = open_token(env, response, rstr_of(response), saml11=False, rp=None)
    assert uri_attributes(opened.signed) == [(LASTNAME, ["Administrator"]), (EMAIL, ["admin@example.com"])]


# --- 6. per-RP encryption variants -----------------------------------------------------------------------------------


def test_aes256_cbc_with_rsa_oaep_mgf1p(env: Env) -> None:
    response = issue(env, applies_to=RP_CBC)
    opened = open_token(env, response, rstr_of(response), saml11=False, rp=RP_CBC)  # xmlsec1 decrypts too
    assert algorithms(encrypted_data_of(opened.token)) == (AES256_CBC, RSA_OAEP_MGF1P)
    check_saml2(env, opened, audience=RP_CBC)


def test_aes256_gcm_with_xmlenc11_rsa_oaep(env: Env) -> None:
    response = issue(env, applies_to=RP_OAEP)
    # xmlsec1 1.2 knows neither xmlenc11#rsa-oaep nor a SHA-256 OAEP digest: python-xmlsec only.
    opened = open_token(env, response, rstr_of(response), saml11=False, rp=RP_OAEP, xmlsec1_decrypts=False)
    encrypted = encrypted_data_of(opened.token)
    assert algorithms(encrypted) == (AES256_GCM, RSA_OAEP)
    method = encrypted.find(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
    assert method is not None
    assert [d.get("Algorithm") for d in method.findall(f"{{{DS}}}DigestMethod")] == [SHA256]
    assert [m.get("Algorithm") for m in method.findall(f"{{{XENC11}}}MGF")] == [MGF1_SHA256]
    check_saml2(env, opened, audience=RP_OAEP)


# --- 7. NameID from the email claim ----------------------------------------------------------------------------------


def test_nameid_from_email(env: Env) -> None:
    response = issue(env, applies_to=RP_EMAIL)
    rstr = rstr_of(response)
    opened = open_token(env, response, rstr, saml11=False, rp=None)
    name_ids = opened.signed.findall(f"{{{SAML2}}}Subject/{{{SAML2}}}NameID")
    assert [(n.text, n.get("Format")) for n in name_ids] == [("admin@example.com", NAMEID_EMAIL)]
    assert uri_attributes(opened.signed) == [(GIVENNAME, ["Demo"])]


def test_nameid_from_email_without_email_fails(env: Env) -> None:
    assert_fault(issue(env, user="bare", applies_to=RP_EMAIL), WST, "RequestFailed")


# --- 8. faults -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "applies_to",
    [
        "https://unknown.example.org/rp/",
        "https://localhost:8443.evil/demo-rp/",
        "https://user@localhost:8443/demo-rp/",
        "https://localhost:8443/demo-rp/x/..",
        "https://localhost:8443/demo-rp",
        "https://localhost:8443/demo-rp/?x=1",
        "https://localhost.:8443/demo-rp/",
    ],
)
def test_unknown_or_look_alike_applies_to_is_invalid_scope(env: Env, applies_to: str) -> None:
    assert_fault(issue(env, applies_to=applies_to), WST, "InvalidScope")


def test_normalised_applies_to_gets_registered_audience(env: Env) -> None:
    """Scheme and host case and the default port are normalised; the audience is the registered address
    (R37, I05: never the request string)."""
    response = issue(env, applies_to="HTTPS://LocalHost:8443/demo-rp/")
    opened = open_token(env, response, rstr_of(response), saml11=False)
    check_saml2(env, opened, audience=RP_DEMO)


def test_user_without_role_fails_authentication(env: Env) -> None:
    assert_fault(issue(env, user="norole"), WSSE, "FailedAuthentication")


def _two_addresses(env: Env) -> bytes:
    return replace_once(
        envelope(env),
        f"<wsa:Address>{RP_DEMO}</wsa:Address>",
        f"<wsa:Address>{RP_DEMO}</wsa:Address><wsa:Address>{RP_DEMO}</wsa:Address>",
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("two-token-types", "InvalidRequest"),
        ("two-addresses", "InvalidRequest"),
        ("unknown-element", "BadRequest"),
        ("unsupported-token-type", "BadRequest"),
        ("unknown-key-type", "InvalidRequest"),
        ("context-300", "InvalidRequest"),
        ("bearer-key-size", "InvalidRequest"),
    ],
)
def test_malformed_rst(env: Env, case: str, code: str) -> None:
    bodies = {
        "two-token-types": lambda: envelope(env, extra_rst=f"<wst:TokenType>{SAML20_URN}</wst:TokenType>"),
        "two-addresses": lambda: _two_addresses(env),
        "unknown-element": lambda: envelope(env, extra_rst='<foo:Bar xmlns:foo="urn:x"/>'),
        "unsupported-token-type": lambda: envelope(env, token_type="urn:x"),
        # Holder-of-key is not issued yet: BadRequest until it exists.
        "unknown-key-type": lambda: replace_once(envelope(env), f"{WST}/Bearer<", f"{WST}/Unknown<"),
        "context-300": lambda: with_context(envelope(env), "c" * 300),
        "bearer-key-size": lambda: envelope(env, extra_rst="<wst:KeySize>256</wst:KeySize>"),  # §8
    }
    assert_fault(_post(env, bodies[case]()), WST, code)


def test_token_type_with_whitespace_is_echoed_collapsed(env: Env) -> None:
    """Surrounding whitespace in URI values is collapsed (R17); the answer's TokenType is the exact URI (§5)."""
    body = replace_once(
        envelope(env, token_type=SAML11_PROFILE),
        f"<wst:TokenType>{SAML11_PROFILE}</wst:TokenType>",
        f"<wst:TokenType>\n   {SAML11_PROFILE}\n </wst:TokenType>",
    )
    response = _post(env, body)
    rstr = rstr_of(response)
    assert [t.text for t in rstr.findall(f"{{{WST}}}TokenType")] == [SAML11_PROFILE]
    open_token(env, response, rstr, saml11=True)


def test_requested_lifetime_is_ignored(env: Env) -> None:
    """A client Lifetime is ignored by default (CXF acceptClientLifetime=false): the RP's window applies."""
    asked = (
        f"<wst:Lifetime><wsu:Created>{now_text()}</wsu:Created><wsu:Expires>{now_text(36000)}</wsu:Expires>"
        "</wst:Lifetime>"
    )
    response = issue(env, extra_rst=asked)
    rstr = rstr_of(response)
    opened = open_token(env, response, rstr, saml11=False)
    check_saml2(env, opened, audience=RP_DEMO)
    conditions = opened.signed.find(f"{{{SAML2}}}Conditions")
    assert conditions is not None
    check_lifetime(rstr, conditions.get("NotBefore"), conditions.get("NotOnOrAfter"))


def test_microsoft_shape_without_token_type_and_key_type(env: Env) -> None:
    """Only RequestType, AppliesTo and no TokenType/KeyType (R14): the RP's defaults, Bearer echoed."""
    body = without_token_type(envelope(env), SAML20_URN)
    body = replace_once(body, f"<wst:KeyType>{WST}/Bearer</wst:KeyType>", "")
    response = _post(env, body)
    rstr = rstr_of(response)
    assert [t.text for t in rstr.findall(f"{{{WST}}}TokenType")] == [SAML20_URN]
    assert [k.text for k in rstr.findall(f"{{{WST}}}KeyType")] == [f"{WST}/Bearer"]
    check_saml2(env, open_token(env, response, rstr, saml11=False), audience=RP_DEMO)


def test_per_rp_lifetime(env: Env) -> None:
    """An RP's own lifetime replaces the [tokens] default; the RSTR Lifetime follows the assertion."""
    response = issue(env, applies_to=RP_LONG, token_type=SAML11_URN)
    rstr = rstr_of(response)
    opened = open_token(env, response, rstr, saml11=True, rp=None)
    issued_at = parse_instant(opened.signed.get("IssueInstant"))
    conditions = opened.signed.find(f"{{{SAML1}}}Conditions")
    assert conditions is not None
    assert parse_instant(conditions.get("NotBefore")) == issued_at - SKEW
    assert parse_instant(conditions.get("NotOnOrAfter")) == issued_at + dt.timedelta(seconds=3600)
    check_lifetime(rstr, conditions.get("NotBefore"), conditions.get("NotOnOrAfter"))
    assert saml1_attributes(opened.signed) == [(WSO2, "emailaddress", ["admin@example.com"])]


def test_missing_applies_to_is_invalid_request(env: Env) -> None:
    body = re.sub(rb"<wsp:AppliesTo .*?</wsp:AppliesTo>", b"", envelope(env), flags=re.S)
    assert b"AppliesTo" not in body
    assert_fault(_post(env, body), WST, "InvalidRequest")


def test_context_of_256_chars_is_echoed(env: Env) -> None:
    context = "ctx-" + "c" * 252
    response = _post(env, with_context(envelope(env), context))
    rstr = rstr_of(response)
    assert rstr.get("Context") == context  # R9
    open_token(env, response, rstr, saml11=False)


def test_required_claim_the_user_lacks_fails(env: Env) -> None:
    response = issue(env, user="bare", extra_rst=claims_xml(WSO2, (GIVENNAME, "false")))
    assert_fault(response, WST, "RequestFailed")


# --- 9. non-ASCII values ---------------------------------------------------------------------------------------------


def test_non_ascii_value_as_character_reference(env: Env) -> None:
    response = issue(env, user="zoe", applies_to=RP_PLAIN20)
    response.content.decode("ascii")  # R6: the whole response is ASCII
    assert re.search(rb"Zo&#(235|x[eE][bB]);", response.content), "no character reference for the e-diaeresis"
    assert "Zoë".encode() not in response.content
    opened = open_token(env, response, rstr_of(response), saml11=False, rp=None)
    assert uri_attributes(opened.signed) == [(EMAIL, ["zoe@example.com"]), (GIVENNAME, ["Zoë"])]


@pytest.mark.parametrize("saml11", [False, True], ids=["saml20", "saml11"])
def test_non_ascii_value_round_trips_through_encryption(env: Env, saml11: bool) -> None:
    response = issue(env, user="zoe", token_type=SAML11_PROFILE if saml11 else SAML20_PROFILE)
    response.content.decode("ascii")
    opened = open_token(env, response, rstr_of(response), saml11=saml11)
    if saml11:
        assert saml1_attributes(opened.signed) == [
            (WSO2, "emailaddress", ["zoe@example.com"]),
            (WSO2, "givenname", ["Zoë"]),
        ]
    else:
        assert uri_attributes(opened.signed) == [(EMAIL, ["zoe@example.com"]), (GIVENNAME, ["Zoë"])]


# --- 10. unique IDs --------------------------------------------------------------------------------------------------


def test_fifty_issues_give_fifty_distinct_ids(env: Env) -> None:
    def one(_: int) -> str:
        response = issue(env, applies_to=RP_PLAIN20)
        rstr = rstr_of(response)
        opened = open_token(env, response, rstr, saml11=False, rp=None)
        assertion_id = opened.signed.get("ID") or ""
        check_references(rstr, SAML20_PROFILE, SAMLID, assertion_id)
        return assertion_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(one, range(50)))
    assert all(ID_PATTERN.match(assertion_id) for assertion_id in ids)
    assert len(set(ids)) == 50


# --- the independent checks themselves can fail ----------------------------------------------------------------------


def test_independent_checks_reject_foreign_keys_and_tampering(env: Env, tmp_path: Path) -> None:
    """A tampered token or another pinned certificate fails both verifiers; another RP key fails both decryptors."""
    response = issue(env, applies_to=RP_PLAIN20)
    token = etree.tostring(requested_token(rstr_of(response)))
    with pytest.raises(signxml.exceptions.InvalidSignature):
        checks.verify_with_signxml(checks.tampered(token, saml11=False), env.sts_cert.read_bytes(), saml11=False)
    other_cert = env.instance.ca_file  # the TLS certificate: valid, but not the signer's
    with pytest.raises(AssertionError):  # the embedded certificate is not the pinned one
        checks.verify_with_signxml(token, other_cert.read_bytes(), saml11=False)
    with pytest.raises((signxml.exceptions.InvalidSignature, signxml.exceptions.InvalidCertificate)):
        XMLVerifier().verify(token, x509_cert=other_cert.read_text(), id_attribute="ID")
    path = tmp_path / "assertion.xml"
    path.write_bytes(token)
    assert checks.run_xmlsec1_verify(path, other_cert, saml11=False).returncode != 0
    assert checks.run_xmlsec1_verify(path, env.sts_cert, saml11=False).returncode == 0

    response = issue(env)
    encrypted = encrypted_data_of(requested_token(rstr_of(response)))
    with pytest.raises(xmlsec.Error):
        checks.decrypt_with_python_xmlsec(encrypted, env.rp_keys[RP_CBC])
    with pytest.raises(AssertionError):
        checks.decrypt_with_xmlsec1(etree.tostring(encrypted), env.rp_keys[RP_CBC])
