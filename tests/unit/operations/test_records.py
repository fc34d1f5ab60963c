"""The renewal record kept with each token: typed, versioned, and still reading what the previous format wrote."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.crypto.keygen import certificate_der, generate_rsa_key, self_signed_certificate
from sts.crypto.keywrap import ClientKey
from sts.errors import UnableToRenew
from sts.operations.records import RECORD_VERSION, RenewalRecord, TokenLedger, token_digest
from sts.stores.base import TokenRecord
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteTokenStore
from sts.wstrust.model import ClaimRequest, RequestedClaims
from sts.wstrust.tokentypes import SAML11_PROFILE_URI, SAML20_URN, KeyKind, SamlVersion, TokenType
from sts.wstrust.version import TrustVersion

AUTHN = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
CLAIMS = RequestedClaims("http://schemas.xmlsoap.org/ws/2005/05/identity", (ClaimRequest("urn:mail", False),))


@pytest.fixture(scope="module")
def client() -> rsa.RSAPrivateKey:
    return generate_rsa_key(2048)


def version_1(**changes: object) -> str:
    """A record exactly as the previous format wrote it (no ``v``; the client key as ds:KeyInfo XML)."""
    data: dict[str, object] = {
        "trust_ns": ns.WST05,
        "token_type": SAML20_URN,
        "key_kind": "PublicKey",
        "key_type_uri": f"{ns.WST05}/PublicKey",
        "key_bits": None,
        "requested_claims": {"dialect": CLAIMS.dialect, "claims": [["urn:mail", False]]},
        "authn_context": AUTHN,
        "chain": "_first",
        "chain_started": 1700000000.0,
        "use_key": None,
    }
    data.update(changes)
    return json.dumps(data, separators=(",", ":"))


def x509_key_info(der: bytes) -> str:
    return (
        f'<ds:KeyInfo xmlns:ds="{ns.DS}"><ds:X509Data><ds:X509Certificate>{base64.b64encode(der).decode()}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
    )


def test_a_version_1_record_reads_into_the_typed_record(client: rsa.RSAPrivateKey) -> None:
    cert = self_signed_certificate(client, "client")
    record = RenewalRecord.from_json(version_1(use_key=x509_key_info(certificate_der(cert))))
    assert record == RenewalRecord(
        trust=TrustVersion.FEB2005,
        token_type=TokenType(SamlVersion.SAML20, SAML20_URN),
        key_kind=KeyKind.PUBLIC,
        key_type_uri=f"{ns.WST05}/PublicKey",
        key_bits=None,
        requested_claims=CLAIMS,
        authn_context=AUTHN,
        chain="_first",
        chain_started=1700000000.0,
        client_key=ClientKey(cert),
    )


def test_a_version_1_bearer_record_without_a_client_key() -> None:
    record = RenewalRecord.from_json(version_1(key_kind="Bearer", key_type_uri=f"{ns.WST05}/Bearer", key_bits=256))
    assert (record.key_kind, record.client_key, record.key_bits) == (KeyKind.BEARER, None, 256)
    assert RenewalRecord.from_json(version_1(requested_claims=None)).requested_claims is None


@pytest.mark.parametrize("material", ["certificate", "bare"])
def test_version_2_round_trips(client: rsa.RSAPrivateKey, material: str) -> None:
    key = ClientKey(self_signed_certificate(client, "client") if material == "certificate" else client.public_key())
    record = RenewalRecord(
        trust=TrustVersion.TRUST13,
        token_type=TokenType(SamlVersion.SAML11, SAML11_PROFILE_URI),
        key_kind=KeyKind.PUBLIC,
        key_type_uri=f"{ns.WST}/PublicKey",
        key_bits=None,
        requested_claims=CLAIMS,
        authn_context=AUTHN,
        chain="_chain",
        chain_started=1700000001.5,
        client_key=key,
    )
    stored = record.to_json()
    data = json.loads(stored)
    assert data["v"] == RECORD_VERSION == 2
    assert data["chain"] == "_chain"  # top level: the token store cancels a chain by it
    assert "use_key" not in data and data["client_key"][0] == ("x509" if material == "certificate" else "rsa")
    read = RenewalRecord.from_json(stored)
    assert read.client_key is not None and read.client_key.encoded() == key.encoded()
    assert read == dataclasses.replace(record, client_key=read.client_key)


def test_the_stored_form_is_compact_json_in_the_members_order(client: rsa.RSAPrivateKey) -> None:
    """What is stored does not change with how it is written: tokens of earlier releases are in the same store."""
    key = ClientKey(client.public_key())
    record = RenewalRecord(
        TrustVersion.TRUST13, TokenType(SamlVersion.SAML20, SAML20_URN), KeyKind.PUBLIC, f"{ns.WST}/PublicKey", 2048,
        CLAIMS, AUTHN, "_chain\u00e9", 1700000001.5, key,
    )
    form, encoded = key.encoded()
    assert record.to_json() == (
        '{"v":2,"trust_ns":"http://docs.oasis-open.org/ws-sx/ws-trust/200512",'
        '"token_type":"urn:oasis:names:tc:SAML:2.0:assertion","key_kind":"PublicKey",'
        '"key_type_uri":"http://docs.oasis-open.org/ws-sx/ws-trust/200512/PublicKey","key_bits":2048,'
        '"requested_claims":{"dialect":"http://schemas.xmlsoap.org/ws/2005/05/identity","claims":[["urn:mail",false]]},'
        '"authn_context":"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",'
        '"chain":"_chain\\u00e9","chain_started":1700000001.5,'
        f'"client_key":["{form}","{base64.b64encode(encoded).decode()}"]}}'
    )


@pytest.mark.parametrize(
    "stored",
    [
        version_1(v=3),  # a version this STS does not know
        version_1(v="2"),
        json.dumps({**json.loads(version_1()), "v": 2}),  # version 2 without its client_key member
        version_1(requested_claims="x"),
        version_1(trust_ns=ns.WST14),  # not a version the STS answers in
        version_1(token_type="urn:unknown"),
        version_1(key_kind="Other"),
        version_1(chain_started="soon"),
        version_1(use_key="<ds:KeyInfo"),
        version_1(use_key=f'<ds:KeyInfo xmlns:ds="{ns.DS}"/>'),
        json.dumps({**json.loads(version_1(v=2)), "client_key": ["x509", "bm90IGEgY2VydA=="]}),
        "[]",
        "not json",
        "",
    ],
)
def test_anything_else_is_refused_as_a_legacy_record(stored: str) -> None:
    with pytest.raises(UnableToRenew) as caught:
        RenewalRecord.from_json(stored)
    assert caught.value.reason == "legacy_record"
    assert caught.value.fault_qname() == (ns.WST, "UnableToRenew")


def test_a_record_without_the_requested_claims_is_refused() -> None:
    data = json.loads(version_1())
    del data["requested_claims"]  # written before renewals were decided again
    with pytest.raises(UnableToRenew) as caught:
        RenewalRecord.from_json(json.dumps(data))
    assert caught.value.reason == "legacy_record"


def test_the_digest_is_of_the_exclusive_canonical_form() -> None:
    token = etree.fromstring('<a:x xmlns:a="urn:a" k="1" j="2"><a:y/></a:x>')
    # Attribute order, empty-element form and an unused namespace declaration do not change the digest.
    same = etree.fromstring('<a:x xmlns:a="urn:a" xmlns:b="urn:b" j="2" k="1"><a:y></a:y></a:x>')
    assert token_digest(token) == token_digest(same)
    assert token_digest(token) != token_digest(etree.fromstring('<a:x xmlns:a="urn:a" k="1" j="3"><a:y/></a:x>'))
    assert len(token_digest(token)) == 64


def _record(token_id: str, chain: str, expires: float = 2000.0) -> TokenRecord:
    data = RenewalRecord(
        TrustVersion.TRUST13, TokenType(SamlVersion.SAML20, SAML20_URN), KeyKind.BEARER, f"{ns.WST}/Bearer", None,
        None, AUTHN, chain, 1000.0,
    ).to_json()
    return TokenRecord(token_id, "PRIMARY/bob", "https://rp/", SAML20_URN, 1000.0, expires, "issued", True, False,
                       "d" * 64, data)


def test_the_ledger_keeps_a_token_while_it_may_be_renewed_and_refuses_a_lost_race(tmp_path: Path) -> None:
    initialize(tmp_path / "sts.db")
    db = Database(tmp_path / "sts.db")
    store = SqliteTokenStore(db)
    ledger = TokenLedger(store, clock_skew=60, keep_after_expiry=1800)
    ledger.record(_record("_a", "_a"))
    (expires,) = db.conn.execute("SELECT expires FROM tokens WHERE id = '_a'").fetchone()
    assert expires == 2000.0 + 60 + 1800
    ledger.record(_record("_b", "_a"), renews="_a")
    with pytest.raises(UnableToRenew) as caught:  # another request renewed _a first
        ledger.record(_record("_c", "_a"), renews="_a")
    assert caught.value.reason == "renewed_meanwhile"
    assert store.get("_c") is None
    assert [getattr(store.get(t), "status", None) for t in ("_a", "_b")] == ["renewed", "issued"]
    db.close()
