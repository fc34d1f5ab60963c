"""Tests for sts.auth.signed_requests.SignedRequestAuthenticator over real SQLite stores, and for
sts.auth.transport_certs.TransportCertificateAuthenticator: every outcome audited (with the user once the
certificate named one), refusals counted towards the per-client throttle, the exact fault for each refusal."""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import errors, ns
from sts.auth.signed_requests import (
    CERTIFICATE_MIXED,
    SIG_ONLY,
    SIGNATURE_NAMESPACE,
    SignaturePolicy,
    SignedCall,
    SignedRequestAuthenticator,
)
from sts.auth.transport_certs import TLS_CLIENT_METHOD, TransportCertificateAuthenticator, TransportCertificatePolicy
from sts.clock import format_instant
from sts.config.settings import CacheSettings, SecuritySettings
from sts.soapenv import SoapVersion
from sts.stores.redis.client import RedisConnection
from sts.stores.redis.stores import RedisReplayCache
from tests.servers.redis import RedisServer
from tests.unit.auth.x509_env import FAILURE_LIMIT, INFO, X509Env, audit_records, build_env
from tests.x509_support import Client, make_cert, signed_rst, undecodable_name_der

ROLES = frozenset({"admin"})
SIG_ONLY_PATH = "/services/wso2carbon-sts/SigOnly"
MIXED_PATH = "/adfs/services/trust/13/certificatemixed"
S11 = SoapVersion.SOAP11
SECURITY = SecuritySettings()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[X509Env]:
    built = build_env(tmp_path)
    yield built
    built.db.close()


@pytest.fixture(autouse=True)
def _audit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sts.audit")


def _headers(envelope: etree._Element) -> tuple[etree._Element, ...]:
    return tuple(child for child in envelope[0] if isinstance(child.tag, str))


def _call(envelope: etree._Element, scenario: str = SIG_ONLY, path: str = SIG_ONLY_PATH, **info: object) -> SignedCall:
    return SignedCall(scenario, envelope[-1][0], path, replace(INFO, **info))  # type: ignore[arg-type]


def _envelope(client: Client, path: str = SIG_ONLY_PATH, **kwargs: object) -> etree._Element:
    return signed_rst(f"https://127.0.0.1:9{path}", client, **kwargs)  # type: ignore[arg-type]


def _resign(envelope: etree._Element, client: Client, *targets: str) -> None:
    """Sign again over the named elements only (``timestamp``, ``body``, ``to``): a valid signature, other coverage."""
    from sts.crypto.wss_sign import WssSigner, direct_reference

    security = envelope[0].find(ns.qn(ns.WSSE, "Security"))
    assert security is not None
    old = security.find(ns.qn(ns.DS, "Signature"))
    security.remove(old)  # type: ignore[arg-type]
    elements = {"timestamp": security.find(ns.qn(ns.WSU, "Timestamp")), "body": envelope[-1],
                "to": envelope[0].find(ns.qn(ns.WSA, "To"))}
    token = security.find(ns.qn(ns.WSSE, "BinarySecurityToken"))
    assert token is not None
    chosen = [elements[name] for name in targets]
    WssSigner(client.key).sign(security, chosen, direct_reference(str(token.get(ns.qn(ns.WSU, "Id")))))  # type: ignore[arg-type]


