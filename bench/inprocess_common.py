"""What bench/'s in-process measurements share: their command line, the application's environment, and the RSA
reference timed in the same process."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class CallTimer:
    """CPU seconds spent inside one wrapped callable, counted while ``on`` (not re-entrant: the callables timed
    are not recursive)."""

    def __init__(self, on: bool = True) -> None:
        self.seconds = 0.0
        self.on = on

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, timed."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return function(*args, **kwargs)
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started

        return timed


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options bench/run.py passes to every in-process measurement of the headline request."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--headers", required=True, help="JSON object of HTTP headers of the headline template")
    parser.add_argument("--users", required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--log", type=Path, required=True, help="where the app's log lines go")
    return parser


def app_environment(log: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its STS_ settings, and those the measurements serve with: plain HTTP,
    PasswordText allowed, no access log, the log in ``log``; then ``settings`` (STS_ names)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STS_")} | {
        "STS_SERVER_TLS_CERT": "", "STS_SERVER_TLS_KEY": "", "STS_SERVER_ALLOW_INSECURE_TRANSPORT": "true",
        "STS_LOGGING_ACCESS_LOG": "false", "STS_LOGGING_FILE": str(log),
    } | settings


def rsa_reference_ms(settings: Any, count: int) -> float:
    """CPU ms of one RSA PKCS#1 v1.5 SHA-256 signature with the STS's signing key (the reference request's work)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from sts.crypto.keystore import load_keystore

    key = load_keystore(settings).signing_key
    data = os.urandom(64)
    started = time.process_time()
    for _ in range(count):
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
    return (time.process_time() - started) * 1000 / count
