"""Issue 18: the key ring follows rotations on disk; promote_at and the overlap of retired certificates."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from sts.clock import FrozenClock
from sts.config.settings import IssuerSettings, Settings
from sts.crypto.keygen import generate_rsa_key, self_signed_certificate, write_certificate, write_private_key
from sts.crypto.keyring import KeyRing, build_ring, load_material
from sts.crypto.keystore import fingerprint, load_certificate
from sts.crypto.rotation import RotationError, promote, rotate
from sts.crypto.verifier import verify_enveloped
from sts.tokens.base import NAMEID_UNSPECIFIED, AssertionContent
from sts.tokens.saml2 import build_saml2


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW when the test runs: the certificates made here are valid from five minutes before it."""
    monkeypatch.setitem(globals(), "NOW", dt.datetime.now(dt.UTC).replace(microsecond=0))


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _settings(tmp_path: Path, **issuer: object) -> Settings:
    key = generate_rsa_key(2048)
    write_private_key(tmp_path / "k" / "sign.key", key)
    write_certificate(tmp_path / "k" / "sign.crt", self_signed_certificate(key, "STS signing"))
    fields = IssuerSettings(
        signing_key=tmp_path / "k" / "sign.key",
        signing_cert=tmp_path / "k" / "sign.crt",
        next_signing_key=tmp_path / "k" / "next.key",
        next_signing_cert=tmp_path / "k" / "next.crt",
        retired_certs=tmp_path / "k" / "retired",
    )
    return Settings(config_path=tmp_path / "sts.toml", issuer=dataclasses.replace(fields, **issuer))  # type: ignore[arg-type]


def _ring(settings: Settings, clock: FrozenClock) -> KeyRing:
    return KeyRing(settings.issuer, clock.now, load_material(settings, clock.now()),
                   lambda: load_material(settings), interval=0)


def _roles(ring: KeyRing) -> list[tuple[str, str]]:
    return [(entry.role, fingerprint(entry.cert)) for entry in ring.state().published]


def test_rotate_publishes_next_and_promote_switches_the_signer(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    clock = FrozenClock(NOW)
    ring = _ring(settings, clock)
    old = fingerprint(ring.state().signing_cert)
    new = fingerprint(rotate(settings, NOW).next_cert)
    assert _roles(ring) == [("current", old), ("next", new)]
    assert fingerprint(ring.state().signing_cert) == old  # published, not yet signing
    with pytest.raises(RotationError, match="already waiting"):
        rotate(settings, NOW)
    promote(settings, NOW)
    assert _roles(ring) == [("current", new), ("previous", old)]
    assert {fingerprint(c) for c in ring.state().accepted_certs} == {old, new}
    clock.advance(settings.issuer.previous_overlap + 1)
    assert _roles(ring) == [("current", new)]  # the overlap is over: the old certificate is no longer accepted


def test_promote_at_switches_every_worker_at_that_instant(tmp_path: Path) -> None:
    at = NOW + dt.timedelta(hours=1)
    settings = _settings(tmp_path, promote_at=at)
    clock = FrozenClock(NOW)
    ring = _ring(settings, clock)
    old = fingerprint(ring.state().signing_cert)
    new = fingerprint(rotate(settings, NOW).next_cert)
    assert _roles(ring) == [("current", old), ("next", new)]
    clock.advance(3600)
    assert _roles(ring) == [("current", new), ("previous", old)]


def test_promote_at_passed_does_not_promote_a_key_made_after_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, promote_at=NOW - dt.timedelta(minutes=1))
    clock = FrozenClock(NOW)
    ring = _ring(settings, clock)
    old = fingerprint(ring.state().signing_cert)
    new = fingerprint(rotate(settings, NOW).next_cert)
    assert _roles(ring) == [("current", old), ("next", new)]


def _signed_token(ring: KeyRing, at: dt.datetime) -> etree._Element:
    """An assertion signed by whichever key the ring signs with now, as a worker issues it."""
    content = AssertionContent("_" + "c" * 40, "https://sts/", at, at, at + dt.timedelta(minutes=5), "https://rp/",
                               "https://rp/", "alice", NAMEID_UNSPECIFIED, at, ())
    return etree.fromstring(etree.tostring(ring.state().signer.sign_saml2(build_saml2(content))))


def _k2_signing_since_promote_at(tmp_path: Path) -> tuple[Settings, FrozenClock, KeyRing, str, str]:
    """K2 made at NOW, promote_at an hour later, the clock past it: every worker signs with K2 (in memory), while
    its files are still the next key's."""
    at = NOW + dt.timedelta(hours=1)
    settings = _settings(tmp_path, promote_at=at)
    clock = FrozenClock(NOW)
    ring = _ring(settings, clock)
    k1 = fingerprint(ring.state().signing_cert)
    k2 = fingerprint(rotate(settings, NOW).next_cert)
    clock.advance(3600 + 600)
    assert _roles(ring) == [("current", k2), ("previous", k1)]
    assert settings.issuer.next_signing_cert.exists()
    return settings, clock, ring, k1, k2


