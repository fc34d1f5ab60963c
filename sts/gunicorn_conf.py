"""gunicorn settings for the STS, shipped inside the package (``sts serve`` passes this file with ``-c``).

Values come from ``sts.toml`` (``$STS_CONFIG``, with its ``STS_<TABLE>_<KEY>`` overrides); gunicorn's own
``GUNICORN_CMD_ARGS`` still overrides anything here. Production defaults: one worker process per core, each
reading requests in its event loop and serving complete ones on a few threads (:mod:`sts.gunicorn_worker`: idle
and slow clients never hold a thread), ``preload_app`` so bad configuration or keys abort in the master before
any worker forks, TLS from the config, an access log without bodies on stderr (:mod:`sts.gunicorn_logging`),
no control socket (gunicorn 27 would otherwise share ~/.gunicorn/gunicorn.ctl between instances).
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import sys
import tempfile
from pathlib import Path

from sts.gunicorn_logging import TEXT_FORMAT, StsLogger, access_logger_class
from sts.gunicorn_reload import rebuild_application, settings_for_gunicorn
from sts.gunicorn_worker import worker_class as _worker_class
from sts.logging import create_log_file

# At start an invalid file stops here; on a reload (SIGHUP) the settings in force are kept instead.
_settings = settings_for_gunicorn()

_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is first imported: set it before
_METRICS_OWNED = "_STS_METRICS_DIR_CREATED"  # the directory this master created (not an STS_* setting name)
_METRICS_READY = "_STS_METRICS_DIR_READY"  # the directory this master created or emptied at start


def _metrics_directory() -> tuple[Path, bool]:
    """The directory where every process writes its metric samples (prometheus_client's multiprocess mode).

    One per instance, emptied at start so a restarted server does not add up the samples of dead processes:
    ``$PROMETHEUS_MULTIPROC_DIR`` when the operator names one (kept at exit), else a private temporary directory
    (under ``$RUNTIME_DIRECTORY`` when systemd provides one), removed at exit. Whether we created it is returned.
    gunicorn executes this file again on every reload (SIGHUP): the directory this master already prepared is
    then kept as it is, since emptying it would drop the counts of every worker so far and the files the live
    workers are writing (the counters would fall back to zero).
    """
    named = os.environ.get(_METRICS_ENV)
    if named and named == os.environ.get(_METRICS_READY):
        return Path(named), named == os.environ.get(_METRICS_OWNED)  # a reload: keep the samples
    if named:
        path = Path(named)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        os.environ[_METRICS_READY] = named
        return path, False
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None
    created = tempfile.mkdtemp(prefix="sts-metrics-", dir=runtime)
    os.environ[_METRICS_OWNED] = os.environ[_METRICS_READY] = created
    return Path(created), True


if _settings.metrics.enabled:
    _metrics_dir, _metrics_dir_ours = _metrics_directory()
    os.environ[_METRICS_ENV] = str(_metrics_dir)

wsgi_app = "sts.wsgi:application"
bind = [_settings.server.bind]
workers = _settings.server.workers or (os.cpu_count() or 1)
# The whole request (head up to 32 KiB, body up to the application's cap) is read by the worker's event loop
# within read_timeout before a thread sees it; the body cap itself is enforced by the application.
worker_class = _worker_class(_settings.server.read_timeout, _settings.limits.max_body_bytes)
threads = _settings.server.threads
worker_connections = _settings.server.worker_connections
http_protocols = "h1"
preload_app = True
timeout = _settings.server.timeout
graceful_timeout = _settings.server.graceful_timeout
keepalive = _settings.server.keepalive
# gunicorn's request-line and header limits stay at their defaults (4094 / 100 / 8190, see gunicorn's settings docs);
# the body cap is enforced by the application, which gunicorn does not do (benoitc/gunicorn#1659).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Recycle workers now and then as a safety net against slow memory growth.
max_requests = 20000
max_requests_jitter = 2000
# gunicorn believes no forwarding header: the STS matches [server] trusted_proxies itself (sts.soap.transport), so
# wsgi.url_scheme is always the socket's own scheme and X-Forwarded-* count only from listed proxies.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""
proxy_allow_ips = ",".join(_settings.server.trusted_proxies)  # PROXY protocol, if enabled via GUNICORN_CMD_ARGS
if _settings.server.tls_cert and _settings.server.tls_key:
    certfile = str(_settings.server.tls_cert)
    keyfile = str(_settings.server.tls_key)
    if _settings.server.tls_client_ca_file is not None:
        # TLS client certificates (certificatetransport): asked of every client, verified by OpenSSL against this
        # bundle; optional unless required, so UsernameToken and signed endpoints on this listener keep working.
        # The application checks the certificate again (registered or client-CA issued, validity, usage, CRL).
        ca_certs = str(_settings.server.tls_client_ca_file)
        cert_reqs = ssl.CERT_REQUIRED if _settings.server.tls_client_cert_required else ssl.CERT_OPTIONAL
# gunicorn's own access handler ("-" would be stdout) stays off; the logger class writes it like the app log.
accesslog = None
access_log_format = TEXT_FORMAT
logger_class: type[StsLogger] = StsLogger  # a log file reopened (SIGUSR1) is created 0600 too
if _settings.logging.access_log:
    logger_class = access_logger_class(
        _settings.logging.access_log_format or _settings.logging.format, _settings.logging.file
    )
errorlog = str(_settings.logging.file) if _settings.logging.file else "-"  # "-": stderr
if _settings.logging.file:
    create_log_file(_settings.logging.file)  # before gunicorn opens it with the umask's mode
loglevel = _settings.logging.level.lower()
proc_name = "sts"
control_socket_disable = True
pidfile = os.environ.get("STS_PIDFILE") or (str(_settings.server.pid_file) if _settings.server.pid_file else None)


def on_reload(server: object) -> None:
    """SIGHUP (``sts reload``): build the application with the new configuration before the new workers start,
    or keep the running one if anything of it is invalid (:mod:`sts.gunicorn_reload`); an application installed
    takes over the master's metrics listener (its certificates, its ``[metrics] bind``)."""
    if rebuild_application(server):
        try:
            when_ready(server)
        except Exception as exc:  # noqa: BLE001 - raised into gunicorn's main loop, it would stop the whole server
            logging.getLogger("sts.reload").error(
                "[metrics] bind: the metrics listener could not be moved to %s, it stays where it was: %s",
                _settings.metrics.bind, exc,
            )


def pre_fork(server: object, worker: object) -> None:
    """Give the worker about to be forked the master's signal queue: the stop signals it receives while booting,
    before it has handlers of its own, land there (:meth:`sts.gunicorn_worker.BufferingThreadWorker.init_signals`)."""
    if hasattr(worker, "master_signals"):
        worker.master_signals = getattr(server, "SIG_QUEUE", None)


def post_fork(server: object, worker: object) -> None:
    """In the new worker: let go of the master's metrics listener socket (:func:`sts.metrics.forget_listener`)."""
    if "sts.metrics" in sys.modules:  # a listener can only exist once the module was imported
        sys.modules["sts.metrics"].forget_listener()


def worker_exit(server: object, worker: object) -> None:
    """Close the application's database connections as a worker exits (gunicorn runs this hook in the worker, and
    in the master for a worker found already gone, whose application the master never loaded: nothing to close)."""
    close = getattr(getattr(worker, "wsgi", None), "close", None)
    if callable(close):
        close()


def when_ready(server: object) -> None:
    """Start the metrics listener of ``[metrics] bind`` in the master, which adds up every worker's samples (on a
    reload: hand it to the new application, move it, or stop it when the new configuration has none)."""
    bind = _settings.metrics.bind if _settings.metrics.enabled else ""
    app = getattr(getattr(server, "app", None), "callable", None)
    serve = getattr(getattr(app, "ops", None), "serve_metrics", None)
    if bind and callable(serve):
        serve(bind)
    elif "sts.metrics" in sys.modules:  # a listener can only exist once the module was imported
        sys.modules["sts.metrics"].stop_listener()


def child_exit(server: object, worker: object) -> None:
    """In the master, as a worker is gone: its live samples no longer count (prometheus_client multiprocess)."""
    if _settings.metrics.enabled:
        from sts.metrics import process_dead

        process_dead(int(getattr(worker, "pid", 0)))


def on_exit(server: object) -> None:
    """Remove the metrics directory the master created (not one the operator named)."""
    if _settings.metrics.enabled and _metrics_dir_ours:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
