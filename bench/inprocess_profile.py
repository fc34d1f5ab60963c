"""In-process profile of the headline request: the STS's WSGI app built with ``create_app`` and called directly.

Run by bench/run.py as a subprocess (so logging set-up and patches stay out of the orchestrator)::

    python bench/inprocess_profile.py --config DIR/sts.toml --template T --users a,b --prefix OUT [--requests N]

Two passes over the same prepared requests (fresh Nonce and Created each, bodies made before timing):

1. cProfile: writes ``OUT-profile.txt`` (top 20 by cumulative and by own time) and ``OUT-profile.prof``;
2. phase timers: the pipeline's stage functions are wrapped with timers of the thread's CPU time that subtract
   nested stages, so each stage's share is exclusive; the signxml ``sign`` call and the xmlsec ``encrypt_xml`` call
   are stages of their own, so what the product adds around the two libraries is known; prints them as JSON.

Between requests a second SQLite connection commits one row, as the other gunicorn worker does under load:
that is what the workers' ``PRAGMA data_version`` checks see in production, so the in-process run pays the
same cache refreshes. HTTP and gunicorn are not in-process: bench/run.py takes them from the /static reference.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import setup_instance  # noqa: E402

SIGN_CALL = "signing (the signxml sign call: c14n, SHA-256, RSA)"
ENCRYPT_CALL = "encryption (the xmlsec encrypt_xml call: AES content encryption)"
STAGES: list[tuple[str, str, str]] = [
    # (module or class path, attribute, stage name); nested stages are subtracted from their callers.
    ("sts.soap.transport:Transport", "__call__", "front door (sts.soap.transport: routing, media type, body)"),
    ("sts.soap.spyne_app:SpyneAdapter", "__call__", "Spyne (WSGI application, protocol, dispatch)"),
    ("sts.soap.endpoint:SoapEndpoint", "handle", "SOAP envelope checks, addressing, service dispatch"),
    ("sts.soap.endpoint", "parse_untrusted", "request XML parse (hardened lxml)"),
    ("sts.auth.validators:UsernameTokenAuthenticator", "authenticate",
     "WS-Security (header, Timestamp, UsernameToken, lockout, credential cache)"),
    ("sts.stores.sqlite_stores:SqliteReplayCache", "check_and_add", "replay store write (SQLite)"),
    ("sts.auth.passwords:PasswordHasher", "verify", "password verify (argon2id)"),
    # The outcome record, built and written (a successful login is folded into it, not written on its own).
    ("sts.auth.validators", "login", "audit logging (JSON lines)"),
    ("sts.operations.issue", "audit", "audit logging (JSON lines)"),
    ("sts.operations.events", "emit", "audit logging (JSON lines)"),
    ("sts.soap.endpoint", "emit", "audit logging (JSON lines)"),
    ("sts.operations.issue:IssueOperation", "__call__", "issue plan (RST parse, RP match, claims)"),
    ("sts.relying_parties.directory:RelyingPartyDirectory", "_refresh",
     "RP directory refresh check (version counter, reload)"),
    ("sts.relying_parties.directory:RelyingPartyDirectory", "encrypter",
     "RP encrypter lookup (key and templates, rebuilt after a refresh)"),
    ("sts.tokens.provider", "build_saml2", "assertion build"),
    ("sts.tokens.provider", "build_saml11", "assertion build"),
    ("signxml.signer:XMLSigner", "sign", SIGN_CALL),
    ("sts.crypto.encrypter:TokenEncrypter", "encrypt",
     "encryption around encrypt_xml (content key, RSA-OAEP key transport, key info)"),
    ("sts.crypto.encrypter", "_encrypt_xml", ENCRYPT_CALL),
    ("sts.operations.records:TokenLedger", "record", "token store (SQLite insert)"),
    ("sts.operations.minting", "token_digest", "token store (digest)"),
    ("sts.operations.issue", "issue_answer", "RSTR build"),
    ("sts.soap.endpoint:SoapEndpoint", "_reply", "response envelope + serialization"),
]
# The buckets (README of bench/): which stages make up each.
BUCKETS: dict[str, list[str]] = {
    "Spyne": ["Spyne (WSGI application, protocol, dispatch)"],
    "WS-Security": ["WS-Security (header, Timestamp, UsernameToken, lockout, credential cache)",
                    "replay store write (SQLite)", "password verify (argon2id)"],
    "assertion build": ["assertion build"],
    "signing (the signxml sign call)": [SIGN_CALL],
    "encryption (the xmlsec encrypt_xml call)": [ENCRYPT_CALL],
    "encryption around encrypt_xml": ["encryption around encrypt_xml (content key, RSA-OAEP key transport, key info)"],
    "serialization": ["RSTR build", "response envelope + serialization"],
    "request parse + SOAP checks": ["request XML parse (hardened lxml)",
                                    "SOAP envelope checks, addressing, service dispatch",
                                    "front door (sts.soap.transport: routing, media type, body)"],
    "issue plan (RST, RP match, claims, minting glue)": ["issue plan (RST parse, RP match, claims)"],
    "RP directory (refresh check + encrypter rebuild)": ["RP directory refresh check (version counter, reload)",
                                                         "RP encrypter lookup (key and templates, rebuilt "
                                                         "after a refresh)"],
    "token store": ["token store (SQLite insert)", "token store (digest)"],
    "audit logging": ["audit logging (JSON lines)"],
}
ROOT = "WSGI call + response iteration (harness)"
# Stages the headline request does not reach: the credential cache is warm.
NOT_ON_HEADLINE = {"password verify (argon2id)"}


class StageTimer:
    """Exclusive CPU time per stage (this thread's, so other processes on a busy machine do not count):
    a stack of child-time accumulators."""

    def __init__(self) -> None:
        self.exclusive: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[float] = []
        # Off until pass 2: the wrappers are installed before the first request, because the app keeps some
        # bound methods it looked up then (the stores' timing proxy, sts.telemetry.timed), which a wrapper
        # installed later would never see.
        self.on = [False]

    def wrap(self, function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        stack, exclusive, calls, on = self._stack, self.exclusive, self.calls, self.on
        clock = time.thread_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not on[0]:
                return function(*args, **kwargs)
            started = clock()
            stack.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = clock() - started
                exclusive[stage] += elapsed - stack.pop()
                calls[stage] += 1
                if stack:
                    stack[-1] += elapsed

        timed.__wrapped__ = function  # type: ignore[attr-defined]
        return timed


def _resolve(target: str) -> Any:
    import importlib

    module_name, _, class_name = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    return getattr(obj, class_name) if class_name else obj


def install_timers(timer: StageTimer, missing: list[str]) -> list[tuple[Any, str, Any]]:
    """Wrap every stage function that exists; a renamed one is reported in ``missing`` (its time then counts
    towards the stage that calls it)."""
    saved = []
    for target, attribute, stage in STAGES:
        try:
            owner = _resolve(target)
            original = getattr(owner, attribute)
        except (ImportError, AttributeError):
            missing.append(f"{target}.{attribute}")
            continue
        saved.append((owner, attribute, original))
        setattr(owner, attribute, timer.wrap(original, stage))
    return saved


def never_called(timer: StageTimer) -> list[str]:
    """Stages the timed pass never entered (apart from those the headline has no use for): the pipeline no longer
    calls the function where the timer wraps it (a moved call, a caller holding its own reference), so the stage
    would read 0 and its time count in the calling stage."""
    return [f"{stage} (never called)" for stage in dict.fromkeys(s for _, _, s in STAGES)
            if stage not in NOT_ON_HEADLINE and not timer.calls.get(stage)]


def bucket_totals(stages: dict[str, float]) -> dict[str, float]:
    """ms per request of each bucket whose stages the timed pass saw; a bucket none of whose stages ran is left
    out, not reported as 0 (analysis.library_split then gives no split rather than a wrong one)."""
    return {bucket: round(sum(stages.get(name, 0.0) for name in names), 4)
            for bucket, names in BUCKETS.items() if any(name in stages for name in names)}


def remove_timers(saved: list[tuple[Any, str, Any]]) -> None:
    for owner, attribute, original in reversed(saved):
        setattr(owner, attribute, original)


def environ_for(body: bytes, headers: dict[str, str], path: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9443", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--headers", required=True, help="JSON object of HTTP headers")
    parser.add_argument("--users", required=True)
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--log", type=Path, required=True, help="where the app's log lines go")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")} | {
        "STS_SERVER_TLS_CERT": "", "STS_SERVER_TLS_KEY": "", "STS_SERVER_ALLOW_INSECURE_TRANSPORT": "true",
        "STS_LOGGING_ACCESS_LOG": "false", "STS_LOGGING_FILE": str(args.log),
    }
    from sts.bootstrap import boot
    from sts.config import load_settings

    settings = load_settings(args.config, env=env)
    app = boot(settings=settings)
    headers = json.loads(args.headers)
    template = setup_instance.RequestTemplate(args.template.read_bytes(), headers)
    users = args.users.split(",")
    path = "/services/wso2carbon-sts"
    other = sqlite3.connect(settings.store.database, isolation_level=None, timeout=5)
    counter = [0]

    def other_worker_commit() -> None:
        counter[0] += 1
        other.execute("INSERT INTO replay(ns, key, expires) VALUES ('bench-other-worker', ?, 0)",
                      (f"{os.getpid()}-{time.time_ns()}-{counter[0]}",))

    def prepared(count: int) -> list[dict[str, Any]]:
        return [environ_for(setup_instance.fill(template, users[i % len(users)]), headers, path)
                for i in range(count)]

    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
        status.append(line)

    def call(environ: dict[str, Any]) -> bytes:
        return b"".join(app(environ, start_response))

    timer = StageTimer()
    missing: list[str] = []
    saved = install_timers(timer, missing)
    root = timer.wrap(call, ROOT)
    for environ in prepared(args.warmup):
        other_worker_commit()
        call(environ)

    # Pass 1: cProfile.
    profile = cProfile.Profile()
    for environ in prepared(args.requests):
        other_worker_commit()
        profile.enable()
        call(environ)
        profile.disable()
    profile.dump_stats(str(args.prefix) + "-profile.prof")
    text = io.StringIO()
    text.write(f"In-process cProfile of the headline request ({args.requests} requests after {args.warmup} warm-up;\n"
               "a second SQLite connection commits between requests, as the other worker does under load).\n\n")
    for key, title in (("cumulative", "Top 20 by cumulative time"), ("tottime", "Top 20 by own time (tottime)")):
        text.write(f"== {title} ==\n")
        stats = pstats.Stats(profile, stream=text)
        stats.strip_dirs().sort_stats(key).print_stats(20)
    Path(str(args.prefix) + "-profile.txt").write_text(text.getvalue())
    stats = pstats.Stats(profile)
    top_tottime = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:20]  # type: ignore[attr-defined]
    top_cumulative = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)[:20]  # type: ignore[attr-defined]

    def describe(item: Any) -> dict[str, Any]:
        (filename, line, function), (cc, nc, tt, ct, _callers) = item
        short = filename.split("site-packages/")[-1].replace(str(Path(__file__).resolve().parents[1]) + "/", "")
        if "/lib/python3" in short:  # the standard library
            short = "stdlib/" + short.split("/lib/python3", 1)[1].split("/", 1)[1]
        name = function if filename == "~" else f"{short}:{line}({function})"
        return {"function": name, "calls": nc,
                "tottime_ms_per_request": round(1000 * tt / args.requests, 4),
                "cumtime_ms_per_request": round(1000 * ct / args.requests, 4)}

    # Pass 2: exclusive stage timers (no profiler), and plain CPU per request.
    timer.on[0] = True
    bodies = prepared(args.requests)
    cpu = wall = 0.0
    for environ in bodies:
        other_worker_commit()
        cpu_started, started = time.process_time(), time.perf_counter()
        root(environ)
        wall += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    remove_timers(saved)
    bad = [line for line in status if not line.startswith("200")]
    stages = {name: round(1000 * seconds / args.requests, 4) for name, seconds in
              sorted(timer.exclusive.items(), key=lambda item: -item[1])}
    buckets = bucket_totals(stages)
    missing += never_called(timer)
    json.dump({
        "requests": args.requests,
        "non_200": len(bad),
        "missing_stages": missing,
        "wall_ms_per_request": round(1000 * wall / args.requests, 4),
        "cpu_ms_per_request": round(1000 * cpu / args.requests, 4),
        "stages_ms_per_request": stages,
        "stage_calls_per_request": {name: round(timer.calls[name] / args.requests, 2) for name in stages},
        "buckets_ms_per_request": buckets,
        "top_cumulative": [describe(item) for item in top_cumulative],
        "top_tottime": [describe(item) for item in top_tottime],
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
