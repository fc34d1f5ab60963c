"""RSTR assembly (sts.wstrust.rstr) against WS-Trust 1.3 §4.4 / Feb 2005 and the interop rules (R1-R9).

The proof-key parts are checked the way a requestor uses them: the computed key is recomputed from the RSTR's
issuer entropy with an independent P_SHA1 (RFC 2246 §5, written out below with ``hmac``) and compared with the key
the STS made, and with the known-answer vector of the protocol notes (§9).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import replace

import pytest
from lxml import etree

from sts import ns
from sts.wstrust.actions import Operation
from sts.wstrust.keys import p_sha1, symmetric_proof
from sts.wstrust.model import AppliesTo
from sts.wstrust.rstr import (
    INVALID_REASON,
    VALID_REASON,
    IssuedTokenResponse,
    ProofToken,
    TokenReference,
    cancelled_answer,
    issue_answer,
    issued_rstr,
    status_answer,
)
from sts.wstrust.version import TrustVersion

WST, WST05 = ns.WST, ns.WST05
SAML20_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
SAMLID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"
CREATED = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
EXPIRES = CREATED + dt.timedelta(hours=1)
REQUESTOR_ENTROPY = bytes(range(0x00, 0x20))
ISSUER_ENTROPY = bytes(range(0x20, 0x40))


def p_sha1_rfc2246(secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash of RFC 2246 §5 with HMAC-SHA1: A(0) = seed, A(i) = HMAC(secret, A(i-1)),
    P = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ..., cut to ``length`` octets."""
    blocks, a = [], seed
    for _ in range(-(-length // hashlib.sha1().digest_size)):
        a = hmac.digest(secret, a, "sha1")
        blocks.append(hmac.digest(secret, a + seed, "sha1"))
    return b"".join(blocks)[:length]


def _token(assertion_id: str = "_tok1") -> etree._Element:
    assertion = etree.Element(f"{{{ns.SAML2}}}Assertion", nsmap={"saml2": ns.SAML2}, ID=assertion_id)
    signature = etree.SubElement(assertion, f"{{{ns.DS}}}Signature", nsmap={"ds": ns.DS})
    etree.SubElement(signature, f"{{{ns.DS}}}SignatureValue").text = "AAAA"
    return assertion


def _response(trust_ns: str = WST, **changes: object) -> IssuedTokenResponse:
    values: dict[str, object] = {
        "trust": TrustVersion(trust_ns),
        "token_type": SAML20_TYPE,
        "token": _token(),
        "reference": TokenReference(SAML20_TYPE, SAMLID, "_tok1"),
        "created": CREATED,
        "expires": EXPIRES,
        "key_type": f"{trust_ns}/Bearer",
    }
    values.update(changes)
    return IssuedTokenResponse(**values)  # type: ignore[arg-type]


def _names(element: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in element]


def _child(element: etree._Element, namespace: str, local: str) -> etree._Element:
    found = element.findall(f"{{{namespace}}}{local}")
    assert len(found) == 1, f"{local}: {len(found)}"
    return found[0]


# --- the issued RSTR ------------------------------------------------------------------------------------------------


def test_bearer_rstr_children_in_the_recommended_order() -> None:
    rstr = issued_rstr(_response())
    assert rstr.tag == f"{{{WST}}}RequestSecurityTokenResponse"
    assert rstr.get("Context") is None
    assert _names(rstr) == [
        "TokenType", "RequestedSecurityToken", "RequestedAttachedReference", "RequestedUnattachedReference",
        "Lifetime", "KeyType",
    ]
    assert _child(rstr, WST, "TokenType").text == SAML20_TYPE
    assert _child(rstr, WST, "KeyType").text == f"{WST}/Bearer"


def test_context_and_applies_to_are_echoed_in_the_request_namespaces() -> None:
    """R8: AppliesTo comes back in the policy and addressing namespaces the request used."""
    rstr = issued_rstr(
        _response(context="uuid-42", applies_to=AppliesTo("https://rp.example/app", ns.WSP15, ns.WSA04))
    )
    assert rstr.get("Context") == "uuid-42"
    assert _names(rstr)[4] == "AppliesTo"
    applies_to = _child(rstr, ns.WSP15, "AppliesTo")
    address = applies_to.findtext(f"{{{ns.WSA04}}}EndpointReference/{{{ns.WSA04}}}Address")
    assert address == "https://rp.example/app"
    assert list(applies_to.iter(f"{{{ns.WSA}}}EndpointReference")) == []


def test_token_is_the_only_child_and_inherits_no_token_namespaces() -> None:
    """R1/R2: nothing but the token inside RequestedSecurityToken, and no ancestor declares the saml2, ds or xenc
    prefixes, so the token cut out of the response carries every declaration it needs."""
    token = _token()
    standalone = etree.tostring(token, method="c14n", exclusive=True)
    collection = etree.fromstring(etree.tostring(issue_answer(_response(token=token))))
    holder = collection.find(f"{{{WST}}}RequestSecurityTokenResponse/{{{WST}}}RequestedSecurityToken")
    assert holder is not None and holder.text is None and len(holder) == 1 and holder[0].tail is None
    for ancestor in (collection, collection[0], holder):
        assert not {ns.SAML2, ns.DS, ns.XENC} & set(ancestor.nsmap.values()), ancestor.tag
    cut_out = etree.fromstring(etree.tostring(holder[0]))
    assert etree.tostring(cut_out, method="c14n", exclusive=True) == standalone


def test_attached_and_unattached_references_name_the_token() -> None:
    rstr = issued_rstr(_response())
    for local in ("RequestedAttachedReference", "RequestedUnattachedReference"):
        (reference,) = _child(rstr, WST, local)
        assert reference.tag == f"{{{ns.WSSE}}}SecurityTokenReference"
        assert reference.get(f"{{{ns.WSSE11}}}TokenType") == SAML20_TYPE
        (key_identifier,) = reference
        assert key_identifier.tag == f"{{{ns.WSSE}}}KeyIdentifier"
        assert key_identifier.get("ValueType") == SAMLID
        assert key_identifier.text == "_tok1"


def test_lifetime_is_utc_with_z_and_whole_seconds() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    rstr = issued_rstr(
        _response(
            created=dt.datetime(2030, 1, 1, 14, 0, 0, 999_999, tzinfo=berlin),
            expires=dt.datetime(2030, 1, 1, 15, 30, 0, tzinfo=berlin),
        )
    )
    lifetime = _child(rstr, WST, "Lifetime")
    assert [(child.tag, child.text) for child in lifetime] == [
        (f"{{{ns.WSU}}}Created", "2030-01-01T12:00:00Z"),
        (f"{{{ns.WSU}}}Expires", "2030-01-01T13:30:00Z"),
    ]


# --- RequestedProofToken, Entropy, KeySize (WS-Trust 1.3 §4.4.3-4.4.4) ----------------------------------------------


@pytest.mark.parametrize("trust_ns", [WST, WST05], ids=["1.3", "feb2005"])
def test_computed_key_lets_the_requestor_derive_the_same_key(trust_ns: str) -> None:
    proof = symmetric_proof(256, REQUESTOR_ENTROPY)
    assert proof.issuer_entropy is not None
    rstr = issued_rstr(
        _response(trust_ns, key_type=f"{trust_ns}/SymmetricKey",
                  proof=ProofToken(proof.bits, issuer_entropy=proof.issuer_entropy))
    )
    assert _names(rstr)[-4:] == ["RequestedProofToken", "Entropy", "KeySize", "KeyType"]
    requested = _child(rstr, trust_ns, "RequestedProofToken")
    assert [(child.tag, child.text) for child in requested] == [(f"{{{trust_ns}}}ComputedKey", f"{trust_ns}/CK/PSHA1")]
    secret = _child(_child(rstr, trust_ns, "Entropy"), trust_ns, "BinarySecret")
    assert secret.get("Type") == f"{trust_ns}/Nonce"
    issuer_entropy = base64.b64decode(secret.text or "", validate=True)
    assert _child(rstr, trust_ns, "KeySize").text == "256"
    # The requestor's side: P_SHA1(secret = its own entropy, seed = issuer entropy), KeySize/8 octets.
    assert p_sha1_rfc2246(REQUESTOR_ENTROPY, issuer_entropy, 256 // 8) == proof.key


def test_computed_key_known_answer() -> None:
    """The vector of the protocol notes §9, end to end through the RSTR's Entropy element."""
    rstr = issued_rstr(_response(proof=ProofToken(256, issuer_entropy=ISSUER_ENTROPY)))
    text = rstr.findtext(f"{{{WST}}}Entropy/{{{WST}}}BinarySecret")
    assert text == "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
    key = p_sha1_rfc2246(REQUESTOR_ENTROPY, base64.b64decode(text), 32)
    assert key.hex() == "df59132c2af6d230e4337732076a14561694be12838cc00203d63c816653d75b"


@pytest.mark.parametrize("length", [1, 16, 20, 21, 32, 40, 63, 64])
@pytest.mark.parametrize("secret", [REQUESTOR_ENTROPY[:16], REQUESTOR_ENTROPY, bytes(range(64))], ids=len)
def test_p_sha1_matches_the_rfc2246_definition(secret: bytes, length: int) -> None:
    """Including lengths that end inside a 20-octet HMAC-SHA1 block, and the 16- to 64-octet entropy sizes."""
    assert p_sha1(secret, ISSUER_ENTROPY, length) == p_sha1_rfc2246(secret, ISSUER_ENTROPY, length)


@pytest.mark.parametrize("bits", [128, 256, 512])
def test_binary_secret_carries_the_random_proof_key(bits: int) -> None:
    proof = symmetric_proof(bits, None)
    assert proof.issuer_entropy is None
    rstr = issued_rstr(
        _response(key_type=f"{WST}/SymmetricKey", proof=ProofToken(proof.bits, secret=proof.key))
    )
    assert _names(rstr)[-3:] == ["RequestedProofToken", "KeySize", "KeyType"]
    assert rstr.find(f"{{{WST}}}Entropy") is None  # no issuer entropy without a computed key
    (secret,) = _child(rstr, WST, "RequestedProofToken")
    assert secret.tag == f"{{{WST}}}BinarySecret"
    assert secret.get("Type") == f"{WST}/SymmetricKey"
    assert base64.b64decode(secret.text or "", validate=True) == proof.key
    assert _child(rstr, WST, "KeySize").text == str(bits)


def test_proof_material_stays_out_of_repr() -> None:
    """A logged response object leaks no key or entropy (nothing secret in logs)."""
    secret, entropy = b"\x13" * 32, b"\x37" * 32
    text = repr(ProofToken(256, secret=secret)) + repr(ProofToken(256, issuer_entropy=entropy))
    for value in (secret, entropy):
        assert repr(value) not in text and value.hex() not in text and base64.b64encode(value).decode() not in text


def test_bearer_answer_has_no_proof_parts() -> None:
    rstr = issued_rstr(_response())
    for local in ("RequestedProofToken", "Entropy", "KeySize"):
        assert rstr.find(f"{{{WST}}}{local}") is None


# --- the body per trust version (§3) --------------------------------------------------------------------------------


def test_ws_trust_13_issue_answer_is_a_collection_of_one() -> None:
    answer = issue_answer(_response(context="c1"))
    assert answer.tag == f"{{{WST}}}RequestSecurityTokenResponseCollection"
    assert [child.tag for child in answer] == [f"{{{WST}}}RequestSecurityTokenResponse"]
    assert answer[0].get("Context") == "c1"
    assert TrustVersion(WST).response_action(Operation.ISSUE) == f"{WST}/RSTRC/IssueFinal"


def test_feb_2005_issue_answer_is_the_bare_rstr() -> None:
    answer = issue_answer(_response(WST05, context="c1"))
    assert answer.tag == f"{{{WST05}}}RequestSecurityTokenResponse"
    assert answer.get("Context") == "c1"
    assert _child(answer, WST05, "KeyType").text == f"{WST05}/Bearer"
    assert not [e for e in answer.iter() if etree.QName(e).namespace == WST]
    assert TrustVersion(WST05).response_action(Operation.ISSUE) == f"{WST05}/RSTR/Issue"


@pytest.mark.parametrize(
    ("trust_ns", "operation", "action"),
    [
        (WST, Operation.RENEW, f"{WST}/RSTR/RenewFinal"),
        (WST, Operation.VALIDATE, f"{WST}/RSTR/ValidateFinal"),
        (WST, Operation.CANCEL, f"{WST}/RSTR/CancelFinal"),
        (WST05, Operation.RENEW, f"{WST05}/RSTR/Renew"),
        (WST05, Operation.VALIDATE, f"{WST05}/RSTR/Validate"),
        (WST05, Operation.CANCEL, f"{WST05}/RSTR/Cancel"),
    ],
)
def test_response_actions(trust_ns: str, operation: Operation, action: str) -> None:
    assert TrustVersion(trust_ns).response_action(operation) == action


@pytest.mark.parametrize("trust_ns", [WST, WST05], ids=["1.3", "feb2005"])
@pytest.mark.parametrize(
    ("valid", "code", "reason"), [(True, "valid", VALID_REASON), (False, "invalid", INVALID_REASON)]
)
def test_status_answer(trust_ns: str, valid: bool, code: str, reason: str) -> None:
    rstr = status_answer(TrustVersion(trust_ns), valid, "ctx-v")
    assert rstr.tag == f"{{{trust_ns}}}RequestSecurityTokenResponse"
    assert rstr.get("Context") == "ctx-v"
    assert _names(rstr) == ["TokenType", "Status"]
    assert _child(rstr, trust_ns, "TokenType").text == f"{trust_ns}/RSTR/Status"
    status = _child(rstr, trust_ns, "Status")
    assert [(etree.QName(c).localname, c.text) for c in status] == [
        ("Code", f"{trust_ns}/status/{code}"),
        ("Reason", reason),
    ]


def test_status_reasons_are_the_fixed_cxf_texts() -> None:
    """One reason for every kind of invalidity (§10): it tells an attacker nothing about why."""
    assert VALID_REASON == "The Trust service successfully validated the input"
    assert INVALID_REASON == "The Trust service did not successfully validate the input"
    assert status_answer(TrustVersion(WST), False, None).get("Context") is None


@pytest.mark.parametrize("context", ["ctx-c", None])
def test_cancelled_answer(context: str | None) -> None:
    rstr = cancelled_answer(TrustVersion(WST), context)
    assert rstr.get("Context") == context
    assert [child.tag for child in rstr] == [f"{{{WST}}}RequestedTokenCancelled"]
    assert rstr[0].text is None and len(rstr[0]) == 0


# --- answers are copies of a per-shape skeleton ---------------------------------------------------------------------

_STR = (
    f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}" xmlns:wsse11="{ns.WSSE11}" wsse11:TokenType="TT">'
    '<wsse:KeyIdentifier ValueType="VT">_tok1</wsse:KeyIdentifier></wsse:SecurityTokenReference>'
)
_LIFETIME = (
    f'<wst:Lifetime><wsu:Created xmlns:wsu="{ns.WSU}">2030-01-01T12:00:00Z</wsu:Created>'
    f'<wsu:Expires xmlns:wsu="{ns.WSU}">2030-01-01T13:00:00Z</wsu:Expires></wst:Lifetime>'
)


@pytest.mark.parametrize(
    ("trust_ns", "applies_to", "proof", "middle"),
    [
        (
            WST,
            AppliesTo("https://rp.example/app", ns.WSP, ns.WSA),
            ProofToken(128, secret=bytes(16)),
            f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
            "<wsa:Address>https://rp.example/app</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
            + _LIFETIME
            + f'<wst:RequestedProofToken><wst:BinarySecret Type="{WST}/SymmetricKey">AAAAAAAAAAAAAAAAAAAAAA=='
            "</wst:BinarySecret></wst:RequestedProofToken><wst:KeySize>128</wst:KeySize>",
        ),
        (
            WST05,
            AppliesTo("urn:rp", ns.WSP15, ns.WSA04),
            ProofToken(256, issuer_entropy=bytes(range(32))),
            f'<wsp:AppliesTo xmlns:wsp="{ns.WSP15}"><wsa:EndpointReference xmlns:wsa="{ns.WSA04}">'
            "<wsa:Address>urn:rp</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
            + _LIFETIME
            + f"<wst:RequestedProofToken><wst:ComputedKey>{WST05}/CK/PSHA1</wst:ComputedKey></wst:RequestedProofToken>"
            f'<wst:Entropy><wst:BinarySecret Type="{WST05}/Nonce">AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='
            "</wst:BinarySecret></wst:Entropy><wst:KeySize>256</wst:KeySize>",
        ),
        (WST, None, None, _LIFETIME),
    ],
    ids=["1.3-secret", "feb2005-entropy", "1.3-bearer"],
)
def test_issue_answer_bytes(trust_ns: str, applies_to: AppliesTo | None, proof: ProofToken | None, middle: str) -> None:
    """The exact serialization the clients were tested against: namespace declarations where they were, child and
    attribute order, escaping."""
    token = etree.Element(f"{{{ns.SAML2}}}Assertion", nsmap={"saml2": ns.SAML2}, ID="_tok1")
    response = _response(
        trust_ns, token=token, token_type="TT", reference=TokenReference("TT", "VT", "_tok1"), key_type="KT",
        context="c&1", applies_to=applies_to, proof=proof,
    )
    rstr = (
        f'<wst:RequestSecurityTokenResponse{"" if trust_ns == WST else f" xmlns:wst={chr(34)}{WST05}{chr(34)}"}'
        ' Context="c&amp;1"><wst:TokenType>TT</wst:TokenType><wst:RequestedSecurityToken>'
        f'<saml2:Assertion xmlns:saml2="{ns.SAML2}" ID="_tok1"/></wst:RequestedSecurityToken>'
        f"<wst:RequestedAttachedReference>{_STR}</wst:RequestedAttachedReference>"
        f"<wst:RequestedUnattachedReference>{_STR}</wst:RequestedUnattachedReference>"
        f"{middle}<wst:KeyType>KT</wst:KeyType></wst:RequestSecurityTokenResponse>"
    )
    if trust_ns == WST:
        rstr = (
            f'<wst:RequestSecurityTokenResponseCollection xmlns:wst="{WST}">{rstr}'
            "</wst:RequestSecurityTokenResponseCollection>"
        )
    assert etree.tostring(issue_answer(response)).decode() == rstr


def test_an_answer_shares_nothing_with_the_next_one_of_its_shape() -> None:
    """Each answer is its own copy: filling one never shows up in another (or in the cached skeleton)."""
    applies_to = AppliesTo("https://rp.example/first", ns.WSP, ns.WSA)
    first = issue_answer(_response(context="first", applies_to=applies_to, token=_token("_first")))
    before = etree.tostring(first)
    second = issue_answer(_response(applies_to=replace(applies_to, address="https://rp.example/second")))
    assert etree.tostring(first) == before
    assert second[0].get("Context") is None
    assert second[0].findtext(f".//{{{ns.WSA}}}Address") == "https://rp.example/second"
    assert second[0].findtext(f".//{{{ns.WSSE}}}KeyIdentifier") == "_tok1"
    holder = second[0].find(f"{{{WST}}}RequestedSecurityToken")
    assert holder is not None and [child.get("ID") for child in holder] == ["_tok1"]
