"""Reference endpoints for the benchmark, served by the STS's own gunicorn settings (``-c sts/gunicorn_conf.py``).

* ``/static``   reads the request body and returns a fixed 3 KB XML document: the cost of HTTP + gunicorn + WSGI.
* ``/rsa``      also signs a 3 KB document with RSA PKCS#1 v1.5 / SHA-256 using the key in ``$BENCH_RSA_KEY``
  (the STS's own signing key, so the same size), loaded once per worker.
* ``/password`` also verifies one argon2id hash made with ``sts.auth.passwords.PasswordHasher`` (the STS's
  configured parameters; hashed once per worker, verified per request).

Every response is about 3 KB. Nothing else happens per request, so the CPU per request of these endpoints is
the yardstick the STS is measured against.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sts.auth.passwords import PasswordHasher

_ITEM = '<ref:item n="{n:02d}">reference payload of a benchmark response</ref:item>'
_OPEN = "<?xml version='1.0' encoding='utf-8'?>\n<ref:response xmlns:ref=\"urn:sts-bench:reference\">"
_ITEMS = "".join(_ITEM.format(n=n) for n in range(30))
_CLOSE = "</ref:pad></ref:response>"
STATIC = _OPEN + _ITEMS + "<ref:pad>" + "x" * (3072 - len(_OPEN + _ITEMS + "<ref:pad>" + _CLOSE)) + _CLOSE
STATIC_BYTES = STATIC.encode("utf-8")
_PASSWORD = "correct horse battery staple benchmark"  # noqa: S105 - a fixture

_state: dict[str, Any] = {}


def _worker_state() -> dict[str, Any]:
    """Key and hash, made once per worker process (gunicorn forks after preloading this module)."""
    if _state.get("pid") != os.getpid():
        with open(os.environ["BENCH_RSA_KEY"], "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("BENCH_RSA_KEY must be an RSA private key")
        hasher = PasswordHasher()
        _state.update(pid=os.getpid(), key=key, hasher=hasher, hash=hasher.hash(_PASSWORD))
    return _state


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The three reference endpoints (and /healthz for start-up checks)."""
    path = environ.get("PATH_INFO", "")
    _read_body(environ)
    state = _worker_state()
    if path == "/static" or path == "/healthz":
        body = STATIC_BYTES
    elif path == "/rsa":
        signature = state["key"].sign(STATIC_BYTES, padding.PKCS1v15(), hashes.SHA256())
        body = STATIC_BYTES[:-len("</ref:response>")] + (
            b"<ref:signature>" + base64.b64encode(signature) + b"</ref:signature></ref:response>"
        )
    elif path == "/password":
        matches, _ = state["hasher"].verify(_PASSWORD, state["hash"])
        if not matches:
            raise RuntimeError("reference password did not verify")
        body = STATIC_BYTES
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
