"""Validate with token transformation (WS-Trust 1.3 §7) over HTTP against the real gunicorn: a token of this STS or
of a trusted issuer, validated and exchanged for a new token of the asked type for another relying party, checked
as that relying party would (decrypted with its key, signature verified by signxml pinned to the STS certificate
and by xmlsec1); the deny-by-default policy and the refusals, each with its exact answer and nothing issued."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.client.operations import validate_token
from sts.client.options import Connection, TargetOptions
from sts.client.response import ValidationStatus
from sts.wstrust.tokentypes import SamlVersion
from tests.integration.delegation_support import (
    BACKEND,
    FRONTEND,
    IDP,
    MIDDLE,
    PASSWORD,
    IdentityProvider,
    _cli_with_stdin,
    fault_of,
    issue,
    setup_bed,
    write_token,
)
from tests.support import Server, audit_records, fault_qname, make_instance, rst_envelope, start_server
from tests.token_checks import decrypt_with_python_xmlsec, decrypt_with_xmlsec1, verify_with_both

pytestmark = pytest.mark.integration

DEMO_RP = "https://localhost:8443/demo-rp/"  # the demo instance's relying party: encrypts its tokens
REQUEST_FAILED = (ns.WST, "RequestFailed")
INVALID_REQUEST = (ns.WST, "InvalidRequest")
INVALID_SCOPE = (ns.WST, "InvalidScope")
INVALID_TOKEN = (ns.WST, "InvalidSecurityToken")
BOUND = "https://bound.example.test/"  # exchanges for svc-front only tokens addressed to the front-end


@pytest.fixture(scope="module")
def idp() -> IdentityProvider:
    return IdentityProvider.create()


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[Server]:
    instance = make_instance(tmp_path_factory.mktemp("transformation") / "var")
    setup_bed(instance, idp)
    # Validate believes the identity provider's assertions ([lifecycle]); [[trusted_issuers]] names and maps them.
    config = instance.config.read_text()
    idp_file = instance.base / "keystore" / "idp.crt.pem"
    assert config.count("trusted_issuer_certs = []") == 1
    instance.config.write_text(config.replace("trusted_issuer_certs = []", f'trusted_issuer_certs = ["{idp_file}"]'))
    _cli_with_stdin(instance, PASSWORD, "user", "add", "dave", "--password-stdin", "--role", "admin")
    assert instance.cli("rp", "update", DEMO_RP, "--allow-transformation-from", "self") == 0
    backend = ("--allow-transformation-from", "self", "--allow-transformation-from", IDP)
    delegation = ("--allow-delegation", "svc-front", "--delegation-subjects", "any")
    assert instance.cli("rp", "update", BACKEND, *backend, *delegation) == 0
    assert instance.cli("rp", "add", BOUND, "--no-encrypt") == 0
    bound = (*delegation, "--allow-transformation-from", "self", f"--delegation-audience={FRONTEND}")
    assert instance.cli("rp", "update", BOUND, *bound) == 0
    server = start_server(instance, workers=2, tls=True)
    yield server
    server.stop()


def exchange(
    server: Server, user: str, token: etree._Element, applies_to: str, version: SamlVersion = SamlVersion.SAML20
) -> ValidationStatus:
    """Validate ``token`` asking for a token of ``version`` for ``applies_to``, through the client library."""
    connection = Connection(url=server.url, username=user, cafile=server.instance.ca_file)
    return validate_token(TargetOptions(connection, token=token, transform_to=version, applies_to=applies_to), PASSWORD)


def raw_exchange_fault(server: Server, target: etree._Element, applies_to: str) -> tuple[str, str]:
    """The fault of a transformation request sent as written (the client library refuses a non-token target)."""
    extra = f"<wst:ValidateTarget>{etree.tostring(target).decode()}</wst:ValidateTarget>"
    body = rst_envelope(
        "alice", PASSWORD, applies_to=applies_to, extra_rst=extra, request_type=f"{ns.WST}/Validate"
    )
    return fault_qname(server.post(body, action=f"{ns.WST}/RST/Validate").content)


def stored_tokens(server: Server) -> int:
    with contextlib.closing(sqlite3.connect(server.instance.base / "sts.db")) as db:
        return int(db.execute("SELECT count(*) FROM tokens").fetchone()[0])


def saml2_name(assertion: etree._Element) -> str:
    return assertion.findtext(f"{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID") or ""


def test_saml11_of_this_sts_becomes_saml20_for_another_rp(bed: Server) -> None:
    t1 = issue(bed, "alice", FRONTEND, version=SamlVersion.SAML11).token
    assert t1.tag == f"{{{ns.SAML1}}}Assertion"
    answer = exchange(bed, "alice", t1, DEMO_RP)
    assert answer.valid and answer.issued is not None
    new = answer.issued
    assert new.token_type == "urn:oasis:names:tc:SAML:2.0:assertion"
    encrypted = new.token if new.token.tag == f"{{{ns.XENC}}}EncryptedData" else new.token[0]  # encrypted for the RP
    assert encrypted.tag == f"{{{ns.XENC}}}EncryptedData"
    plain = decrypt_with_python_xmlsec(encrypted, bed.instance.rp_key)
    assert decrypt_with_xmlsec1(etree.tostring(encrypted), bed.instance.rp_key) is not None
    signed = verify_with_both(plain, bed.instance.signing_cert, saml11=False)
    assert saml2_name(signed) == "alice"
    assert signed.findtext(f".//{{{ns.SAML2}}}Audience") == DEMO_RP
    assert new.expires <= str(t1.find(f"{{{ns.SAML1}}}Conditions").get("NotOnOrAfter"))  # type: ignore[union-attr]
    events = [e for e in audit_records(bed.log) if e.get("token_id") == signed.get("ID")]
    assert [(e["audit_event"], e["outcome"], e["reason"]) for e in events] == [("validate", "valid", "transformed")]
    assert (events[0]["user"], events[0]["source_token"], events[0]["subject"]) == (
        "alice", t1.get("AssertionID"), "PRIMARY/alice",
    )


def test_a_trusted_issuers_assertion_becomes_a_token_of_this_sts(bed: Server, idp: IdentityProvider) -> None:
    """svc-front holds alice's assertion from the identity provider and, allowed to act on her behalf at the
    back-end, exchanges it for a SAML 1.1 token of this STS."""
    answer = exchange(bed, "svc-front", idp.assertion("alice"), BACKEND, SamlVersion.SAML11)
    assert answer.valid and answer.issued is not None
    token = answer.issued.token
    assert token.tag == f"{{{ns.SAML1}}}Assertion"  # the back-end does not encrypt
    signed = verify_with_both(etree.tostring(token), bed.instance.signing_cert, saml11=True)
    assert signed.findtext(f".//{{{ns.SAML1}}}NameIdentifier") == "alice"
    assert signed.get("Issuer") != IDP


def test_sts_validate_applies_to_writes_the_new_token(bed: Server, tmp_path: Path) -> None:
    t1 = write_token(tmp_path / "t1.xml", issue(bed, "alice", FRONTEND).token)
    out = tmp_path / "t2.xml"
    args = ("--username", "alice", "--password-stdin", "--cafile", str(bed.instance.ca_file), "--token", str(t1))
    _cli_with_stdin(
        bed.instance, PASSWORD, "validate", bed.url, *args, "--applies-to", BACKEND, "--token-type", "saml11",
        "--out", str(out),
    )
    signed = verify_with_both(out.read_bytes(), bed.instance.signing_cert, saml11=True)
    assert signed.findtext(f".//{{{ns.SAML1}}}Audience") == BACKEND


# --- refusals -------------------------------------------------------------------------------------------------------


def test_refusals_of_valid_tokens(bed: Server, idp: IdentityProvider) -> None:
    t1 = issue(bed, "alice", FRONTEND).token
    before = stored_tokens(bed)
    assert fault_of(exchange, bed, "alice", t1, MIDDLE) == REQUEST_FAILED  # no policy: deny by default
    assert fault_of(exchange, bed, "mallory", t1, DEMO_RP) == REQUEST_FAILED  # not alice, no delegation rule
    assert fault_of(exchange, bed, "alice", idp.assertion("alice"), DEMO_RP) == REQUEST_FAILED  # source not allowed
    assert fault_of(exchange, bed, "alice", t1, "https://nobody.example.test/") == INVALID_SCOPE
    assert stored_tokens(bed) == before
    events = audit_records(bed.log)
    reasons = [e["reason"] for e in events if (e.get("audit_event"), e.get("outcome")) == ("validate", "failure")]
    assert reasons[-4:] == [
        "transform_not_allowed", "caller_not_allowed", "transform_source_not_allowed", "unknown_applies_to",
    ]


def test_another_callers_exchange_is_bound_by_the_delegation_audience(bed: Server) -> None:
    """svc-front may act for alice at BOUND only with a token addressed to the front-end, as for OnBehalfOf."""
    before = stored_tokens(bed)
    assert fault_of(exchange, bed, "svc-front", issue(bed, "alice", MIDDLE).token, BOUND) == INVALID_TOKEN
    assert stored_tokens(bed) == before + 1  # alice's own token only
    refusal = [e for e in audit_records(bed.log) if e.get("audit_event") == "validate"][-1]
    assert (refusal["outcome"], refusal["reason"]) == ("failure", "token_audience_mismatch")
    answer = exchange(bed, "svc-front", issue(bed, "alice", FRONTEND).token, BOUND)
    assert answer.valid and answer.issued is not None


def test_a_disabled_subject_gets_nothing(bed: Server) -> None:
    t1 = issue(bed, "dave", FRONTEND).token
    assert bed.instance.cli("user", "disable", "dave") == 0
    before = stored_tokens(bed)
    assert fault_of(exchange, bed, "svc-front", t1, BACKEND) == REQUEST_FAILED
    assert stored_tokens(bed) == before


def test_invalid_tokens_get_the_status_only(bed: Server, idp: IdentityProvider) -> None:
    tampered = issue(bed, "alice", FRONTEND).token
    name = tampered.find(f"{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID")
    assert name is not None
    name.text = "carol"
    expired = idp.assertion("alice", not_before=-1200, not_after=-600)
    stranger = IdentityProvider.create("stranger").assertion("alice")  # names the IdP, signed with another key
    before = stored_tokens(bed)
    for token in (tampered, expired, stranger):
        answer = exchange(bed, "alice", token, BACKEND)
        assert (answer.valid, answer.issued) == (False, None)
    assert stored_tokens(bed) == before


@pytest.mark.parametrize("variant", ["V01", "V02", "V03", "V04", "V05", "V06", "V07", "V08"])
def test_wrapped_tokens(bed: Server, variant: str) -> None:
    """XSW1-8 of alice's token: an assertion-rooted wrapping validates as invalid (no token); a Response wrapper is
    not the assertion a transformation needs (wst:InvalidRequest); a duplicated ID is wsse:InvalidSecurity."""
    from tests.xsw import XSW

    before = stored_tokens(bed)
    wrapped = XSW[variant](issue(bed, "alice", FRONTEND).token)
    expected = {"V03": INVALID_REQUEST, "V05": INVALID_REQUEST}
    expected |= {"V07": (ns.WSSE, "InvalidSecurity"), "V08": (ns.WSSE, "InvalidSecurity")}
    if variant in expected:
        assert raw_exchange_fault(bed, wrapped, BACKEND) == expected[variant]
    else:
        answer = exchange(bed, "alice", wrapped, BACKEND)
        assert (answer.valid, answer.issued) == (False, None)
    assert stored_tokens(bed) == before + 1  # alice's own token only
