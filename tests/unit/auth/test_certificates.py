"""Tests for sts.auth.certificates: the two trust sources, the user mapping rules (P05), the user gate, and the
per-client throttle and audit of certificate logins; and sts.crypto.client_certs' loader of TLS certificates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from lxml import etree

from sts import errors, ns
from sts.auth.certificates import CertificateAttempt, CertificateRules, CertificateTrust, mapped_name
from sts.auth.credential_cache import VerifiedPrincipalCache
from sts.auth.router import UserStoreRouter
from sts.crypto.client_certs import ClientAuthority, load_client_certificate
from sts.wss.x509_token import TokenReference, read_token_reference
from tests.unit.auth.x509_env import INFO, X509Env, audit_records, build_env
from tests.x509_support import make_cert, printable_name, rsa_key

ROLES = frozenset({"admin"})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[X509Env]:
    built = build_env(tmp_path_factory.mktemp("certs"))
    yield built
    built.db.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[X509Env]:
    """An environment of the test's own, for tests that change it."""
    built = build_env(tmp_path)
    yield built
    built.db.close()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_registered_certificate_is_found_by_every_reference_form(env: X509Env) -> None:
    cert = env.alice.cert
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    forms = [
        TokenReference(certificate=cert, token_id="X509-1"),
        TokenReference(thumbprint=hashlib.sha1(_der(cert)).digest()),  # noqa: S324 - the profile's identifier
        TokenReference(ski=ski),
        TokenReference(issuer_serial=(cert.issuer, cert.serial_number)),
        TokenReference(issuer_serial=(cert.issuer, cert.serial_number), embedded=cert),
    ]
    for reference in forms:
        assert env.trust.resolve(reference) == (cert, "PRIMARY", "admin")


def _issuer_serial_reference(issuer: str, serial: int) -> TokenReference:
    """The reference a ds:X509IssuerSerial with this text and serial number reads as."""
    xml = (f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}" xmlns:ds="{ns.DS}"><ds:X509Data>'
           f"<ds:X509IssuerSerial><ds:X509IssuerName>{issuer}</ds:X509IssuerName>"
           f"<ds:X509SerialNumber>{serial}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>"
           "</wsse:SecurityTokenReference>")
    return read_token_reference(etree.fromstring(xml), etree.Element(ns.qn(ns.WSSE, "Security")))


def test_a_ca_issued_certificate_maps_by_its_cn(env: X509Env) -> None:
    assert env.trust.resolve(TokenReference(certificate=env.ca_admin.cert)) == (env.ca_admin.cert, "PRIMARY", "admin")


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (lambda e: TokenReference(certificate=e.stranger.cert), "cert_unknown"),
        (lambda e: TokenReference(thumbprint=b"\0" * 20), "cert_unknown"),
        (lambda e: TokenReference(issuer_serial=(x509.Name.from_rfc4514_string("O=sts tests,CN=alice"),
                                                 e.alice.cert.serial_number)), "cert_unknown"),  # P06: RDN order
        (lambda e: TokenReference(certificate=e.ca_revoked.cert), "cert_revoked"),
        (lambda e: TokenReference(issuer_serial=(e.alice.cert.issuer, e.alice.cert.serial_number),
                                  embedded=e.bob.cert), "cert_mismatch"),
    ],
    ids=["P01_self_signed_unregistered", "unknown_thumbprint", "P06_other_rdn_order", "P03_revoked",
         "embedded_differs"],
)
def test_untrusted_references_fail_authentication(env: X509Env, reference: object, reason: str) -> None:
    with pytest.raises(errors.FailedAuthentication) as caught:
        env.trust.resolve(reference(env))  # type: ignore[operator]
    assert caught.value.reason == reason


def test_p02_p04_registered_certificates_are_checked_on_every_use(env: X509Env) -> None:
    """A registered certificate past its validity, or one that may not sign, is refused all the same."""
    for name, kwargs, reason in (
        ("expired", {"days": (-30, -1)}, "certificate_expired"),
        ("encipher", {"key_usage": "keyEncipherment"}, "certificate_key_usage"),
    ):
        key = rsa_key()
        cert = make_cert(name, key, **kwargs)  # type: ignore[arg-type]
        env.users.add_certificate("PRIMARY", "admin", _der(cert))
        with pytest.raises(errors.FailedAuthentication) as caught:
            env.trust.resolve(TokenReference(certificate=cert))
        assert caught.value.reason == reason


