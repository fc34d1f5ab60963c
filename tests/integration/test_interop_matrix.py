"""Interop matrix against a real gunicorn (2 workers, TLS): every SOAP × WS-Trust × token-type spelling ×
encryption combination, the request shapes of the main client families, a zeep client built from the served
WSDL, fault shapes in both SOAP versions and the ``sts request`` sample client in all four version pairs.

Tokens are opened independently of the STS's own crypto (tests/token_checks.py): decrypted with python-xmlsec
and the xmlsec1 CLI, verified with signxml and xmlsec1 against the pinned signing certificate
(wstrust-protocol.md §2, §3, §5-§8, §12-§14, §17 R1-R45).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from sts.crypto import keygen
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from tests import client_families as cf
from tests import token_checks as checks
from tests.support import STS_BIN, Instance, Server, make_instance, start_server, wsu_timestamp

pytestmark = pytest.mark.integration

# --- constants -------------------------------------------------------------------------------------------------------

S11, S12 = cf.S11, cf.S12
WST, WST05 = cf.WST, cf.WST05
WSA, WSA04 = cf.WSA, cf.WSA04
WSP, WSP15 = cf.WSP, cf.WSP15
WSSE, WSU, WSID = cf.WSSE, cf.WSU, cf.WSID
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
SAML1, SAML2, XENC, DS = checks.SAML1, checks.SAML2, checks.XENC, checks.DS
XML_NS = "http://www.w3.org/XML/1998/namespace"
SAML11_PROFILE, SAML20_PROFILE = cf.SAML11_PROFILE, cf.SAML20_PROFILE
SAML11_URN, SAML20_URN = cf.SAML11_URN, cf.SAML20_URN
SAMLID = f"{cf.PROFILE}#SAMLID"
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
NO_PROOF_KEY = cf.NO_PROOF_KEY
WSO2 = cf.WSO2_CLAIMS
EMAIL, GIVENNAME = f"{WSO2}/emailaddress", f"{WSO2}/givenname"

RP_ENC = "https://rp.example.com/enc/"
RP_PLAIN = "https://rp.example.com/plain/"
RP_UNKNOWN = "https://rp.example.com/not-registered/"
RP_ADFS = "https://rp.example.com/adfs-profile/"  # encrypting, profile adfs (.NET/WIF relying parties)
RP_WSO2 = "https://rp.example.com/wso2-profile/"  # not encrypting, profile wso2
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
PASSWORD = "Interop-Matrix-Pass-7"
DIGEST_USER, WRONG_PW_USER = "zed", "wrongpw"
MEDIA = {S11: "text/xml", S12: "application/soap+xml"}
ISSUE_RESPONSE_ACTION = {WST: f"{WST}/RSTRC/IssueFinal", WST05: f"{WST05}/RSTR/Issue"}
FAULT_ACTION = {WSA: f"{WSA}/soap/fault", WSA04: f"{WSA04}/fault"}
FAILED_AUTH_STRING = "The security token could not be authenticated or authorized"
INVALID_SCOPE_STRING = "The request scope is invalid or unsupported"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SP = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
SOAP12_ALIAS = ".wso2carbon-stsHttpsSoap12Endpoint"
PLAIN_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]*")


# --- module instance -------------------------------------------------------------------------------------------------


@dataclass
class Env:
    instance: Instance
    server: Server
    rp_key: Path  # private key of the encrypting RP

    @property
    def sts_cert(self) -> Path:
        return self.instance.signing_cert

    @property
    def admin_password(self) -> str:
        return self.instance.demo_password

    def post(self, request: cf.ClientRequest, url: str | None = None) -> requests.Response:
        return requests.post(
            url or self.server.url, data=request.body, headers=request.headers, verify=self.server.verify, timeout=30
        )


def _add_user(instance: Instance, name: str, *args: str) -> None:
    saved, sys.stdin = sys.stdin, io.StringIO(PASSWORD + "\n")
    try:
        assert instance.cli("user", "add", name, "--password-stdin", *args) == 0
    finally:
        sys.stdin = saved


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    instance = make_instance(tmp_path_factory.mktemp("interop") / "var")
    _add_user(
        instance,
        DIGEST_USER,
        "--digest",
        "--role",
        "admin",
        "--claim",
        f"{EMAIL}=zed@example.com",
        "--claim",
        f"{GIVENNAME}=Zed",
    )
    _add_user(instance, WRONG_PW_USER, "--role", "admin")
    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(key, "interop encrypting relying party")
    rp_dir = instance.base / "interop-rp"
    keygen.write_private_key(rp_dir / "enc.key.pem", key)
    keygen.write_certificate(rp_dir / "enc.crt.pem", cert)
    shutil.copyfile(rp_dir / "enc.crt.pem", instance.base / "keystore" / "truststore" / "interop-enc.crt.pem")
    db = Database(instance.base / "sts.db")
    rps = RelyingPartyRegistry(SqliteRelyingPartyStore(db))
    rps.add(RelyingParty(address=RP_ENC, cert_file="interop-enc.crt.pem", claims=(EMAIL, GIVENNAME)))
    rps.add(RelyingParty(address=RP_PLAIN, encrypt=False, claims=(EMAIL, GIVENNAME)))
    rps.add(RelyingParty(address=RP_ADFS, cert_file="interop-enc.crt.pem", profile="adfs", claims=(EMAIL,)))
    rps.add(RelyingParty(address=RP_WSO2, encrypt=False, profile="wso2", claims=(EMAIL,)))
    db.close()
    server = start_server(instance, workers=2, tls=True)
    try:
        yield Env(instance, server, rp_dir / "enc.key.pem")
    finally:
        server.stop()


# --- reading answers -------------------------------------------------------------------------------------------------


def media_type(response: requests.Response) -> tuple[str, dict[str, str]]:
    media, *params = response.headers.get("Content-Type", "").split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def check_content_type(response: requests.Response, soap_ns: str) -> None:
    media, params = media_type(response)
    assert media == MEDIA[soap_ns], response.headers.get("Content-Type")
    assert params.get("charset", "").lower() == "utf-8", response.headers.get("Content-Type")


def answer_rstr(response: requests.Response, request: cf.ClientRequest) -> tuple[etree._Element, etree._Element]:
    """(envelope, RSTR): HTTP 200 in the request's SOAP version; an RSTRC with exactly one RSTR for 1.3, a bare
    RSTR for Feb 2005 (R4); nothing from the other trust namespace (§2)."""
    assert response.status_code == 200, response.content[:3000]
    check_content_type(response, request.soap_ns)
    response.content.decode("ascii")  # non-ASCII only as character references (R6)
    root = etree.fromstring(response.content)
    prefixes = {prefix for element in root.iter() for prefix in element.nsmap}
    assert all(p is not None and PLAIN_PREFIX.fullmatch(p) for p in prefixes), prefixes  # R5
    # What a regex-reading client finds (R5): the TokenType text of the answer's one RSTR.
    found = re.findall(rb"<(?:\w+:)?TokenType>([^<]*)</(?:\w+:)?TokenType>", response.content)
    assert len(found) == 1, found
    assert root.tag == f"{{{request.soap_ns}}}Envelope"
    body = root.find(f"{{{request.soap_ns}}}Body")
    assert body is not None and len(body) == 1, response.content[:3000]
    child = body[0]
    other = WST05 if request.trust_ns == WST else WST
    assert not [e for e in body.iter() if isinstance(e.tag, str) and etree.QName(e).namespace == other]
    if request.trust_ns == WST:
        assert child.tag == f"{{{WST}}}RequestSecurityTokenResponseCollection", child.tag
        assert [c.tag for c in child] == [f"{{{WST}}}RequestSecurityTokenResponse"]
        return root, child[0]
    assert child.tag == f"{{{WST05}}}RequestSecurityTokenResponse", child.tag
    return root, child


def check_addressing(root: etree._Element, request: cf.ClientRequest, action: str | None) -> None:
    """Action and RelatesTo in the request's WS-Addressing namespace; none at all without WS-Addressing (§6, §14)."""
    header = root.find(f"{{{etree.QName(root).namespace}}}Header")
    blocks = [] if header is None else [b for b in header if isinstance(b.tag, str)]
    if request.wsa_ns is None:
        assert not [b for b in blocks if etree.QName(b).namespace in (WSA, WSA04)], etree.tostring(root)[:2000]
        return
    ns_ = request.wsa_ns
    assert [b.text for b in blocks if b.tag == f"{{{ns_}}}Action"] == [action]
    relates = [b.text for b in blocks if b.tag == f"{{{ns_}}}RelatesTo"]
    assert relates == ([request.message_id] if request.message_id else [])
    other = WSA04 if ns_ == WSA else WSA
    assert not [b for b in blocks if etree.QName(b).namespace == other]


