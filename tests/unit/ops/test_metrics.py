"""``GET /metrics`` in-process: what a request adds to each family, bounded labels, access and exposition rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from sts import metrics as metrics_module
from sts.app import create_app
from sts.certificates import CertificateExpiry
from sts.clock import FrozenClock, format_instant
from sts.config import load_settings
from sts.metrics import Metrics
from sts.soap.transport import Transport
from sts.telemetry import RequestTrace, Step
from tests.support import WSU, Instance, make_instance, rst_envelope

DEMO_RP = "https://localhost:8443/demo-rp/"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("metrics") / "var")


@pytest.fixture
def frozen() -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)


def _app(instance: Instance, clock: FrozenClock, **env: str) -> Transport:
    return create_app(load_settings(instance.config, env=env), clock=clock)


def _issue_request(instance: Instance, at: datetime, password: str | None = None) -> bytes:
    envelope = etree.fromstring(rst_envelope("admin", password or instance.demo_password, created=format_instant(at)))
    timestamp = envelope.find(f".//{{{WSU}}}Timestamp")
    assert timestamp is not None
    timestamp[0].text, timestamp[1].text = format_instant(at), format_instant(at + timedelta(minutes=5))
    return bytes(etree.tostring(envelope))


def _call(app: Transport, method: str, path: str, body: bytes = b"", remote: str = "127.0.0.1") -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": BytesIO(body),
        "wsgi.url_scheme": "https",
        "REMOTE_ADDR": remote,
    }
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(line)

    body = b"".join(app(environ, start_response))
    return status[0], body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, **labels: str) -> float:
    return found.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_an_issued_token_and_a_refused_password_are_counted_by_operation_rp_fault_and_reason(
    instance: Instance, frozen: datetime
) -> None:
    app = _app(instance, FrozenClock(frozen))
    assert _call(app, "POST", "/services/wso2carbon-sts", _issue_request(instance, frozen))[0] == "200 OK"
    refused = _call(app, "POST", "/services/wso2carbon-sts", _issue_request(instance, frozen, "wrong password"))
    assert refused[0] == "500 Internal Server Error"
    status, body = _call(app, "GET", "/metrics")
    assert status == "200 OK"
    found = samples(body.decode())
    assert value(found, "sts_requests_total", operation="issue", outcome="success") == 1
    assert value(found, "sts_requests_total", operation="issue", outcome="failure") == 1
    issued = value(found, "sts_tokens_issued_total", operation="issue", token_type="saml20", relying_party=DEMO_RP)
    assert issued == 1
    failed = value(found, "sts_request_failures_total", operation="issue", fault="FailedAuthentication",
                   reason="wrong_password")
    assert failed == 1
    for stage in ("parse", "authentication", "build", "sign", "encrypt", "store"):
        expected = 2 if stage in ("parse", "authentication") else 1
        assert value(found, "sts_stage_duration_seconds_count", stage=stage) == expected, stage
    assert value(found, "sts_request_duration_seconds_count", operation="issue") == 2
    assert value(found, "sts_store_duration_seconds_count", store="store") >= 3  # lockout, user, replay, token
    assert value(found, "sts_certificate_expiry_days", kind="signing", name="sts-signing.crt.pem") > 30
    assert "admin" not in body.decode()  # never a user name


def _together(count: int, call: Callable[[], tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], list[BaseException]]:
    """``call`` on ``count`` threads released at once; the answers, and what was raised instead of one."""
    start = threading.Barrier(count, timeout=30)
    answers: list[tuple[str, bytes]] = []
    failures: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            answers.append(call())
        except BaseException as exc:  # reported to the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers, failures


def test_the_first_scrapes_of_a_worker_arriving_together_are_all_answered(instance: Instance, frozen: datetime) -> None:
    """A worker builds its exposition registry on its first scrape; two scrapes arriving together on request
    threads (an HA pair of Prometheus servers, ``[server] threads`` > 1) both built it, and without prometheus_client's
    multiprocess directory (``gunicorn sts.wsgi:application`` run directly) the second registration of the
    certificate collector raised DuplicateTimeseries: that scrape failed. Eight scrapes of a fresh application at
    once, ten times: every one answered with the certificate gauge."""
    for _ in range(10):
        app = _app(instance, FrozenClock(frozen))
        try:
            answers, failures = _together(8, lambda: _call(app, "GET", "/metrics"))  # noqa: B023 - run here
        finally:
            app.close()
        assert failures == []
        assert len(answers) == 8
        for status, body in answers:
            assert status == "200 OK"
            found = samples(body.decode())
            assert value(found, "sts_certificate_expiry_days", kind="signing", name="sts-signing.crt.pem") > 30


def test_metrics_are_refused_to_clients_outside_the_allowed_networks(instance: Instance, frozen: datetime) -> None:
    app = _app(instance, FrozenClock(frozen))
    assert _call(app, "GET", "/metrics", remote="10.1.2.3")[0] == "403 Forbidden"
    listed = _app(instance, FrozenClock(frozen), STS_METRICS_ALLOW="10.1.2.0/24", STS_METRICS_PATH="/ops/metrics")
    assert _call(listed, "GET", "/ops/metrics", remote="10.1.2.3")[0] == "200 OK"
    assert _call(listed, "GET", "/metrics", remote="10.1.2.3")[0] == "404 Not Found"
    assert _call(listed, "POST", "/ops/metrics", remote="10.1.2.3")[0] == "405 Method Not Allowed"


def test_metrics_off_or_on_a_listener_of_their_own_are_not_on_the_main_port(
    instance: Instance, frozen: datetime
) -> None:
    off = _app(instance, FrozenClock(frozen), STS_METRICS_ENABLED="false")
    assert _call(off, "GET", "/metrics")[0] == "404 Not Found"
    assert off.ops.serve_metrics is None
    separate = _app(instance, FrozenClock(frozen), STS_METRICS_BIND="127.0.0.1:9100")
    assert _call(separate, "GET", "/metrics")[0] == "404 Not Found"
    assert separate.ops.serve_metrics is not None


def test_labels_outside_the_code_vocabulary_and_relying_parties_past_the_cap_are_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "MAX_RELYING_PARTIES", 2)
    metrics = Metrics()
    for rp in ("https://a/", "https://b/", "https://c/", "https://a/"):
        metrics.finished(RequestTrace(operation="issue", outcome="success", token_type="saml20", relying_party=rp))
    odd = RequestTrace(operation="issue", fault="FailedAuthentication", reason="user name with spaces")
    odd.outcome = "failure"
    metrics.finished(odd)
    found = samples(metrics.render()[0].decode())
    for rp, count in (("https://a/", 2), ("https://b/", 1), ("other", 1)):
        labels = {"operation": "issue", "token_type": "saml20", "relying_party": rp}
        assert value(found, "sts_tokens_issued_total", **labels) == count
    assert value(found, "sts_request_failures_total", operation="issue", fault="FailedAuthentication",
                 reason="other") == 1


def test_only_the_pipeline_stages_become_stage_samples_and_events_are_counted() -> None:
    metrics = Metrics()
    trace = RequestTrace(operation="issue", outcome="failure", fault="FailedAuthentication", reason="account_locked")
    trace.steps += [Step("parse", True, 0.0003), Step("timestamp", True), Step("authentication", False, 0.002)]
    trace.stores.append(("directory", 0.003, True))
    trace.events.append("account_locked")
    metrics.finished(trace)
    found = samples(metrics.render()[0].decode())
    assert value(found, "sts_stage_duration_seconds_count", stage="authentication") == 1
    # Batched writes land in the buckets observe() would have used (le is cumulative in the exposition).
    assert value(found, "sts_stage_duration_seconds_bucket", stage="parse", le="0.00025") == 0
    assert value(found, "sts_stage_duration_seconds_bucket", stage="parse", le="0.0005") == 1
    assert value(found, "sts_stage_duration_seconds_sum", stage="parse") == pytest.approx(0.0003)
    assert value(found, "sts_stage_duration_seconds_bucket", stage="authentication", le="0.0025") == 1
    assert value(found, "sts_stage_duration_seconds_bucket", stage="authentication", le="0.001") == 0
    assert value(found, "sts_stage_duration_seconds_count", stage="timestamp") == 0
    assert value(found, "sts_store_errors_total", store="directory") == 1
    assert value(found, "sts_security_events_total", event="account_locked") == 1


def test_connections_the_front_end_refused_are_counted_by_reason_through_the_application(
    instance: Instance, frozen: datetime
) -> None:
    app = _app(instance, FrozenClock(frozen))
    for reason in ("content_too_large", "read_timeout", "content_too_large", "a reason nobody wrote"):
        app.connection_refused(reason)
    found = samples(_call(app, "GET", "/metrics")[1].decode())
    assert value(found, "sts_connections_refused_total", reason="content_too_large") == 2
    assert value(found, "sts_connections_refused_total", reason="read_timeout") == 1
    assert value(found, "sts_connections_refused_total", reason="other") == 1
    off = _app(instance, FrozenClock(frozen), STS_METRICS_ENABLED="false")
    off.connection_refused("evicted")  # metrics off: nothing to count, and no error
    assert off.ops.connection_refused is None


def test_certificate_expiry_days_are_computed_at_each_scrape() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    clock = [now]
    cert = CertificateExpiry("tls", "tls.crt.pem", now + dt.timedelta(days=10))
    metrics = Metrics(lambda: [cert], now=lambda: clock[0])
    assert value(samples(metrics.render()[0].decode()), "sts_certificate_expiry_days", kind="tls",
                 name="tls.crt.pem") == 10
    clock[0] = now + dt.timedelta(days=11)
    assert value(samples(metrics.render()[0].decode()), "sts_certificate_expiry_days", kind="tls",
                 name="tls.crt.pem") == -1


def test_samples_added_while_a_fresh_process_is_scraped_are_all_written() -> None:
    """A worker's first samples replace the batch's lock and dictionaries (those a fork copied are the parent's);
    a scrape's flush on another thread meanwhile must neither take the old lock to swap out the new dictionaries
    nor write the parent's pending samples. Seven requests' samples added while a thread flushes without pause,
    on fresh batches: every sample written once."""
    for _ in range(20):
        written: list[float] = []
        batch = metrics_module._Batch({}, lambda counts, _observed, into=written: into.extend(counts.values()))
        stop = threading.Event()

        def flush_until_stopped(target: metrics_module._Batch = batch, done: threading.Event = stop) -> None:
            while not done.is_set():
                target.flush()

        flusher = threading.Thread(target=flush_until_stopped)
        flusher.start()
        try:
            answers, failures = _together(
                7, lambda target=batch: (target.add([("requests", ("issue", "success"))], []), ("", b""))[1]
            )
        finally:
            stop.set()
            flusher.join(timeout=30)
        batch.flush()
        batch._wake.set()  # its flushing thread ends
        assert failures == [] and len(answers) == 7
        assert sum(written) == 7


def test_a_trace_is_plain_data() -> None:
    assert dataclasses.is_dataclass(RequestTrace)