def _subject(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    return make_cert("unused", rsa_key(), subject=name)


@pytest.mark.parametrize(
    ("attributes", "rule"),
    [
        (((NameOID.COMMON_NAME, "admin"), (NameOID.COMMON_NAME, "x")), "cn"),
        (((NameOID.EMAIL_ADDRESS, "admin"),), "cn"),
        (((NameOID.COMMON_NAME, "admin"),), "san_email"),
        (((NameOID.COMMON_NAME, "admin"),), "san_dns"),
        (((NameOID.COMMON_NAME, "admin"),), "unknown-rule"),
    ],
    ids=["P05_two_cn_rdns", "P05_email_only_no_cn", "no_san_email", "no_san_dns", "unknown_rule"],
)
def test_p05_a_subject_must_name_exactly_one_user(attributes: tuple[tuple[x509.ObjectIdentifier, str], ...],
                                                  rule: str) -> None:
    with pytest.raises(errors.FailedAuthentication) as caught:
        mapped_name(_subject(*attributes), rule)
    assert caught.value.reason == "cert_unmapped"


def test_p05_the_cn_is_taken_whole_never_split() -> None:
    """WSO2 splits the DN string on ',' and '='; the CN ``admin,x`` and a fullwidth "admin" stay what they are."""
    assert mapped_name(_subject((NameOID.COMMON_NAME, "admin,x")), "cn") == "admin,x"
    assert mapped_name(_subject((NameOID.COMMON_NAME, "\uff41\uff44\uff4d\uff49\uff4e")), "cn") != "admin"


def test_san_rules_read_exactly_one_value() -> None:
    key = rsa_key()
    base = make_cert("x", key)
    builder = (x509.CertificateBuilder().subject_name(base.subject).issuer_name(base.issuer)
               .public_key(key.public_key()).serial_number(1).not_valid_before(base.not_valid_before_utc).not_valid_after(base.not_valid_after_utc)
               .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("admin@example.org"),
                                                           x509.DNSName("host.example.org")]), critical=False))
    from cryptography.hazmat.primitives import hashes

    cert = builder.sign(key, hashes.SHA256())
    assert mapped_name(cert, "san_email") == "admin@example.org"
    assert mapped_name(cert, "san_dns") == "host.example.org"


def test_a_ca_certificate_naming_an_invalid_user_name_is_unmapped(fresh: X509Env) -> None:
    cert = make_cert("PRIMARY/SECONDARY/x", rsa_key(), issuer=fresh.ca)  # type: ignore[arg-type]
    with pytest.raises(errors.FailedAuthentication) as caught:
        fresh.trust.resolve(TokenReference(certificate=cert))
    assert caught.value.reason == "cert_unmapped"


@pytest.mark.parametrize(
    ("domain", "name", "roles", "reason"),
    [
        ("PRIMARY", "carol", ROLES, "user_disabled"),
        ("PRIMARY", "norole", ROLES, "role_denied"),
        ("PRIMARY", "nobody", ROLES, "unknown_user"),
    ],
    ids=["P05_disabled_user", "P05_role_less_user", "unknown_user"],
)
def test_the_user_passes_the_same_gate_as_password_callers(
    env: X509Env, domain: str, name: str, roles: frozenset[str], reason: str
) -> None:
    with pytest.raises(errors.FailedAuthentication) as caught:
        env.trust.principal(domain, name, roles)
    assert caught.value.reason == reason
    assert env.trust.principal("PRIMARY", "admin", ROLES).name == "admin"


def test_a_domain_outside_allowed_domains_is_refused(fresh: X509Env) -> None:
    from dataclasses import replace

    rules = replace(fresh.trust._rules, allowed_domains=frozenset({"SECONDARY"}))  # noqa: SLF001
    fresh.trust._rules = rules  # noqa: SLF001
    with pytest.raises(errors.FailedAuthentication) as caught:
        fresh.trust.principal("PRIMARY", "admin", ROLES)
    assert caught.value.reason == "domain_denied"