def requested_token(rstr: etree._Element, trust_ns: str) -> etree._Element:
    """The token is the first and only child node of RequestedSecurityToken (R1)."""
    holders = rstr.findall(f"{{{trust_ns}}}RequestedSecurityToken")
    assert len(holders) == 1
    holder = holders[0]
    assert holder.text is None, f"text before the token: {holder.text!r}"
    assert len(holder) == 1
    token = holder[0]
    assert isinstance(token.tag, str), "the first child node is not an element"
    assert token.tail is None
    return token


def open_token(env: Env, token: etree._Element, *, saml11: bool, encrypted: bool) -> etree._Element:
    """Decrypt (python-xmlsec and xmlsec1 CLI must agree) and verify with signxml + xmlsec1; the signed assertion."""
    if encrypted:
        if saml11:
            assert token.tag == f"{{{XENC}}}EncryptedData", token.tag  # bare EncryptedData (R33)
            data = token
        else:
            assert token.tag == f"{{{SAML2}}}EncryptedAssertion", token.tag
            assert [c.tag for c in token] == [f"{{{XENC}}}EncryptedData"]
            data = token[0]
        assert data.find(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey") is not None  # R32
        plain = checks.decrypt_with_python_xmlsec(data, env.rp_key)
        other = checks.decrypt_with_xmlsec1(etree.tostring(data), env.rp_key)
        c14n = {etree.tostring(etree.fromstring(p), method="c14n", exclusive=True) for p in (plain, other)}
        assert len(c14n) == 1, "python-xmlsec and xmlsec1 disagree about the plaintext"
    else:
        assert token.tag == f"{{{SAML1 if saml11 else SAML2}}}Assertion", token.tag
        plain = etree.tostring(token)
    return checks.verify_with_both(plain, env.sts_cert, saml11)


def conditions_window(assertion: etree._Element, saml11: bool) -> tuple[str | None, str | None]:
    conditions = assertion.find(f"{{{SAML1 if saml11 else SAML2}}}Conditions")
    assert conditions is not None
    return conditions.get("NotBefore"), conditions.get("NotOnOrAfter")


def audiences(assertion: etree._Element, saml11: bool) -> list[str | None]:
    path = (
        f"{{{SAML1}}}Conditions/{{{SAML1}}}AudienceRestrictionCondition/{{{SAML1}}}Audience"
        if saml11
        else f"{{{SAML2}}}Conditions/{{{SAML2}}}AudienceRestriction/{{{SAML2}}}Audience"
    )
    return [a.text for a in assertion.findall(path)]


def check_issued(
    env: Env,
    rstr: etree._Element,
    trust_ns: str,
    *,
    token_type: str,
    key_type: str,
    applies_to: str,
    policy_ns: str = WSP,
    encrypted: bool,
) -> etree._Element:
    """Everything §5 / R1-R9 ask of an Issue RSTR; returns the verified assertion."""
    saml11 = token_type in (SAML11_PROFILE, SAML11_URN)
    assert [t.text for t in rstr.findall(f"{{{trust_ns}}}TokenType")] == [token_type]  # exact text (R2, R3)
    token = requested_token(rstr, trust_ns)
    signed = open_token(env, token, saml11=saml11, encrypted=encrypted)
    assertion_id = signed.get("AssertionID" if saml11 else "ID")
    assert assertion_id
    ref_type = SAML11_PROFILE if saml11 else SAML20_PROFILE
    value_type = SAML_ASSERTION_ID if saml11 else SAMLID
    for wrapper in ("RequestedAttachedReference", "RequestedUnattachedReference"):  # R7
        strs = rstr.findall(f"{{{trust_ns}}}{wrapper}/{{{WSSE}}}SecurityTokenReference")
        assert len(strs) == 1, wrapper
        assert strs[0].get(f"{{{WSSE11}}}TokenType") == ref_type
        key_ids = strs[0].findall(f"{{{WSSE}}}KeyIdentifier")
        assert [(k.get("ValueType"), k.text) for k in key_ids] == [(value_type, assertion_id)]
    not_before, not_on_or_after = conditions_window(signed, saml11)
    assert [e.text for e in rstr.findall(f"{{{trust_ns}}}Lifetime/{{{WSU}}}Created")] == [not_before]
    assert [e.text for e in rstr.findall(f"{{{trust_ns}}}Lifetime/{{{WSU}}}Expires")] == [not_on_or_after]
    assert [k.text for k in rstr.findall(f"{{{trust_ns}}}KeyType")] == [key_type]  # R9
    epr_addresses = [
        address.text
        for epr_ns in (WSA, WSA04)
        for address in rstr.findall(f"{{{policy_ns}}}AppliesTo/{{{epr_ns}}}EndpointReference/{{{epr_ns}}}Address")
    ]
    assert epr_addresses == [applies_to]  # R8: echoed in the request's policy namespace
    assert audiences(signed, saml11) == [applies_to]  # R37
    return signed


def saml_attributes(assertion: etree._Element, saml11: bool) -> dict[str, list[str | None]]:
    if saml11:
        return {
            f"{a.get('AttributeNamespace')}/{a.get('AttributeName')}": [
                v.text for v in a.findall(f"{{{SAML1}}}AttributeValue")
            ]
            for a in assertion.findall(f"{{{SAML1}}}AttributeStatement/{{{SAML1}}}Attribute")
        }
    return {
        str(a.get("Name")): [v.text for v in a.findall(f"{{{SAML2}}}AttributeValue")]
        for a in assertion.findall(f"{{{SAML2}}}AttributeStatement/{{{SAML2}}}Attribute")
    }


# --- 1. the matrix ---------------------------------------------------------------------------------------------------

TOKEN_TYPES = [SAML11_PROFILE, SAML20_PROFILE, SAML11_URN, SAML20_URN]
TOKEN_IDS = {SAML11_PROFILE: "SAMLV1.1", SAML20_PROFILE: "SAMLV2.0", SAML11_URN: "urn-saml1", SAML20_URN: "urn-saml2"}
MATRIX = list(itertools.product(["1.1", "1.2"], ["1.3", "2005"], TOKEN_TYPES, [True, False]))
ADDRESSING_CYCLE = [WSA, None, WSA04]  # each SOAP × trust pair meets all three across the token types


def matrix_key_type(trust: str, token_type: str) -> str:
    """Bearer; Feb 2005 in both spellings (R15), each spelling with both SAML versions."""
    if trust == "1.3":
        return f"{WST}/Bearer"
    position = TOKEN_TYPES.index(token_type)  # SAMLV1.1, SAMLV2.0, urn 1.1, urn 2.0
    return [NO_PROOF_KEY, f"{WST05}/Bearer"][(position + position // 2) % 2]


def _matrix_id(case: tuple[str, str, str, bool]) -> str:
    soap, trust, token_type, encrypted = case
    return f"soap{soap}-trust{trust}-{TOKEN_IDS[token_type]}-{'enc' if encrypted else 'plain'}"


@pytest.mark.parametrize(("soap", "trust", "token_type", "encrypted"), MATRIX, ids=[_matrix_id(c) for c in MATRIX])
def test_matrix(env: Env, soap: str, trust: str, token_type: str, encrypted: bool) -> None:
    index = MATRIX.index((soap, trust, token_type, encrypted))
    trust_ns = WST if trust == "1.3" else WST05
    wsa_ns = ADDRESSING_CYCLE[index % len(ADDRESSING_CYCLE)]
    key_type = matrix_key_type(trust, token_type)
    rp = RP_ENC if encrypted else RP_PLAIN
    request = cf.generic_rst(
        "admin",
        env.admin_password,
        rp,
        soap12=soap == "1.2",
        trust_ns=trust_ns,
        token_type=token_type,
        key_type=key_type,
        wsa_ns=wsa_ns,
        url=env.server.url,
    )
    if soap == "1.2":
        assert "SOAPAction" not in request.headers and "action=" in request.headers["Content-Type"]
    else:
        assert request.headers["SOAPAction"] == f'"{trust_ns}/RST/Issue"'
    root, rstr = answer_rstr(env.post(request), request)
    check_addressing(root, request, ISSUE_RESPONSE_ACTION[trust_ns])
    check_issued(env, rstr, trust_ns, token_type=token_type, key_type=key_type, applies_to=rp, encrypted=encrypted)


def test_matrix_covers_every_combination_and_addressing_variant() -> None:
    assert len(MATRIX) == 32 and len(set(MATRIX)) == 32
    variants = {(s, t, ADDRESSING_CYCLE[i % 3]) for i, (s, t, _, _) in enumerate(MATRIX)}
    assert len(variants) == 2 * 2 * 3
    saml11 = {SAML11_PROFILE: True, SAML20_PROFILE: False, SAML11_URN: True, SAML20_URN: False}
    feb2005_keys = {(saml11[tt], matrix_key_type("2005", tt)) for tt in TOKEN_TYPES}
    assert feb2005_keys == {(v, k) for v in (True, False) for k in (NO_PROOF_KEY, f"{WST05}/Bearer")}


# --- 2. client families ----------------------------------------------------------------------------------------------


def test_wcf_shape_gets_urn_saml2_by_default(env: Env) -> None:
    request = cf.wcf_ms_client("admin", env.admin_password, RP_ENC, url=env.server.url)
    assert request.headers["Content-Type"] == "application/soap+xml; charset=utf-8"  # no action parameter (R22)
    assert b"TokenType" not in request.body and b"Nonce" not in request.body
    root, rstr = answer_rstr(env.post(request), request)
    check_addressing(root, request, f"{WST}/RSTRC/IssueFinal")
    # No TokenType sent: the RP default (strict: SAML 2.0) in the urn: spelling (R3), which this client asserts.
    check_issued(env, rstr, WST, token_type=SAML20_URN, key_type=f"{WST}/Bearer", applies_to=RP_ENC, encrypted=True)


def test_wcf_feb2005_shape_echoes_no_proof_key(env: Env) -> None:
    request = cf.wcf_ms_client("admin", env.admin_password, RP_PLAIN, feb2005=True, url=env.server.url)
    root, rstr = answer_rstr(env.post(request), request)
    check_addressing(root, request, f"{WST05}/RSTR/Issue")
    check_issued(env, rstr, WST05, token_type=SAML20_URN, key_type=NO_PROOF_KEY, applies_to=RP_PLAIN, encrypted=False)


def test_wcf_shape_timestamp_is_ten_minutes_whole_seconds() -> None:
    """The builder itself matches R23 (so the test above really exercises that shape)."""
    root = etree.fromstring(cf.wcf_ms_client("u", "p", RP_ENC).body)
    created = root.findtext(f".//{{{WSU}}}Timestamp/{{{WSU}}}Created")
    expires = root.findtext(f".//{{{WSU}}}Timestamp/{{{WSU}}}Expires")
    assert created and expires and created.endswith("Z") and "." not in created
    delta = dt.datetime.fromisoformat(expires) - dt.datetime.fromisoformat(created)
    assert delta == dt.timedelta(minutes=10)
    assert root.find(f".//{{{WSU}}}Timestamp").get(f"{{{WSU}}}Id") == "_0"  # type: ignore[union-attr]
    password = root.find(f".//{{{WSSE}}}Password")
    assert password is not None and password.get("Type") is None
    must = {etree.QName(h).localname for h in root.iter() if h.get(f"{{{S12}}}mustUnderstand") == "1"}
    assert must == {"Action", "To", "Security"}


def test_java_wss4j_shape(env: Env) -> None:
    request = cf.java_wss4j("admin", env.admin_password, RP_ENC, url=env.server.url)
    created = etree.fromstring(request.body).findtext(f".//{{{WSSE}}}UsernameToken/{{{WSU}}}Created") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", created), created  # milliseconds (R16)
    root, rstr = answer_rstr(env.post(request), request)
    check_addressing(root, request, f"{WST}/RSTRC/IssueFinal")
    # W3C-namespace AppliesTo (R21) is echoed in the request's namespace under the strict profile (§5).
    check_issued(
        env,
        rstr,
        WST,
        token_type=SAML20_PROFILE,
        key_type=f"{WST}/Bearer",
        applies_to=RP_ENC,
        policy_ns=WSP15,
        encrypted=True,
    )


def test_wso2_rahas_shape_gets_saml11_with_claims(env: Env) -> None:
    request = cf.wso2_rahas("admin", env.admin_password, RP_ENC, url=env.server.url)
    assert b"\n" in request.body and b'mustUnderstand="true"' in request.body
    root, rstr = answer_rstr(env.post(request), request)
    check_addressing(root, request, f"{WST05}/RSTR/Issue")
    # TokenType and KeyType were sent wrapped in whitespace: echoed collapsed (R17).
    signed = check_issued(
        env, rstr, WST05, token_type=SAML11_PROFILE, key_type=f"{WST05}/Bearer", applies_to=RP_ENC, encrypted=True
    )
    assert signed.tag == f"{{{SAML1}}}Assertion"
    assert saml_attributes(signed, saml11=True) == {GIVENNAME: ["Demo"], EMAIL: ["admin@example.com"]}


def test_wso2_rahas_qualified_dialect_selects_requested_claims(env: Env) -> None:
    """A Rahas-shaped ``Claims`` (qualified ``wst:Dialect``, ``wsp`` bound to the trust namespace, R40) asking for
    givenname only: only givenname is issued, not the RP's whole claim set."""
    request = cf.wso2_rahas("admin", env.admin_password, RP_PLAIN, claims=(GIVENNAME,), url=env.server.url)
    _, rstr = answer_rstr(env.post(request), request)
    signed = check_issued(
        env,
        rstr,
        WST05,
        token_type=SAML11_PROFILE,
        key_type=f"{WST05}/Bearer",
        applies_to=RP_PLAIN,
        encrypted=False,
    )
    assert saml_attributes(signed, saml11=True) == {GIVENNAME: ["Demo"]}


@pytest.mark.parametrize("token_type", [SAML20_URN, SAML11_URN])
def test_python_zeep_like_shape(env: Env, token_type: str) -> None:
    request = cf.python_zeep_like(DIGEST_USER, PASSWORD, RP_ENC, token_type=token_type, url=env.server.url)
    assert b"+00:00</ns0:Created>" in request.body and b'Id="Timestamp-20' in request.body
    root, rstr = answer_rstr(env.post(request), request)
    check_addressing(root, request, None)
    signed = check_issued(
        env, rstr, WST, token_type=token_type, key_type=f"{WST}/Bearer", applies_to=RP_ENC, encrypted=True
    )
    attrs = saml_attributes(signed, saml11=token_type == SAML11_URN)
    assert attrs == {EMAIL: ["zed@example.com"], GIVENNAME: ["Zed"]}


def test_node_like_shape(env: Env) -> None:
    request = cf.node_like("admin", env.admin_password, RP_PLAIN, url=env.server.url)
    response = env.post(request)
    root, rstr = answer_rstr(response, request)
    # Action understood; the lowercase wsa:messageID is an unknown header, so nothing relates to it (§14).
    check_addressing(root, request, f"{WST}/RSTRC/IssueFinal")
    check_issued(env, rstr, WST, token_type=SAML20_URN, key_type=f"{WST}/Bearer", applies_to=RP_PLAIN, encrypted=False)


def test_wcf_shape_against_adfs_profile_rp(env: Env) -> None:
    """The adfs profile (sts.relying_parties.profiles): SAML 1.1 in the urn: spelling Microsoft's client code
    accepts (R3), AES-256-CBC with RSA-OAEP-MGF1P for .NET's EncryptedXml (R30, R31), AppliesTo in WS-Policy
    2004/09 (R8)."""
    request = cf.wcf_ms_client("admin", env.admin_password, RP_ADFS, url=env.server.url)
    _, rstr = answer_rstr(env.post(request), request)
    token = requested_token(rstr, WST)
    assert token.tag == f"{{{XENC}}}EncryptedData"
    assert token.find(f"{{{XENC}}}EncryptionMethod").get("Algorithm") == AES256_CBC  # type: ignore[union-attr]
    key_method = token.find(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
    assert key_method is not None and key_method.get("Algorithm") == RSA_OAEP_MGF1P
    signed = check_issued(
        env, rstr, WST, token_type=SAML11_URN, key_type=f"{WST}/Bearer", applies_to=RP_ADFS, encrypted=True
    )
    assert saml_attributes(signed, saml11=True) == {EMAIL: ["admin@example.com"]}


def test_wso2_profile_rp_defaults_and_applies_to_namespace(env: Env) -> None:
    """The wso2 profile: SAML 1.1 when no TokenType is sent, spelled urn: (R45 with R3); a W3C-namespace AppliesTo
    is echoed in WS-Policy 2004/09, the only namespace Rahas reads (R41)."""
    request = cf.wso2_rahas("admin", env.admin_password, RP_WSO2, token_type=None, claims=(), url=env.server.url)
    assert b"TokenType" not in request.body
    _, rstr = answer_rstr(env.post(request), request)
    check_issued(
        env, rstr, WST05, token_type=SAML11_URN, key_type=f"{WST05}/Bearer", applies_to=RP_WSO2, encrypted=False
    )
    request = cf.java_wss4j("admin", env.admin_password, RP_WSO2, url=env.server.url)
    _, rstr = answer_rstr(env.post(request), request)
    assert rstr.find(f"{{{WSP15}}}AppliesTo") is None
    check_issued(
        env, rstr, WST, token_type=SAML20_PROFILE, key_type=f"{WST}/Bearer", applies_to=RP_WSO2, encrypted=False
    )


# --- 3. zeep from the served WSDL ------------------------------------------------------------------------------------


def _wsdl(env: Env) -> etree._Element:
    response = requests.get(env.server.url + "?wsdl", verify=env.server.verify, timeout=30)
    assert response.status_code == 200
    return etree.fromstring(response.content)


def test_wsdl_embeds_transport_policy(env: Env) -> None:
    wsdl = _wsdl(env)
    policies = {p.get(f"{{{WSU}}}Id"): p for p in wsdl.findall(f"{{{WSP}}}Policy")}
    assert set(policies) == {"UTOverTransport", "UTOverTransportFeb2005"}
    alternative = policies["UTOverTransport"].findall(f"{{{WSP}}}ExactlyOne/{{{WSP}}}All")
    assert len(alternative) == 1
    assert alternative[0].find(f"{{{SP}}}TransportBinding/{{{WSP}}}Policy/{{{SP}}}IncludeTimestamp") is not None
    tokens = alternative[0].findall(f"{{{SP}}}SignedEncryptedSupportingTokens/{{{WSP}}}Policy/{{{SP}}}UsernameToken")
    assert len(tokens) == 1
    references = wsdl.findall(f"{{{WSDL_NS}}}binding/{{{WSP}}}PolicyReference")
    assert [r.get("URI") for r in references] == ["#UTOverTransport", "#UTOverTransport", "#UTOverTransportFeb2005"]
    # The ports zeep binds to below: SOAP 1.1 on the WSO2 path, SOAP 1.2 on the Axis2-style alias (§3).
    ports = wsdl.findall(f"{{{WSDL_NS}}}service/{{{WSDL_NS}}}port")
    locations = {p.get("name"): [a.get("location") for a in p if etree.QName(a).localname == "address"] for p in ports}
    assert locations["wso2carbon-stsHttpsSoap11Endpoint"] == [env.server.url]
    assert locations["wso2carbon-stsHttpsSoap12Endpoint"] == [env.server.url + SOAP12_ALIAS]


def _zeep_service(env: Env, soap12: bool, digest: bool) -> tuple[Any, Any]:
    import zeep
    from zeep.plugins import HistoryPlugin
    from zeep.transports import Transport
    from zeep.wsse.username import UsernameToken

    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the CA file below
    session.verify = str(env.instance.ca_file)
    user, password = (DIGEST_USER, PASSWORD) if digest else ("admin", env.admin_password)
    history = HistoryPlugin()  # type: ignore[no-untyped-call]
    client = zeep.Client(  # type: ignore[no-untyped-call]
        env.server.url + "?wsdl",
        transport=Transport(session=session, timeout=30),  # type: ignore[no-untyped-call]
        # zeep sends a Timestamp only when given one; the published policy requires it (sp:IncludeTimestamp).
        wsse=UsernameToken(  # type: ignore[no-untyped-call]
            user, password, use_digest=digest, timestamp_token=wsu_timestamp()
        ),
        plugins=[history],
    )
    # The port as the WSDL advertises it: the SOAP 1.2 port lives on the Axis2-style alias path.
    port = "wso2carbon-stsHttpsSoap12Endpoint" if soap12 else "wso2carbon-stsHttpsSoap11Endpoint"
    return client.bind("wso2carbon-sts", port), history


def _wst(local: str, text: str) -> etree._Element:
    element = etree.Element(f"{{{WST}}}{local}")
    element.text = text
    return element


def _applies_to_element(address: str) -> etree._Element:
    applies = etree.Element(f"{{{WSP}}}AppliesTo", nsmap={"wsp": WSP})
    epr = etree.SubElement(applies, f"{{{WSA}}}EndpointReference", nsmap={"wsa": WSA})
    etree.SubElement(epr, f"{{{WSA}}}Address").text = address
    return applies


@pytest.mark.parametrize(
    ("soap12", "token_type", "digest"),
    [(False, SAML20_URN, True), (False, SAML11_URN, False), (True, SAML20_URN, False), (True, SAML11_URN, True)],
    ids=["soap11-saml2-digest", "soap11-saml1-text", "soap12-saml2-text", "soap12-saml1-digest"],
)
def test_zeep_client_from_wsdl(env: Env, soap12: bool, token_type: str, digest: bool) -> None:
    service, history = _zeep_service(env, soap12, digest)
    result = service.Issue(
        _value_1=[
            _wst("TokenType", token_type),
            _wst("RequestType", f"{WST}/Issue"),
            _applies_to_element(RP_ENC),
            _wst("KeyType", f"{WST}/Bearer"),
        ]
    )
    soap_ns = S12 if soap12 else S11
    sent = history.last_sent
    assert etree.QName(sent["envelope"]).namespace == soap_ns
    password = sent["envelope"].find(f".//{{{WSSE}}}UsernameToken/{{{WSSE}}}Password")
    assert password is not None and password.get("Type") == (cf.PW_DIGEST if digest else cf.PW_TEXT)
    received = history.last_received
    assert etree.QName(received["envelope"]).namespace == soap_ns
    assert received["http_headers"]["Content-Type"].split(";")[0].strip() == MEDIA[soap_ns]
    responses = result["RequestSecurityTokenResponse"]
    assert len(responses) == 1
    children = responses[0]["_value_1"]
    rstr = etree.Element(f"{{{WST}}}RequestSecurityTokenResponse")
    for child in children:
        rstr.append(child)
    signed = check_issued(
        env, rstr, WST, token_type=token_type, key_type=f"{WST}/Bearer", applies_to=RP_ENC, encrypted=True
    )
    expected_email = "zed@example.com" if digest else "admin@example.com"
    assert saml_attributes(signed, token_type == SAML11_URN)[EMAIL] == [expected_email]


def test_soap12_alias_path_answers_soap12(env: Env) -> None:
    request = cf.generic_rst("admin", env.admin_password, RP_PLAIN, soap12=True, url=env.server.url)
    response = env.post(request, env.server.url + SOAP12_ALIAS)
    _, rstr = answer_rstr(response, request)
    check_issued(env, rstr, WST, token_type=SAML20_URN, key_type=f"{WST}/Bearer", applies_to=RP_PLAIN, encrypted=False)


# --- 4. fault shapes -------------------------------------------------------------------------------------------------


def _qname_of(element: etree._Element) -> tuple[str, str]:
    """Resolve ``prefix:local`` element text through the in-scope namespaces (the QName must be resolvable)."""
    text = (element.text or "").strip()
    prefix, sep, local = text.partition(":")
    assert sep and prefix and local, text
    assert prefix in element.nsmap, f"prefix {prefix!r} of {text!r} is not declared"
    return element.nsmap[prefix], local


def check_fault(
    response: requests.Response, request: cf.ClientRequest, code: tuple[str, str], reason: str
) -> etree._Element:
    """The fault shape of §13 in the request's SOAP version; returns the envelope."""
    assert b"RequestSecurityTokenResponse" not in response.content
    check_content_type(response, request.soap_ns)
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{request.soap_ns}}}Envelope"
    if request.soap_ns == S11:
        assert response.status_code == 500
        faults = root.findall(f"{{{S11}}}Body/{{{S11}}}Fault")
        assert len(faults) == 1
        codes = faults[0].findall("faultcode")
        assert len(codes) == 1
        assert _qname_of(codes[0]) == code
        assert faults[0].findtext("faultstring") == reason
    else:
        assert response.status_code == 400
        faults = root.findall(f"{{{S12}}}Body/{{{S12}}}Fault")
        assert len(faults) == 1
        values = faults[0].findall(f"{{{S12}}}Code/{{{S12}}}Value")
        assert len(values) == 1 and _qname_of(values[0]) == (S12, "Sender")
        subcodes = faults[0].findall(f"{{{S12}}}Code/{{{S12}}}Subcode/{{{S12}}}Value")
        assert len(subcodes) == 1 and _qname_of(subcodes[0]) == code  # always present (R10)
        texts = faults[0].findall(f"{{{S12}}}Reason/{{{S12}}}Text")
        assert [(t.get(f"{{{XML_NS}}}lang"), t.text) for t in texts] == [("en", reason)]
    return root


FAULT_CASES = list(itertools.product(["1.1", "1.2"], ["1.3", "2005"], ["wrong-password", "unknown-applies-to"]))


@pytest.mark.parametrize(("soap", "trust", "case"), FAULT_CASES, ids=["-".join(c) for c in FAULT_CASES])
def test_fault_shapes(env: Env, soap: str, trust: str, case: str) -> None:
    trust_ns = WST if trust == "1.3" else WST05
    wsa_ns = WSA if trust == "1.3" else WSA04
    if case == "wrong-password":
        user, password, rp = WRONG_PW_USER, PASSWORD + "-wrong", RP_PLAIN
        code, reason = (WSSE, "FailedAuthentication"), FAILED_AUTH_STRING  # one fault for all (R11)
    else:
        user, password, rp = "admin", env.admin_password, RP_UNKNOWN
        code, reason = (trust_ns, "InvalidScope"), INVALID_SCOPE_STRING  # in the request's trust namespace
    request = cf.generic_rst(
        user,
        password,
        rp,
        soap12=soap == "1.2",
        trust_ns=trust_ns,
        token_type=SAML20_URN,
        wsa_ns=wsa_ns,
        url=env.server.url,
    )
    root = check_fault(env.post(request), request, code, reason)
    check_addressing(root, request, FAULT_ACTION[wsa_ns])  # fault action + RelatesTo (§13)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_envelope_level_fault_carries_wsa_fault_action(env: Env, soap: str) -> None:
    request = cf.generic_rst("admin", env.admin_password, RP_PLAIN, soap12=soap == "1.2", url=env.server.url)
    root = etree.fromstring(request.body)
    body = root.find(f"{{{request.soap_ns}}}Body")
    assert body is not None
    etree.SubElement(body, "{urn:example:extra}Extra")  # a second Body child: wst:InvalidRequest (§12)
    response = env.post(replace(request, body=etree.tostring(root)))
    answer = check_fault(response, request, (WST, "InvalidRequest"), "The request was invalid or malformed")
    check_addressing(answer, request, FAULT_ACTION[WSA])


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_soap12_fault_without_addressing_has_no_wsa_headers(env: Env, trust: str) -> None:
    trust_ns = WST if trust == "1.3" else WST05
    request = cf.generic_rst(
        "admin", env.admin_password, RP_UNKNOWN, soap12=True, trust_ns=trust_ns, wsa_ns=None, url=env.server.url
    )
    root = check_fault(env.post(request), request, (trust_ns, "InvalidScope"), INVALID_SCOPE_STRING)
    check_addressing(root, request, None)


def test_soap12_envelope_as_text_xml_is_version_mismatch(env: Env) -> None:
    request = cf.generic_rst("admin", env.admin_password, RP_PLAIN, soap12=True, url=env.server.url)
    response = requests.post(
        env.server.url,
        data=request.body,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'},
        verify=env.server.verify,
        timeout=30,
    )
    assert response.status_code == 500, response.content[:2000]
    check_content_type(response, S11)
    root = etree.fromstring(response.content)
    codes = root.findall(f"{{{S11}}}Body/{{{S11}}}Fault/faultcode")
    assert len(codes) == 1 and _qname_of(codes[0]) == (S11, "VersionMismatch")
    assert b"RequestSecurityTokenResponse" not in response.content


def test_soap11_envelope_as_soap_xml_is_a_soap11_version_mismatch_with_upgrade(env: Env) -> None:
    """SOAP 1.2 Part 1, Appendix A: a SOAP/1.1 message gets a VersionMismatch fault built as a SOAP/1.1 message
    (its sender speaks 1.1), which should carry the Upgrade header block."""
    request = cf.generic_rst("admin", env.admin_password, RP_PLAIN, soap12=False, url=env.server.url)
    response = requests.post(
        env.server.url,
        data=request.body,
        headers=cf.soap12_headers(f"{WST}/RST/Issue"),
        verify=env.server.verify,
        timeout=30,
    )
    check_content_type(response, S11)
    root = etree.fromstring(response.content)
    codes = root.findall(f"{{{S11}}}Body/{{{S11}}}Fault/faultcode")
    assert len(codes) == 1 and _qname_of(codes[0]) == (S11, "VersionMismatch")
    supported = root.findall(f"{{{S11}}}Header/{{{S12}}}Upgrade/{{{S12}}}SupportedEnvelope")
    assert {_resolve_attr_qname(e, "qname") for e in supported} == {(S11, "Envelope"), (S12, "Envelope")}
    assert response.status_code == 500


def _resolve_attr_qname(element: etree._Element, attribute: str) -> tuple[str, str]:
    prefix, _, local = (element.get(attribute) or "").partition(":")
    return element.nsmap[prefix], local


# --- 5. the sample client --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("soap", "trust"), list(itertools.product(["1.1", "1.2"], ["1.3", "2005"])))
def test_sts_request_cli(env: Env, tmp_path: Path, soap: str, trust: str) -> None:
    out = tmp_path / "token.xml"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    result = subprocess.run(
        [
            str(STS_BIN),
            "request",
            env.server.url,
            "--username",
            "admin",
            "--password-stdin",
            "--applies-to",
            RP_ENC,
            "--cafile",
            str(env.instance.ca_file),
            "--soap",
            soap,
            "--trust",
            trust,
            "--out",
            str(out),
        ],
        input=(env.admin_password + "\n").encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env=child_env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert f"token type: {SAML20_URN}" in result.stderr.decode(errors="replace")
    token = etree.fromstring(out.read_bytes())
    # No --token-type: the RP default, SAML 2.0, encrypted for the RP.
    signed = open_token(env, token, saml11=False, encrypted=True)
    assert audiences(signed, saml11=False) == [RP_ENC]
