"""Issue 18: the key ring follows rotations on disk; promote_at and the overlap of retired certificates."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from sts.clock import FrozenClock
from sts.config.settings import IssuerSettings, Settings
from sts.crypto.keygen import generate_rsa_key, self_signed_certificate, write_certificate, write_private_key
from sts.crypto.keyring import KeyRing, build_ring, load_material
from sts.crypto.keystore import fingerprint
from sts.crypto.rotation import RotationError, promote, rotate


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
    new = fingerprint(rotate(settings, NOW))
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
    new = fingerprint(rotate(settings, NOW))
    assert _roles(ring) == [("current", old), ("next", new)]
    clock.advance(3600)
    assert _roles(ring) == [("current", new), ("previous", old)]


def test_promote_at_passed_does_not_promote_a_key_made_after_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, promote_at=NOW - dt.timedelta(minutes=1))
    clock = FrozenClock(NOW)
    ring = _ring(settings, clock)
    old = fingerprint(ring.state().signing_cert)
    new = fingerprint(rotate(settings, NOW))
    assert _roles(ring) == [("current", old), ("next", new)]


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