def test_refusals_count_towards_the_client_throttle(fresh: X509Env) -> None:
    client = "198.51.100.7"
    fresh.trust.count_failure(errors.InvalidSecurity("x", reason="header_extra"), client)  # not an authentication
    fresh.trust.count_failure(errors.FailedAuthentication("x", reason="client_throttled"), client)  # already
    fresh.trust.check_throttle(client)
    for _ in range(3):
        fresh.trust.count_failure(errors.FailedAuthentication("x", reason="cert_unknown"), client)
    with pytest.raises(errors.FailedAuthentication) as caught:
        fresh.trust.check_throttle(client)
    assert caught.value.reason == "client_throttled"
    fresh.trust.check_throttle("198.51.100.8")  # per client
    fresh.trust.check_throttle("")  # no address known: nothing to count against


def test_an_attempt_audits_its_user(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="sts.audit")
    attempt = CertificateAttempt(INFO, "admin", "PRIMARY")
    attempt.audit("failure", "role_denied")
    (record,) = audit_records(caplog)
    assert (record.user, record.domain, record.reason, record.outcome) == (  # type: ignore[attr-defined]
        "admin", "PRIMARY", "role_denied", "failure"
    )


def test_tls_certificates_load_from_der_or_one_pem_block(env: X509Env) -> None:
    cert = env.alice.cert
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert load_client_certificate(_der(cert)) == cert
    assert load_client_certificate(b"\n" + pem) == cert
    for bad in (pem + env.bob.cert.public_bytes(serialization.Encoding.PEM), b"garbage", b"-----BEGIN x"):
        with pytest.raises(ValueError):
            load_client_certificate(bad)


