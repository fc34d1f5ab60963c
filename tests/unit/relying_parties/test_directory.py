"""The relying-party directory: AppliesTo resolution, lookup by registered identity, re-reads when the registry
changes, failing closed; and certificate dates judged at each use (an RP certificate that expires while the server
runs stops being used, without a restart, against an injected clock)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sts import errors
from sts.auth.users import Principal
from sts.clock import FrozenClock
from sts.operations.minting import subject_and_claims
from sts.relying_parties import registration
from sts.relying_parties.directory import RelyingPartyDirectory
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from sts.tokens.base import Attribute
from sts.wstrust.model import ClaimRequest, RequestedClaims

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RP = "https://rp.example/app/"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dated")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def directory_with(tmp_path: Path, cert: x509.Certificate, clock: FrozenClock) -> RelyingPartyDirectory:
    initialize(tmp_path / "sts.db")
    truststore = tmp_path / "truststore"
    truststore.mkdir()
    (truststore / "rp.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    store = RelyingPartyRegistry(SqliteRelyingPartyStore(Database(tmp_path / "sts.db")))
    store.add(RelyingParty(address=RP, cert_file="rp.crt.pem"))
    return RelyingPartyDirectory(store, truststore, clock=clock)


def test_rp_certificate_expiring_while_running_stops_being_used(
    tmp_path: Path, key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock(T0)
    directory = directory_with(tmp_path, certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(hours=1)), clock)
    party = directory.resolve(RP)
    assert party.certificate is not None
    assert directory.encrypter(party) is not None
    clock.advance(3600)  # notAfter itself: expired (RFC 5280 §4.1.2.5)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sts.rp"):
        for _ in range(3):
            party = directory.resolve(RP)
            assert party.certificate is None
            with pytest.raises(errors.RequestFailed) as refused:
                directory.encrypter(party)
            assert refused.value.reason == "rp_certificate_unusable"
    expired = [r.getMessage() for r in caplog.records if "certificate expired on" in r.getMessage()]
    assert expired == [f"relying party {RP}: certificate expired on 2030-01-01"]  # once, not per request


def test_rp_certificate_not_yet_valid_at_load_becomes_usable(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    clock = FrozenClock(T0)
    start = T0 + dt.timedelta(minutes=10)
    directory = directory_with(tmp_path, certificate(key, start, start + dt.timedelta(days=365)), clock)
    assert directory.resolve(RP).certificate is None
    clock.advance(600)
    assert directory.resolve(RP).certificate is not None


def test_rp_certificate_expiring_within_30_days_is_logged_once(
    tmp_path: Path, key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock(T0)
    cert = certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=40))
    directory = directory_with(tmp_path, cert, clock)
    with caplog.at_level(logging.WARNING, logger="sts.rp"):
        directory.resolve(RP)
        assert not [r for r in caplog.records if "expires on" in r.getMessage()]
        clock.advance(11 * 86400)  # 29 days left
        for _ in range(3):
            assert directory.resolve(RP).certificate is not None
    warned = [r.getMessage() for r in caplog.records if "expires on" in r.getMessage()]
    assert warned == [f"relying party {RP}: certificate expires on 2030-02-10"]


# --- resolution and lookup by registered identity -----------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> RelyingPartyRegistry:
    initialize(tmp_path / "sts.db")
    return RelyingPartyRegistry(SqliteRelyingPartyStore(Database(tmp_path / "sts.db")))


def unencrypted(address: str, **kwargs: object) -> RelyingParty:
    return RelyingParty(address=address, encrypt=False, **kwargs)  # type: ignore[arg-type]


def test_resolve_by_applies_to_and_registered_by_identity(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    registry.add(unencrypted(RP, match="prefix", profile="adfs"))
    directory = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=0)
    party = directory.resolve("https://RP.example:443/app/page")
    assert (party.rp.address, party.audience, party.fallback) == (RP, RP, False)
    assert (party.settings.profile, party.settings.token_type, party.certificate) == ("adfs", "saml11", None)
    # By identity: only the registered address itself, never an address the prefix would match.
    assert directory.registered("https://rp.example/app/page") is None
    found = directory.registered(RP)
    assert found is not None and found.rp == party.rp and found.settings == party.settings
    registry.remove(RP)
    assert directory.registered(RP) is None


def test_registered_regex_party_is_found_by_its_pattern(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    pattern = r"https://[a-z]+\.example/app/"
    registry.add(unencrypted(pattern, match="regex", identifier="urn:rp"))
    directory = RelyingPartyDirectory(registry, tmp_path)
    assert directory.resolve("https://one.example/app/").audience == "urn:rp"
    assert directory.registered("https://one.example/app/") is None
    found = directory.registered(pattern)
    assert found is not None and found.audience == "urn:rp"


def test_nameid_sources_by_the_audience_tokens_name(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    """An RP's tokens name its identifier, else its address; its source is its own ``nameid``, else its profile's."""
    registry.add(unencrypted(RP))
    registry.add(unencrypted(r"https://[a-z]+\.example/mail/", match="regex", identifier="urn:mail", nameid="email"))
    directory = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=0)
    assert directory.nameid_sources(RP) == {"username"}
    assert directory.nameid_sources("urn:mail") == {"email"}
    assert directory.nameid_sources("https://one.example/mail/") == set()  # matched by AppliesTo, never named
    registry.add(unencrypted("https://other.example/", identifier=RP, nameid="http://wso2.org/claims/upn"))
    assert directory.nameid_sources(RP) == {"username", "http://wso2.org/claims/upn"}


def test_default_relying_party_and_refusals(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    registry.add(unencrypted(RP))
    strict = RelyingPartyDirectory(registry, tmp_path)
    with pytest.raises(errors.InvalidScope) as unknown:
        strict.resolve("https://other.example/")
    assert unknown.value.reason == "unknown_applies_to"
    with pytest.raises(errors.InvalidRequest) as missing:
        strict.resolve(None)
    assert missing.value.reason == "missing_applies_to"
    with_default = RelyingPartyDirectory(registry, tmp_path, default_address=RP, default_profile="wso2")
    for address in ("https://other.example/", None):
        party = with_default.resolve(address)
        assert (party.rp.address, party.fallback, party.settings.profile) == (RP, True, "wso2")


def test_directory_rereads_the_registry_when_its_version_moves(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    directory = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=3600)
    registry.add(unencrypted(RP))
    assert directory.resolve(RP).rp.address == RP
    registry.add(unencrypted("https://late.example/"))
    with pytest.raises(errors.InvalidScope):  # looked at the version less than recheck_seconds ago
        directory.resolve("https://late.example/")
    eager = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=0)
    assert eager.resolve("https://late.example/").rp.address == "https://late.example/"


def test_changed_settings_are_used_after_the_re_read(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    """The effective settings are worked out once per registration: an update is answered with the new ones."""
    registry.add(unencrypted(RP, profile="adfs"))
    directory = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=0)
    first = directory.resolve(RP).settings
    assert (first.profile, first.token_type, first.nameid) == ("adfs", "saml11", "username")
    assert directory.resolve(RP).settings is first  # not worked out again while the registration stands
    registry.update(unencrypted(RP, profile="cxf", nameid="email"))
    changed = directory.resolve(RP).settings
    assert (changed.profile, changed.token_type, changed.nameid, changed.profile_spelling) == (
        "cxf", "saml20", "email", True,
    )
    found = directory.registered(RP)
    assert found is not None and found.settings is changed


def test_changed_claims_are_used_after_the_re_read(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    """The claim policy is worked out once per registration: an update of the claims or the claim mapping is what
    the next token carries, not the claims of the registration read before."""
    email, given = "http://wso2.org/claims/emailaddress", "http://wso2.org/claims/givenname"
    alice = Principal("CORP", "alice", frozenset(), {email: ("a@example.com",), given: ("Alice",)})
    registry.add(unencrypted(RP, claims=(email,)))
    directory = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=0)
    first = directory.resolve(RP)
    assert subject_and_claims(alice, first, None)[2] == (Attribute(email, ("a@example.com",)),)
    assert directory.resolve(RP).claims is first.claims  # not worked out again while the registration stands
    registry.update(unencrypted(RP, claims=(email, given), claim_mapping=((email, "urn:rp:mail"),)))
    changed = directory.resolve(RP)
    assert subject_and_claims(alice, changed, None)[2] == (
        Attribute("urn:rp:mail", ("a@example.com",)),
        Attribute(given, ("Alice",)),
    )
    found = directory.registered(RP)
    assert found is not None and found.claims is changed.claims
    registry.update(unencrypted(RP, claims=(given,)))  # a claim taken away is refused, even when asked for
    asked = RequestedClaims("urn:dialect", (ClaimRequest(email, optional=False),))
    with pytest.raises(errors.RequestFailed):
        subject_and_claims(alice, directory.resolve(RP), asked)


def test_unreadable_registry_fails_closed(tmp_path: Path, registry: RelyingPartyRegistry) -> None:
    registry.add(unencrypted(RP))
    db = Database(tmp_path / "sts.db")
    db.conn.execute("DROP TABLE meta")
    db.close()
    directory = RelyingPartyDirectory(registry, tmp_path, recheck_seconds=0)
    for lookup in (lambda: directory.resolve(RP), lambda: directory.registered(RP)):
        with pytest.raises(errors.ServiceUnavailable) as down:
            lookup()
        assert down.value.reason == "rp_store_down"


def test_one_encrypter_per_certificate_and_algorithms(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    directory = directory_with(tmp_path, certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=90)),
                               FrozenClock(T0))
    party = directory.resolve(RP)
    assert directory.encrypter(party) is directory.encrypter(directory.resolve(RP))


def test_an_inline_certificate_is_served_without_a_truststore_and_its_dates_judged(
    tmp_path: Path, key: rsa.RSAPrivateKey, registry: RelyingPartyRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A relying party registered on a shared store carries its certificate: a node without the file serves it."""
    clock = FrozenClock(T0)
    cert = certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=20))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    registry.add(RelyingParty(address=RP, cert_pem=pem))
    directory = RelyingPartyDirectory(registry, tmp_path / "no-truststore", recheck_seconds=0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="sts.rp"):
        party = directory.resolve(RP)
        assert party.certificate == cert
        assert directory.encrypter(party) is directory.encrypter(directory.resolve(RP))
    assert [r.getMessage() for r in caplog.records] == [f"relying party {RP}: certificate expires on 2030-01-21"]
    clock.advance(20 * 86400)
    with pytest.raises(errors.RequestFailed) as refused:
        directory.encrypter(directory.resolve(RP))
    assert refused.value.reason == "rp_certificate_unusable"


