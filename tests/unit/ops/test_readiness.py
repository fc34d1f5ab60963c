"""``Readiness``: the verdict over the probes, bounded by the timeout, one probe run at a time; the traces and
certificate inventory the metrics read."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from sts import telemetry
from sts.certificates import CertificateExpiry, configured_certificates, expiry_warnings
from sts.clock import SystemClock
from sts.config import load_settings
from sts.errors import ServiceUnavailable
from sts.readiness import Readiness
from sts.stores.factory import build_stores
from sts.stores.sqlite import Database
from tests.servers.redis import RedisServer
from tests.support import make_instance


def _down() -> None:
    raise ServiceUnavailable("gone", reason="store_unavailable")


def test_ready_only_when_every_probe_answers() -> None:
    assert Readiness([("store", lambda: None)], 1.0).report().ready
    report = Readiness([("store", lambda: None), ("directory EXAMPLE", _down)], 1.0).report()
    assert (report.ready, report.checks) == (False, {"store": "ok", "directory EXAMPLE": "down"})


def test_a_hanging_probe_is_a_timeout_and_concurrent_callers_share_the_one_run() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hang() -> None:
        calls.append(1)
        release.wait(10)

    readiness = Readiness([("store", lambda: None), ("directory X", hang)], timeout=0.2)
    try:
        first = readiness.report()
        second = readiness.report()  # the run is still hanging: no second run behind it
        assert (first.ready, first.checks) == (False, {"store": "ok", "directory X": "timeout"})
        assert second.checks == first.checks and len(calls) == 1
    finally:
        release.set()


def test_a_result_is_reused_for_a_second_then_probed_again() -> None:
    calls: list[int] = []
    readiness = Readiness([("store", lambda: calls.append(1))], 1.0, fresh_for=60)
    readiness.report()
    readiness.report()
    assert calls == [1]
    Readiness([("store", lambda: calls.append(1))], 1.0, fresh_for=0).report()
    assert calls == [1, 1]


def test_the_sqlite_probe_fails_closed_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    path.write_bytes(b"not a database" * 100)
    with Database(path) as db, pytest.raises(ServiceUnavailable) as caught:
        db.ping()
    assert caught.value.reason == "store_unavailable"


def test_stages_checks_and_store_round_trips_are_recorded_only_inside_a_trace() -> None:
    class Store:
        def put(self, value: int) -> int:
            if value < 0:
                raise ValueError(value)
            return value

    store = telemetry.timed(Store(), "store")
    assert store.put(1) == 1  # no trace: nothing recorded, nothing fails
    trace = telemetry.RequestTrace()
    with telemetry.tracing(trace):
        with telemetry.stage("sign"):
            pass
        with pytest.raises(ValueError), telemetry.stage("store"):
            store.put(-1)
        telemetry.passed("timestamp")  # not a detailed trace
    assert [(s.name, s.ok) for s in trace.steps] == [("sign", True), ("store", False)]
    assert [(name, failed) for name, _, failed in trace.stores] == [("store", True)]
    detailed = telemetry.RequestTrace(detailed=True)
    with telemetry.tracing(detailed):
        telemetry.passed("timestamp")
    assert [s.name for s in detailed.steps] == ["timestamp"]
    assert telemetry.current() is None


def test_certificates_within_30_days_or_expired_are_warned_about(tmp_path: Path) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    certs = [
        CertificateExpiry("tls", "tls.crt.pem", now + dt.timedelta(days=29, hours=1)),
        CertificateExpiry("relying_party", "rp.crt.pem", now - dt.timedelta(days=1)),
        CertificateExpiry("client", "ok.crt.pem", now + dt.timedelta(days=31)),
    ]
    assert expiry_warnings(certs, now) == [
        "tls certificate tls.crt.pem expires in 29 days, on 2030-01-30",
        "relying party certificate rp.crt.pem expired on 2029-12-31",
    ]


def test_the_inventory_lists_the_configured_certificates_by_kind(tmp_path: Path) -> None:
    instance = make_instance(tmp_path / "var")
    kinds = {(c.kind, c.name) for c in configured_certificates(load_settings(instance.config, env={}))}
    assert ("signing", "sts-signing.crt.pem") in kinds
    assert ("tls", "tls.crt.pem") in kinds
    assert any(kind == "relying_party" for kind, _ in kinds)


def test_the_start_up_log_warns_about_a_tls_certificate_within_30_days(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from sts.bootstrap import startup_warnings
    from sts.crypto.keystore import load_keystore

    instance = make_instance(tmp_path / "var")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soon")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10, hours=1))
        .sign(key, hashes.SHA256())
    )
    (instance.base / "keystore" / "tls.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    settings = load_settings(instance.config, env={})
    warnings = startup_warnings(settings, load_keystore(settings))
    assert warnings[-1:] == [f"tls certificate tls.crt.pem expires in 10 days, on {cert.not_valid_after_utc:%Y-%m-%d}"]


@pytest.mark.integration
def test_a_redis_cache_is_probed_and_a_stopped_one_is_not_ready(tmp_path: Path, redis_server: RedisServer) -> None:
    instance = make_instance(tmp_path / "var")
    env = {"STS_CACHE_BACKEND": "redis", "STS_CACHE_URL": redis_server.url, "STS_CACHE_SOCKET_TIMEOUT_MS": "300",
           "STS_CACHE_CONNECT_TIMEOUT_MS": "300"}
    stores = build_stores(load_settings(instance.config, env=env), SystemClock())
    try:
        assert [name for name, _ in stores.probes] == ["store", "cache"]
        assert Readiness(stores.probes, 2.0).report().checks == {"store": "ok", "cache": "ok"}
        redis_server.stop()
        assert Readiness(stores.probes, 2.0).report().checks == {"store": "ok", "cache": "down"}
    finally:
        stores.close()