def test_a_garbled_san_maps_to_no_user() -> None:
    key = rsa_key()
    garbled = x509.UnrecognizedExtension(x509.ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02")
    base = make_cert("x", key)
    from cryptography.hazmat.primitives import hashes

    cert = (x509.CertificateBuilder().subject_name(base.subject).issuer_name(base.issuer)
            .public_key(key.public_key()).serial_number(1).not_valid_before(base.not_valid_before_utc)
            .not_valid_after(base.not_valid_after_utc).add_extension(garbled, critical=False)
            .sign(key, hashes.SHA256()))
    with pytest.raises(errors.FailedAuthentication):
        mapped_name(cert, "san_email")


class _Versions:
    """Shared credential versions as the Redis backend keeps them: a bump moves one account's version."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}

    def current(self, key: str) -> tuple[str, ...]:
        return (str(self.counters.get(key, 0)),)

    def bump(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def bump_all(self) -> None:
        self.counters = {k: v + 1 for k, v in self.counters.items()}


def _cached_trust(env: X509Env, clock: list[float], versions: _Versions | None = None) -> CertificateTrust:
    cache = VerifiedPrincipalCache(60, clock=lambda: clock[0])
    trust = env.trust
    return CertificateTrust(trust._registered, trust._authority, trust._users, trust._rules,  # noqa: SLF001
                            trust._clock, trust._throttle, cache, versions)  # noqa: SLF001


def test_a_certificate_callers_lookup_is_cached_for_the_credential_cache_ttl(fresh: X509Env) -> None:
    clock = [0.0]
    trust = _cached_trust(fresh, clock)
    assert trust.principal("PRIMARY", "bob", ROLES).enabled
    fresh.users.set_enabled("PRIMARY", "bob", False)
    assert trust.principal("PRIMARY", "bob", ROLES).enabled  # within the TTL: the cached lookup
    assert trust.principal("PRIMARY", "BOB", ROLES).name == "bob"  # keyed by the canonical name
    clock[0] = 61.0
    with pytest.raises(errors.FailedAuthentication) as caught:
        trust.principal("PRIMARY", "bob", ROLES)
    assert caught.value.reason == "user_disabled"
    with pytest.raises(errors.FailedAuthentication):  # a refused user is never cached
        trust.principal("PRIMARY", "bob", ROLES)


def test_a_version_bump_drops_a_cached_certificate_caller_at_once(fresh: X509Env) -> None:
    versions = _Versions()
    trust = _cached_trust(fresh, [0.0], versions)
    assert trust.principal("PRIMARY", "bob", ROLES).holds_any_role(ROLES)
    fresh.users.revoke("PRIMARY", "bob", "admin")
    assert trust.principal("PRIMARY", "bob", ROLES).holds_any_role(ROLES)  # same version: still cached
    versions.bump("PRIMARY/bob")
    with pytest.raises(errors.FailedAuthentication) as caught:
        trust.principal("PRIMARY", "bob", ROLES)
    assert caught.value.reason == "role_denied"


def test_the_cache_never_skips_the_domain_rule(fresh: X509Env) -> None:
    from dataclasses import replace

    trust = _cached_trust(fresh, [0.0])
    trust.principal("PRIMARY", "admin", ROLES)
    trust._rules = replace(trust._rules, allowed_domains=frozenset({"SECONDARY"}))  # noqa: SLF001
    with pytest.raises(errors.FailedAuthentication) as caught:
        trust.principal("PRIMARY", "admin", ROLES)
    assert caught.value.reason == "domain_denied"


def test_issuer_serial_names_a_registered_keytool_certificate(fresh: X509Env) -> None:
    """WSS4J's default reference is IssuerSerial; a keytool certificate's issuer is PrintableString, and the name
    read from ds:X509IssuerName (".NET/Java" text, ", " between RDNs) parses back as UTF8String."""
    key = rsa_key()
    cert = make_cert("keytool", key, subject=printable_name("keytool"))
    fresh.users.add_certificate("PRIMARY", "bob", _der(cert))
    reference = _issuer_serial_reference("CN=keytool, O=sts tests", cert.serial_number)
    assert fresh.trust.resolve(reference) == (cert, "PRIMARY", "bob")


@pytest.mark.parametrize("days, key_cert_sign", [((-400, -30), True), ((-1, 365), False)],
                         ids=["expired_ca", "ca_without_key_cert_sign"])
def test_a_ca_that_may_not_vouch_leaves_its_certificates_unknown(
    fresh: X509Env, tmp_path: Path, days: tuple[int, int], key_cert_sign: bool
) -> None:
    """RFC 5280 §4.2.1.3, §6.1: an expired client CA, or one without keyCertSign, is no trust source: its leaf is
    refused as a certificate of no configured CA."""
    key = rsa_key()
    ca = make_cert("Client CA", key, ca=True, extended=None, key_usage="none", days=days, key_cert_sign=key_cert_sign)
    (tmp_path / "unusable-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    trust = CertificateTrust(None, ClientAuthority(tmp_path / "unusable-ca.pem"), UserStoreRouter.single(fresh.users),
                             CertificateRules(frozenset({"ALL-USER-STORE-DOMAINS"}), "cn"), fresh.clock)
    leaf = make_cert("admin", rsa_key(), issuer=(ca, key))
    with pytest.raises(errors.FailedAuthentication) as caught:
        trust.resolve(TokenReference(certificate=leaf))
    assert caught.value.reason == "cert_unknown"


def test_a_cn_in_down_level_form_names_the_account_of_that_netbios_name(fresh: X509Env, tmp_path: Path) -> None:
    """CN=TEST\\admin is CORP/admin when CORP's netbios_name is TEST, exactly as a UsernameToken TEST\\admin is;
    without that setting it stays the PRIMARY name TEST\\admin, as before."""
    cert = make_cert("TEST\\admin", rsa_key(), issuer=fresh.ca)  # type: ignore[arg-type]
    reference = TokenReference(certificate=cert)
    assert fresh.trust.resolve(reference) == (cert, "PRIMARY", "TEST\\admin")
    fresh.users.add_user("CORP", "admin", "Not-used-1", roles=["admin"])
    router = UserStoreRouter({"CORP": fresh.users}, fallback=fresh.users, down_level={"test": "CORP"})
    trust = CertificateTrust(None, ClientAuthority(tmp_path / "ca.pem", tmp_path / "ca.crl"), router,
                             CertificateRules(frozenset({"ALL-USER-STORE-DOMAINS"}), "cn"), fresh.clock)
    assert trust.resolve(reference) == (cert, "CORP", "admin")
    assert trust.principal("CORP", "admin", ROLES).qualified_name == "CORP/admin"