def _last(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = audit_records(caplog)
    assert records
    return records[-1]


def test_a_registered_signer_is_the_caller(env: X509Env, caplog: pytest.LogCaptureFixture) -> None:
    envelope = _envelope(env.alice)
    caller = env.authenticator().authenticate(_headers(envelope), S11, _call(envelope), ROLES)
    assert (caller.principal.name, caller.method) == ("admin", "x509")
    assert caller.proof is not None and caller.proof.certificate == env.alice.cert
    record = _last(caplog)
    assert (record.outcome, record.user, record.reason) == ("success", "admin", "x509")  # type: ignore[attr-defined]


def test_certificatemixed_accepts_the_library_shape_over_tls(env: X509Env) -> None:
    """Timestamp, Body and wsa:To signed (the STS client library's certificatemixed request)."""
    envelope = _envelope(env.alice, MIXED_PATH, sign_to=True)
    call = _call(envelope, CERTIFICATE_MIXED, MIXED_PATH)
    assert env.authenticator().authenticate(_headers(envelope), S11, call, ROLES).principal.name == "admin"


def _expect(env: X509Env, envelope: etree._Element, error: type[errors.STSError], reason: str,
            call: SignedCall | None = None, **auth: bool) -> None:
    with pytest.raises(error) as caught:
        env.authenticator(**auth).authenticate(_headers(envelope), S11, call or _call(envelope), ROLES)
    assert type(caught.value) is error
    assert caught.value.reason == reason


def test_the_failed_login_of_a_known_user_is_audited_with_that_user(
    env: X509Env, caplog: pytest.LogCaptureFixture
) -> None:
    """carol's certificate is registered, carol is disabled: the audit says who failed."""
    _expect(env, _envelope(env.carol), errors.FailedAuthentication, "user_disabled")
    record = _last(caplog)
    assert (record.outcome, record.user, record.domain) == ("failure", "carol", "PRIMARY")  # type: ignore[attr-defined]
    _expect(env, _envelope(env.stranger), errors.FailedAuthentication, "cert_unknown")
    assert not hasattr(_last(caplog), "user")  # no certificate named a user: none is claimed


def test_certificate_refusals_are_throttled_per_client(env: X509Env) -> None:
    for _ in range(FAILURE_LIMIT):
        _expect(env, _envelope(env.stranger), errors.FailedAuthentication, "cert_unknown")
    # The client is now refused before any certificate work, even with a good certificate.
    _expect(env, _envelope(env.alice), errors.FailedAuthentication, "client_throttled")
    other = _envelope(env.alice)
    _expect(env, other, errors.FailedAuthentication, "client_throttled")
    assert env.authenticator().authenticate(
        _headers(other), S11, _call(other, client_address="192.0.2.99"), ROLES
    ).principal.name == "admin"


def test_signature_failures_do_not_count_as_authentication_failures(env: X509Env) -> None:
    for _ in range(FAILURE_LIMIT + 1):
        envelope = _envelope(env.alice)
        envelope[-1][0].append(etree.Element("{urn:x}Tampered"))
        _expect(env, envelope, errors.FailedCheck, "signature_invalid")
    envelope = _envelope(env.alice)
    env.authenticator().authenticate(_headers(envelope), S11, _call(envelope), ROLES)


@pytest.mark.parametrize(
    ("case", "error", "reason"),
    [
        ("G23_signature_id", errors.InvalidSecurity, "duplicate_id"),
        ("G24_wrapped_timestamp", errors.FailedCheck, "referent_place"),
        ("G26_partial_header", errors.FailedCheck, "referent_place"),
        ("G27_empty_uri", errors.InvalidSecurity, "signature_structure"),
        ("G29_key_value", errors.InvalidSecurity, "signature_structure"),
        ("G31_foreign_token", errors.SecurityTokenUnavailable, "str_dangling"),
        ("G32_two_signatures", errors.InvalidSecurity, "signature_count"),
        ("G33_rsa_sha1", errors.UnsupportedAlgorithm, "signature_algorithm"),
        ("G34_prefix_flood", errors.InvalidSecurity, "signature_structure"),
        ("W30_replay", errors.InvalidSecurity, "signature_replayed"),
        ("W31_unsigned_body", errors.FailedCheck, "coverage"),
        ("body_not_the_request", errors.FailedCheck, "body_mismatch"),
    ],
)
def test_named_attacks_get_their_exact_fault(env: X509Env, case: str, error: type[errors.STSError],
                                             reason: str) -> None:
    envelope = _envelope(env.alice)
    header, body = envelope[0], envelope[-1]
    security = header.find(ns.qn(ns.WSSE, "Security"))
    signature = envelope.find(f".//{ns.qn(ns.DS, 'Signature')}")
    assert security is not None and signature is not None
    references = signature.findall(f"{ns.qn(ns.DS, 'SignedInfo')}/{ns.qn(ns.DS, 'Reference')}")
    call = None
    if case == "G23_signature_id":
        signature.set("Id", str(body.get(ns.qn(ns.WSU, "Id"))))
    elif case == "G24_wrapped_timestamp":
        timestamp = security.find(ns.qn(ns.WSU, "Timestamp"))
        assert timestamp is not None
        etree.SubElement(header, "{urn:evil}Wrapper").append(copy.deepcopy(timestamp))
        timestamp.set(ns.qn(ns.WSU, "Id"), "TS-fresh")
    elif case == "G26_partial_header":
        address = header.find(f"{ns.qn(ns.WSA, 'ReplyTo')}/{ns.qn(ns.WSA, 'Address')}")
        assert address is not None
        address.set(ns.qn(ns.WSU, "Id"), "address-1")
        references[0].set("URI", "#address-1")
    elif case == "G27_empty_uri":
        references[0].set("URI", "")
    elif case == "G29_key_value":
        etree.SubElement(signature[2], ns.qn(ns.DS, "KeyValue"))
    elif case == "G31_foreign_token":
        token = security.find(ns.qn(ns.WSSE, "BinarySecurityToken"))
        other = etree.SubElement(header, ns.qn(ns.WSSE, "Security"))
        other.set(ns.qn(ns.S11, "actor"), "urn:someone-else")
        other.append(token)  # type: ignore[arg-type]
    elif case == "G32_two_signatures":
        security.append(copy.deepcopy(signature))
    elif case == "G33_rsa_sha1":
        signature[0][1].set("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    elif case == "G34_prefix_flood":
        etree.SubElement(signature[0][0], "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                         PrefixList=" ".join(f"p{i}" for i in range(10000)))
    elif case == "W30_replay":
        env.authenticator().authenticate(_headers(envelope), S11, _call(envelope), ROLES)
    elif case == "W31_unsigned_body":
        _resign(envelope, env.alice, "timestamp")
    elif case == "body_not_the_request":
        call = replace(_call(envelope), body_child=etree.Element("{urn:x}Other"))
    _expect(env, envelope, error, reason, call)


def test_a_replay_after_redis_restarted_empty_is_refused(env: X509Env, redis_server: RedisServer) -> None:
    """Redis forgets every signature it saw when it restarts empty; the message's Timestamp Created, older than
    the new epoch, is what still refuses the replay (the expiry of a signature's entry says nothing of it)."""
    with redis_server.client() as client:  # in use for an hour: what it has seen is the last hour's
        client.flushdb()
        client.set("sts:epoch", f"{env.clock.now().timestamp() - 3600}:test")
    settings = CacheSettings(backend="redis", url=redis_server.url, socket_timeout_ms=250, connect_timeout_ms=250)
    conn = RedisConnection(settings, env.clock)
    try:
        window = float(SECURITY.timestamp_ttl + SECURITY.timestamp_future_ttl)
        authenticator = SignedRequestAuthenticator(env.trust, RedisReplayCache(conn, window), SignaturePolicy(),
                                                   env.clock)
        envelope = _envelope(env.alice)
        created = envelope[0].find(f"{{{ns.WSSE}}}Security/{{{ns.WSU}}}Timestamp/{{{ns.WSU}}}Created")
        assert created is not None  # made 10 s ago: Redis keeps its start time in whole seconds
        created.text = format_instant(env.clock.now() - timedelta(seconds=10))
        _resign(envelope, env.alice, "timestamp", "body")
        assert authenticator.authenticate(_headers(envelope), S11, _call(envelope), ROLES).principal.name == "admin"
        redis_server.stop()
        redis_server.start()
        env.clock.advance(30)  # the replay comes later; its Timestamp is still fresh
        with pytest.raises(errors.InvalidSecurity) as caught:
            authenticator.authenticate(_headers(envelope), S11, _call(envelope), ROLES)
        assert caught.value.reason == "signature_replayed"
    finally:
        conn.close()


@pytest.mark.parametrize("which", ["issuer", "subject"])
def test_a_token_certificate_whose_names_do_not_decode_is_an_audited_invalid_token(
    env: X509Env, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    """With a client CA configured the trust decision compares the certificate's names: one that does not decode
    is the token's fault (WSS 1.1 §12 InvalidSecurityToken, audited), never an unexpected ValueError."""
    envelope = _envelope(env.alice)
    token = envelope.find(f".//{ns.qn(ns.WSSE, 'BinarySecurityToken')}")
    assert token is not None
    token.text = base64.b64encode(undecodable_name_der(make_cert("zzqqx", env.alice.key), which)).decode()
    _expect(env, envelope, errors.InvalidSecurityToken, "bad_certificate")
    record = _last(caplog)
    assert (record.outcome, record.reason) == ("failure", "bad_certificate")  # type: ignore[attr-defined]


def test_certificatemixed_needs_tls_and_a_to_naming_this_endpoint(env: X509Env) -> None:
    envelope = _envelope(env.alice, MIXED_PATH, sign_to=True)
    _expect(env, envelope, errors.InvalidSecurity, "insecure_transport",
            _call(envelope, CERTIFICATE_MIXED, MIXED_PATH, secure_transport=False))
    # With allow_insecure_transport (loopback development), it passes the transport check.
    assert env.authenticator(insecure=True).authenticate(
        _headers(envelope), S11, _call(envelope, CERTIFICATE_MIXED, MIXED_PATH, secure_transport=False), ROLES
    ).principal.name == "admin"
    # The WCF shape (Timestamp + wsa:To signed, not the Body): To must name this endpoint (R52).
    wcf = _envelope(env.alice, MIXED_PATH, sign_to=True)
    _resign(wcf, env.alice, "timestamp", "to")
    assert env.authenticator().authenticate(
        _headers(wcf), S11, _call(wcf, CERTIFICATE_MIXED, MIXED_PATH), ROLES
    ).principal.name == "admin"
    elsewhere = _envelope(env.alice, "/elsewhere", sign_to=True)
    _resign(elsewhere, env.alice, "timestamp", "to")
    _expect(env, elsewhere, errors.FailedCheck, "to_mismatch", _call(elsewhere, CERTIFICATE_MIXED, MIXED_PATH))
    # G35: the Timestamp alone proves nothing about this request.
    alone = _envelope(env.alice, MIXED_PATH, sign_to=True)
    _resign(alone, env.alice, "timestamp")
    _expect(env, alone, errors.FailedCheck, "coverage", _call(alone, CERTIFICATE_MIXED, MIXED_PATH))


@pytest.mark.parametrize("scenario", [SIG_ONLY, CERTIFICATE_MIXED])
def test_a_signed_to_naming_another_endpoint_is_refused_with_the_body_signed(
    env: X509Env, caplog: pytest.LogCaptureFixture, scenario: str
) -> None:
    """WS-Addressing 1.0 Core §3.2: the signer said where the message goes; the Body being signed too changes
    nothing (the STS client library signs Timestamp, Body and wsa:To)."""
    path = SIG_ONLY_PATH if scenario == SIG_ONLY else MIXED_PATH
    elsewhere = _envelope(env.alice, "/some/other/service", sign_to=True)
    _expect(env, elsewhere, errors.FailedCheck, "to_mismatch", _call(elsewhere, scenario, path))
    assert (_last(caplog).outcome, _last(caplog).reason) == ("failure", "to_mismatch")  # type: ignore[attr-defined]
    here = signed_rst(f"https://proxy.example.test:443{path}/", env.alice, sign_to=True)  # a proxy's host and port
    assert env.authenticator().authenticate(_headers(here), S11, _call(here, scenario, path), ROLES).principal.name \
        == "admin"


@pytest.mark.parametrize("body_signed", [True, False], ids=["body_and_to", "wcf_to_only"])
def test_a_signed_to_may_name_the_published_address_behind_a_prefix(env: X509Env, body_signed: bool) -> None:
    """Behind a proxy that mounts the STS below /sts ([server] public_url), clients address the published URL."""
    public = "/sts" + MIXED_PATH
    envelope = _envelope(env.alice, public, sign_to=True)
    if not body_signed:
        _resign(envelope, env.alice, "timestamp", "to")
    call = replace(_call(envelope, CERTIFICATE_MIXED, MIXED_PATH), public_path=public)
    assert env.authenticator().authenticate(_headers(envelope), S11, call, ROLES).principal.name == "admin"
    other = _envelope(env.alice, "/sts/services/wso2carbon-sts/SigOnly", sign_to=True)
    if not body_signed:
        _resign(other, env.alice, "timestamp", "to")
    call = replace(_call(other, CERTIFICATE_MIXED, MIXED_PATH), public_path=public)
    _expect(env, other, errors.FailedCheck, "to_mismatch", call)


# --- TLS client certificates (certificatetransport) --------------------------------------------------------------


def _transport(env: X509Env) -> TransportCertificateAuthenticator:
    return TransportCertificateAuthenticator(env.trust, TransportCertificatePolicy(), env.clock)


def _plain_headers(*security_children: str, actor: str = "") -> tuple[etree._Element, ...]:
    attrs = f' s:actor="{actor}"' if actor else ""
    xml = (f'<s:Envelope xmlns:s="{ns.S11}" xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}"><s:Header>'
           f"<wsse:Security{attrs}>{''.join(security_children)}</wsse:Security></s:Header><s:Body/></s:Envelope>")
    return tuple(etree.fromstring(xml)[0])


def _timestamp(env: X509Env, seconds: int = 300) -> str:
    from datetime import timedelta

    from sts.clock import format_instant

    now = env.clock.now()
    return (f"<wsu:Timestamp><wsu:Created>{format_instant(now)}</wsu:Created>"
            f"<wsu:Expires>{format_instant(now + timedelta(seconds=seconds))}</wsu:Expires></wsu:Timestamp>")


def test_a_tls_client_certificate_authenticates_its_user(env: X509Env, caplog: pytest.LogCaptureFixture) -> None:
    der = env.alice.cert.public_bytes(serialization.Encoding.DER)
    pem = env.ca_admin.cert.public_bytes(serialization.Encoding.PEM)
    for certificate, headers in ((der, ()), (pem, _plain_headers(_timestamp(env))), (der, _plain_headers())):
        caller = _transport(env).authenticate(headers, S11, INFO, certificate, ROLES)
        assert (caller.principal.name, caller.method) == ("admin", TLS_CLIENT_METHOD)
        assert caller.proof is not None and caller.proof.token_id is None
    # Headers for another actor are not ours and not looked at.
    _transport(env).authenticate(_plain_headers("<wsse:UsernameToken/>", actor="urn:other"), S11, INFO, der, ROLES)
    assert _last(caplog).reason == TLS_CLIENT_METHOD  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "error", "reason"),
    [
        ("plain_http", errors.InvalidSecurity, "insecure_transport"),
        ("username_token", errors.InvalidSecurity, "header_extra"),
        ("two_timestamps", errors.InvalidSecurity, "duplicate_timestamp"),
        ("two_security_headers", errors.InvalidSecurity, "duplicate_security_header"),
        ("stale_timestamp", errors.MessageExpired, None),
        ("P07_no_certificate", errors.FailedAuthentication, "no_client_certificate"),
        ("garbled_certificate", errors.FailedAuthentication, "bad_client_certificate"),
        ("undecodable_issuer", errors.FailedAuthentication, "bad_client_certificate"),
        ("P01_unregistered", errors.FailedAuthentication, "cert_unknown"),
        ("P03_revoked", errors.FailedAuthentication, "cert_revoked"),
        ("P05_disabled_user", errors.FailedAuthentication, "user_disabled"),
    ],
)
def test_tls_client_refusals(env: X509Env, case: str, error: type[errors.STSError], reason: str | None) -> None:
    der = env.alice.cert.public_bytes(serialization.Encoding.DER)
    headers: tuple[etree._Element, ...] = ()
    info, certificate = INFO, der
    if case == "plain_http":
        info = replace(INFO, secure_transport=False)
    elif case == "username_token":
        headers = _plain_headers(_timestamp(env), "<wsse:UsernameToken/>")
    elif case == "two_timestamps":
        headers = _plain_headers(_timestamp(env), _timestamp(env))
    elif case == "two_security_headers":
        headers = _plain_headers() + _plain_headers()
    elif case == "stale_timestamp":
        headers = _plain_headers(_timestamp(env))
        env.clock.advance(3600)
    elif case == "P07_no_certificate":
        certificate = None  # type: ignore[assignment]
    elif case == "garbled_certificate":
        certificate = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    elif case == "undecodable_issuer":  # a proxy's header passes what it verified; the STS decodes the names itself
        certificate = undecodable_name_der(make_cert("zzqqx", env.alice.key))
    elif case == "P01_unregistered":
        certificate = env.stranger.cert.public_bytes(serialization.Encoding.DER)
    elif case == "P03_revoked":
        certificate = env.ca_revoked.cert.public_bytes(serialization.Encoding.DER)
    elif case == "P05_disabled_user":
        certificate = env.carol.cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(error) as caught:
        _transport(env).authenticate(headers, S11, info, certificate, ROLES)
    assert type(caught.value) is error
    if reason is not None:
        assert caught.value.reason == reason


def test_tls_client_refusals_are_throttled_and_audited(env: X509Env, caplog: pytest.LogCaptureFixture) -> None:
    carol = env.carol.cert.public_bytes(serialization.Encoding.DER)
    for _ in range(FAILURE_LIMIT):
        with pytest.raises(errors.FailedAuthentication):
            _transport(env).authenticate((), S11, INFO, carol, ROLES)
    assert _last(caplog).user == "carol"  # type: ignore[attr-defined]
    alice = env.alice.cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(errors.FailedAuthentication) as caught:
        _transport(env).authenticate((), S11, INFO, alice, ROLES)
    assert caught.value.reason == "client_throttled"


def _key_of_earlier_releases(envelope: etree._Element) -> bytes:
    """What releases before the SignedInfo key entered for a signature: SHA-256 of its SignatureValue as sent,
    whitespace removed."""
    value = envelope.findtext(f".//{{{ns.DS}}}SignatureValue")
    assert value is not None
    return hashlib.sha256(b"".join(value.encode("ascii").split())).digest()


def test_a_message_a_node_of_an_earlier_release_accepted_is_refused(env: X509Env) -> None:
    """During a rolling upgrade both releases share the replay cache: the entry an earlier node made for the
    message refuses it here too."""
    envelope = _envelope(env.alice)
    expires = env.clock.now().timestamp() + 300
    assert env.replay.check_and_add(SIGNATURE_NAMESPACE, _key_of_earlier_releases(envelope), expires)
    _expect(env, envelope, errors.InvalidSecurity, "signature_replayed")


def test_a_message_accepted_here_is_entered_under_the_key_of_earlier_releases(env: X509Env) -> None:
    """... and what this node accepted is refused by a node of an earlier release, which looks only for its key."""
    envelope = _envelope(env.alice)
    env.authenticator().authenticate(_headers(envelope), S11, _call(envelope), ROLES)
    expires = env.clock.now().timestamp() + 300
    assert not env.replay.check_and_add(SIGNATURE_NAMESPACE, _key_of_earlier_releases(envelope), expires)


def _respelled_spare_bits(value: str) -> str:
    """The same octets in other Base64: the unused low bits of the last character before ``==`` set differently
    (RFC 4648 §3.5 lets decoders ignore them; libxmlsec and Python both do)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert value.endswith("==")
    respelled = value[:-3] + alphabet[alphabet.index(value[-3]) ^ 1] + "=="
    assert base64.b64decode(respelled) == base64.b64decode(value) and respelled != value
    return respelled


def test_a_replay_with_a_comment_in_signed_info_and_a_respelled_value_is_refused(env: X509Env) -> None:
    """W30: a comment is not part of exclusive c14n (the SignedInfo the signature signs is unchanged, so the replay
    still verifies), and a respelled SignatureValue is the same signature; neither may make the message a fresh
    key for the replay cache."""
    envelope = _envelope(env.alice)
    replayed = copy.deepcopy(envelope)
    env.authenticator().authenticate(_headers(envelope), S11, _call(envelope), ROLES)
    signed_info = replayed.find(f".//{ns.qn(ns.DS, 'SignedInfo')}")
    value = replayed.find(f".//{ns.qn(ns.DS, 'SignatureValue')}")
    assert signed_info is not None and value is not None and value.text is not None
    signed_info.insert(2, etree.Comment(" replayed "))
    value.text = _respelled_spare_bits("".join(value.text.split()))
    _expect(env, replayed, errors.InvalidSecurity, "signature_replayed")


def test_a_replay_at_the_last_instant_its_timestamp_is_fresh_is_refused(env: X509Env) -> None:
    """A message whose Created is the full ``future_ttl`` (60 s) ahead of this node's clock is accepted, and still
    fresh exactly ``ttl`` (300 s) after its Created (both bounds inclusive). Its replay-cache entry was kept until
    accepted-at + ttl + future_ttl, that same instant, and an entry counts as gone from its expiry on: the identical
    message was accepted a second time then (its Expires, had it one, could end the window sooner)."""
    from sts.wss.timestamp import parse_xsd_datetime

    envelope = _envelope(env.alice)
    timestamp = envelope.find(f".//{{{ns.WSU}}}Timestamp")
    assert timestamp is not None
    created = parse_xsd_datetime(timestamp.findtext(f"{{{ns.WSU}}}Created") or "")
    timestamp.remove(timestamp[1])  # no Expires (WSS 1.1 §10: optional): only the freshness window bounds it
    _resign(envelope, env.alice, "timestamp", "body")

    def move_to(instant: object) -> None:
        env.clock.advance((instant - env.clock.now()).total_seconds())  # type: ignore[operator]

    move_to(created - timedelta(seconds=60))
    env.authenticator().authenticate(_headers(envelope), S11, _call(envelope), ROLES)
    move_to(created + timedelta(seconds=300))
    _expect(env, envelope, errors.InvalidSecurity, "signature_replayed")