def test_a_certificate_replaced_by_rp_update_is_used_even_if_a_worker_re_read_in_between(
    tmp_path: Path, key: rsa.RSAPrivateKey, registry: RelyingPartyRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sts rp update --cert`` saves the registration (moving the version) and only then renames the new file over
    the old one (same name). A worker that re-reads the registry between the two must not keep encrypting to the
    old certificate until the next, unrelated, registry change."""
    truststore = tmp_path / "truststore"
    old = certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=400))
    registration.register(registry, truststore, RelyingParty(address=RP), old, "strict")
    directory = RelyingPartyDirectory(registry, truststore, recheck_seconds=0, clock=FrozenClock(T0))
    assert directory.resolve(RP).certificate == old
    saved = registry.save

    saves: list[RelyingParty] = []

    def save_then_a_worker_re_reads(before: RelyingParty, after: RelyingParty) -> RelyingParty:
        done = saved(before, after)
        if not saves:
            assert directory.resolve(RP).certificate == old  # the new file is not in place yet
        saves.append(done)
        return done

    monkeypatch.setattr(registry, "save", save_then_a_worker_re_reads)
    new = certificate(rsa.generate_private_key(public_exponent=65537, key_size=2048), T0, T0 + dt.timedelta(days=500))
    done = registration.update(registry, truststore, RP, lambda _: {}, new, "strict")
    assert done.certificate == truststore / registry.get(RP).cert_file  # the same file name, new content
    assert directory.resolve(RP).certificate == new


def test_a_registry_that_cannot_be_re_read_is_not_answered_from_the_old_snapshot(
    tmp_path: Path, registry: RelyingPartyRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removed relying party keeps no tokens coming while the registry cannot be re-read: here a row this release
    cannot parse (written by a newer one sharing the database). Every request fails closed, the first as the next;
    none is answered from the registry as it was before the change (which still has the removed party)."""
    import types

    from sts.relying_parties import directory as directory_module

    removed = "https://removed.example/"
    registry.add(unencrypted(RP))
    registry.add(unencrypted(removed))
    now = [1000.0]
    monkeypatch.setattr(directory_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    directory = RelyingPartyDirectory(registry, tmp_path)  # the registry looked at once a second
    assert directory.resolve(removed).rp.address == removed
    registry.remove(removed)
    newer = unencrypted("https://newer.example/").to_json().replace('"cipher": ""', '"cipher": "aes512-future"')
    assert SqliteRelyingPartyStore(Database(tmp_path / "sts.db")).insert("https://newer.example/", newer)
    now[0] += 2
    for address in (removed, removed, RP):
        with pytest.raises(errors.ServiceUnavailable) as down:
            directory.resolve(address)
        assert down.value.reason == "rp_store_down"
