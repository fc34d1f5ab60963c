"""Scenario 2 (``SigOnly``) in-process: CPU per token against the RSA reference, and the inbound verification's share.

Run by bench/run.py as a subprocess::

    python bench/signed_inprocess.py --config DIR/sts.toml --template T --headers JSON --users a,b --requests N

Why in-process and not under wrk: every SigOnly request must be signed by the client, over a fresh Timestamp,
and the STS refuses a signature value it has seen (replay cache, WS-Security 1.1 §8 / WSS4J's
``testMessageReplay``). wrk's Lua cannot compute an RSA signature, and a rotated pool of pre-signed requests would be
refused as replays after its first pass: a wrk run would need as many pre-signed bodies as it sends requests,
an unbounded set whose Timestamps also age while it runs. Here the N signed requests are made (by the STS's own
client library, RSA-SHA256 with a registered 2048-bit client key) before the clock starts, each is sent once,
and CPU time (``time.process_time``) is summed over the application calls only. The same run measures, with
the same clock and in alternation, the UsernameToken headline request (warm credential cache, as the headline
runs under wrk) and the RSA reference (one RSA PKCS#1 v1.5 SHA-256 signature with the STS key), so every ratio is
within one process. HTTP and gunicorn are the same for both requests and are left out.

Reported (JSON on stdout): ms of CPU per token for SigOnly and for the headline, the verification's own
ms (the signed-request authenticator: header checks, ID index, certificate trust, python-xmlsec verify, replay
write), and the ratios to the RSA reference. The issue's target: the verification adds at most 1.0 RSA reference
beyond the headline's authentication (UsernameToken, warm credential cache). The whole request costs more besides:
the STS signs the SigOnly answer (one RSA signature, WS-SecurityPolicy's asymmetric binding), which is reported in
``sigonly_beyond_headline_in_rsa_refs``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import setup_instance  # noqa: E402
from inprocess_common import CallTimer, app_environment, argument_parser, rsa_reference_ms  # noqa: E402
from inprocess_profile import environ_for  # noqa: E402

SIG_ONLY_PATH = "/services/wso2carbon-sts/SigOnly"
HEADLINE_PATH = "/services/wso2carbon-sts"


def _client(settings: Any, user: str, work: Path) -> Any:
    """A 2048-bit client key and certificate registered to ``user`` (``sts user add-cert``'s store call)."""
    from cryptography.hazmat.primitives import serialization

    from sts.auth.passwords import PasswordHasher
    from sts.auth.sqlite_users import SqliteUserStore
    from sts.client.options import SigningCredential
    from sts.crypto import keygen
    from sts.stores.sqlite import Database

    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(key, f"bench client {user}")
    with Database(settings.store.database) as db:
        SqliteUserStore(db, PasswordHasher()).add_certificate(
            "PRIMARY", user, cert.public_bytes(serialization.Encoding.DER)
        )
    del work
    return SigningCredential(cert, key)


def _signed_bodies(count: int, signing: Any) -> list[tuple[bytes, dict[str, str]]]:
    from sts.client.options import Connection, IssueOptions
    from sts.client.rst import build_issue_request
    from sts.wstrust.tokentypes import SamlVersion

    connection = Connection(f"http://127.0.0.1:9443{SIG_ONLY_PATH}", "", signing=signing)
    options = IssueOptions(connection, applies_to=setup_instance.RP_HEADLINE, token_type=SamlVersion.SAML20)
    out = []
    for _ in range(count):
        built = build_issue_request(options, "")
        out.append((built.body, built.headers))
    return out


def main() -> int:
    args = argument_parser(__doc__).parse_args()

    env = app_environment(args.log, STS_SECURITY_SCENARIOS="UTOverTransport,SigOnly")
    from sts.auth.signed_requests import SignedRequestAuthenticator
    from sts.auth.validators import UsernameTokenAuthenticator
    from sts.bootstrap import boot
    from sts.config import load_settings

    settings = load_settings(args.config, env=env)
    users = args.users.split(",")
    signing = _client(settings, users[0], args.log.parent)
    verification, password_auth = CallTimer(), CallTimer()
    original_signed = SignedRequestAuthenticator.authenticate
    original_ut = UsernameTokenAuthenticator.authenticate
    SignedRequestAuthenticator.authenticate = verification.wrap(original_signed)  # type: ignore[method-assign]
    UsernameTokenAuthenticator.authenticate = password_auth.wrap(original_ut)  # type: ignore[method-assign]
    app = boot(settings=settings)
    template = setup_instance.RequestTemplate(args.template.read_bytes(), json.loads(args.headers))
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
        status.append(line)

    def call(environ: dict[str, Any], marker: bytes) -> float:
        started = time.process_time()
        body = b"".join(app(environ, start_response))
        spent = time.process_time() - started
        if not status[-1].startswith("200") or marker not in body:
            raise RuntimeError(f"unexpected answer {status[-1]}: {body[:400]!r}")
        return spent

    total = args.warmup + args.requests
    signed = [environ_for(body, headers, SIG_ONLY_PATH) for body, headers in _signed_bodies(total, signing)]
    headline = [environ_for(setup_instance.fill(template, users[i % len(users)]), template.headers, HEADLINE_PATH)
                for i in range(total)]
    for i in range(args.warmup):
        call(signed[i], b"EncryptedAssertion")
        call(headline[i], b"EncryptedAssertion")
    verification.seconds = password_auth.seconds = 0.0
    sig_cpu = ut_cpu = 0.0
    for i in range(args.warmup, total):  # alternating, so drift hits both alike
        sig_cpu += call(signed[i], b"EncryptedAssertion")
        ut_cpu += call(headline[i], b"EncryptedAssertion")
    n = args.requests
    rsa_ms = rsa_reference_ms(settings, max(200, n))
    sig_ms, ut_ms = sig_cpu * 1000 / n, ut_cpu * 1000 / n
    verify_ms, ut_auth_ms = verification.seconds * 1000 / n, password_auth.seconds * 1000 / n
    result = {
        "requests": n,
        "rsa_reference_cpu_ms": rsa_ms,
        "sigonly_cpu_ms_per_token": sig_ms,
        "headline_cpu_ms_per_token": ut_ms,
        "sigonly_verification_cpu_ms": verify_ms,
        "headline_authentication_cpu_ms": ut_auth_ms,
        "sigonly_in_rsa_refs": sig_ms / rsa_ms,
        "headline_in_rsa_refs": ut_ms / rsa_ms,
        "sigonly_beyond_headline_in_rsa_refs": (sig_ms - ut_ms) / rsa_ms,
        "verification_in_rsa_refs": verify_ms / rsa_ms,
        "verification_beyond_headline_authentication_in_rsa_refs": (verify_ms - ut_auth_ms) / rsa_ms,
        "target_in_rsa_refs": 1.0,
        "target_met": (verify_ms - ut_auth_ms) / rsa_ms <= 1.0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