@pytest.mark.parametrize("replace", [False, True])
def test_rotate_after_promote_at_keeps_the_key_in_force(tmp_path: Path, replace: bool) -> None:
    """Review: rotate refused ("a next key is already waiting") and --replace overwrote K2, the signing key."""
    settings, clock, ring, k1, k2 = _k2_signing_since_promote_at(tmp_path)
    token = _signed_token(ring, clock.now())
    k3 = fingerprint(rotate(settings, clock.now(), replace=replace).next_cert)
    assert fingerprint(load_certificate(settings.issuer.signing_cert)) == k2  # the files now say what signs
    assert _roles(ring) == [("current", k2), ("next", k3), ("previous", k1)]
    verify_enveloped(token, "ID", ring.state().accepted_certs)  # tokens K2 signed since promote_at still validate
    clock.advance(settings.issuer.previous_overlap)  # K1's overlap counts from promote_at: over now
    assert _roles(ring) == [("current", k2), ("next", k3)]


def test_promote_after_promote_at_retires_the_old_key_as_of_promote_at(tmp_path: Path) -> None:
    settings, clock, ring, k1, k2 = _k2_signing_since_promote_at(tmp_path)
    token = _signed_token(ring, clock.now())
    promoted = promote(settings, clock.now())
    assert (fingerprint(promoted.current), promoted.retired_at, promoted.by_schedule) == (
        k2, settings.issuer.promote_at, True
    )
    assert not settings.issuer.next_signing_cert.exists()
    assert fingerprint(load_certificate(settings.issuer.signing_cert)) == k2
    assert _roles(ring) == [("current", k2), ("previous", k1)]
    verify_enveloped(token, "ID", ring.state().accepted_certs)
    clock.advance(settings.issuer.previous_overlap - 600)  # promote_at + overlap: K1 no longer accepted
    assert _roles(ring) == [("current", k2)]
    with pytest.raises(RotationError, match="no next key"):
        promote(settings, clock.now())


@pytest.mark.parametrize(("minutes", "refused"), [(3, True), (10, False)])
def test_replace_refuses_a_next_key_about_to_sign(tmp_path: Path, minutes: int, refused: bool) -> None:
    """Defence in depth: each node promotes by its own clock, so one running ahead may sign with K2 already."""
    settings = _settings(tmp_path, promote_at=NOW + dt.timedelta(minutes=minutes))
    k2 = fingerprint(rotate(settings, NOW).next_cert)
    if refused:
        with pytest.raises(RotationError, match="may already sign tokens, so it is not replaced"):
            rotate(settings, NOW, replace=True)
        assert fingerprint(load_certificate(settings.issuer.next_signing_cert)) == k2
    else:
        assert fingerprint(rotate(settings, NOW, replace=True).next_cert) != k2


def test_rotate_refuses_within_the_second_of_promote_at(tmp_path: Path) -> None:
    """notBefore has whole seconds: a key made in promote_at's second would count as made before it and sign
    unpublished."""
    settings = _settings(tmp_path, promote_at=NOW)
    with pytest.raises(RotationError, match="less than a second ago"):
        rotate(settings, NOW + dt.timedelta(milliseconds=500))
    assert not settings.issuer.next_signing_cert.exists()
    rotate(settings, NOW + dt.timedelta(seconds=1))


def test_files_that_do_not_load_leave_the_keys_in_use(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    clock = FrozenClock(NOW)
    ring = _ring(settings, clock)
    before = _roles(ring)
    other = generate_rsa_key(2048)
    write_certificate(settings.issuer.next_signing_cert, self_signed_certificate(other, "x"))
    write_private_key(settings.issuer.next_signing_key, generate_rsa_key(2048))  # not the certificate's key
    assert _roles(ring) == before
    with pytest.raises(RotationError, match="does not match"):
        promote(settings, NOW)
    assert _roles(ring) == before


def test_status_ring_loads_from_the_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rotate(settings, NOW)
    ring = build_ring(settings, lambda: NOW)
    assert [entry.role for entry in ring.state().published] == ["current", "next"]


def test_promote_at_is_a_toml_date_time_with_an_offset(tmp_path: Path) -> None:
    from sts.config import load_settings
    from sts.errors import ConfigError

    config = tmp_path / "sts.toml"
    config.write_text("[issuer]\npromote_at = 2030-01-31T12:00:00Z\n")
    assert load_settings(config, env={}).issuer.promote_at == dt.datetime(2030, 1, 31, 12, tzinfo=dt.UTC)
    config.write_text("[issuer]\npromote_at = 2030-01-31T12:00:00\n")  # local time: which node's?
    with pytest.raises(ConfigError, match="promote_at: must be a date-time with a UTC offset"):
        load_settings(config, env={})
    assert load_settings(config, env={"STS_ISSUER_PROMOTE_AT": "2030-01-31T12:00:00+01:00"}).issuer.promote_at == (
        dt.datetime(2030, 1, 31, 11, tzinfo=dt.UTC)
    )
