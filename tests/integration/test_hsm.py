"""Issue 18: the signing key in a PKCS#11 token (SoftHSM2, initialised here in a temporary directory), served by
gunicorn with 2 workers: tokens signed by the token verify with xmlsec1 and signxml; a token that goes away, or
stops answering, fails requests closed (soap:Server "Service unavailable") within ``pkcs11_timeout_ms``, and service
resumes when it is back, without a restart."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lxml import etree

from sts.crypto.keygen import generate_rsa_key, self_signed_certificate, write_certificate, write_private_key
from tests.support import S11, Instance, Server, fault_qname, fault_string, make_instance, rst_envelope, start_server
from tests.token_checks import decrypt_with_python_xmlsec, verify_with_signxml, verify_with_xmlsec1

pytestmark = pytest.mark.integration

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")  # Debian's softhsm2 (Makefile TEST_DEBS)
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
XENC = "http://www.w3.org/2001/04/xmlenc#"
PIN = "461273"
TOKEN_TIMEOUT_MS = 2000  # [issuer] pkcs11_timeout_ms of the server under test
WORKER_TIMEOUT = 30  # gunicorn's [server] timeout: a request held this long loses its worker


@dataclass
class Hsm:
    conf: Path
    tokens: Path
    cert: Path


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Hsm:
    base = tmp_path_factory.mktemp("softhsm")
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "sts", "--pin", PIN, "--so-pin", "99887766"],
                   env=env, check=True, capture_output=True)
    key = generate_rsa_key(2048)
    key_file = base / "import.key.pem"
    write_private_key(key_file, key)
    subprocess.run(["softhsm2-util", "--import", str(key_file), "--token", "sts", "--label", "sts-signing",
                    "--id", "01", "--pin", PIN], env=env, check=True, capture_output=True)
    key_file.unlink()  # from here on the private key exists only in the token
    cert = base / "hsm-signing.crt.pem"
    write_certificate(cert, self_signed_certificate(key, "STS signing (HSM)"))
    return Hsm(conf, tokens, cert)


@pytest.fixture(scope="module")
def hsm_instance(tmp_path_factory: pytest.TempPathFactory, hsm: Hsm) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("hsm") / "var")
    pin_file = instance.base / "pkcs11.pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    text = instance.config.read_text().replace(
        "[issuer]\n",
        f'[issuer]\npkcs11_module = "{SOFTHSM_MODULE}"\npkcs11_token_label = "sts"\n'
        f'pkcs11_key_label = "sts-signing"\npkcs11_pin_file = "{pin_file}"\n',
        1,
    )
    text = text.replace('signing_cert = "keystore/sts-signing.crt.pem"', f'signing_cert = "{hsm.cert}"')
    instance.config.write_text(text)
    (instance.base / "keystore" / "sts-signing.key.pem").unlink()  # no PEM key to fall back on
    return instance


@pytest.fixture(scope="module")
def hsm_server(hsm_instance: Instance, hsm: Hsm) -> Iterator[Server]:
    env = {"SOFTHSM2_CONF": str(hsm.conf), "STS_ISSUER_PKCS11_TIMEOUT_MS": str(TOKEN_TIMEOUT_MS)}
    server = start_server(hsm_instance, workers=2, env=env)
    yield server
    server.stop()


def _issue(server: Server, instance: Instance) -> bytes:
    response = server.post(rst_envelope("admin", instance.demo_password), action=f"{WST}/RST/Issue")
    assert response.status_code == 200, response.content[:1000]
    holder = etree.fromstring(response.content).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None
    encrypted = holder[0] if holder[0].tag == f"{{{XENC}}}EncryptedData" else holder[0][0]
    return decrypt_with_python_xmlsec(encrypted, instance.rp_key)


def test_tokens_signed_in_the_token_verify_with_xmlsec1_and_signxml(
    hsm_server: Server, hsm_instance: Instance, hsm: Hsm
) -> None:
    for _ in range(4):  # both workers, each with its own session
        assertion = _issue(hsm_server, hsm_instance)
        verify_with_xmlsec1(assertion, hsm.cert, saml11=False)
        verify_with_signxml(assertion, hsm.cert.read_bytes(), saml11=False)


def test_a_token_that_goes_away_fails_closed_and_service_resumes(
    hsm_server: Server, hsm_instance: Instance, hsm: Hsm
) -> None:
    _issue(hsm_server, hsm_instance)
    away = hsm.tokens.with_name("tokens-away")
    shutil.move(hsm.tokens, away)  # SoftHSM2's token store vanishes: what a removed or dead HSM looks like
    try:
        for _ in range(4):
            response = hsm_server.post(rst_envelope("admin", hsm_instance.demo_password), action=f"{WST}/RST/Issue")
            assert response.status_code == 500
            assert fault_qname(response.content) == (S11, "Server")
            assert fault_string(response.content) == "Service unavailable"
            assert b"Assertion" not in response.content
    finally:
        shutil.move(away, hsm.tokens)
    for _ in range(4):
        verify_with_xmlsec1(_issue(hsm_server, hsm_instance), hsm.cert, saml11=False)


@contextmanager
def token_not_answering(tokens: Path) -> Iterator[None]:
    """SoftHSM2 blocked as a black-holed network HSM blocks: this process holds exclusive POSIX locks on the token's
    lock files, which SoftHSM2 waits for (F_SETLKW) before it reads a token object; released on exit."""
    fds = [os.open(path, os.O_RDWR) for path in [*tokens.glob("*/*.lock"), *tokens.glob("*/generation")]]
    assert fds, f"no SoftHSM2 lock files under {tokens}"
    try:
        for fd in fds:
            fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in fds:
            os.close(fd)  # closing releases this process's locks on the file


def _issue_fault_while_hung(server: Server, instance: Instance) -> float:
    started = time.monotonic()
    response = server.post(rst_envelope("admin", instance.demo_password), action=f"{WST}/RST/Issue")
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert fault_qname(response.content) == (S11, "Server")
    assert fault_string(response.content) == "Service unavailable"
    assert b"Assertion" not in response.content
    return elapsed


def test_a_token_that_stops_answering_fails_closed_in_bounded_time_and_service_resumes(
    hsm_server: Server, hsm_instance: Instance, hsm: Hsm
) -> None:
    for _ in range(4):  # both workers hold a session
        _issue(hsm_server, hsm_instance)
    health = hsm_server.url.replace("/services/wso2carbon-sts", "/healthz")
    with token_not_answering(hsm.tokens):
        # A fault well before gunicorn's worker timeout, which would drop the connection instead (no fault at all).
        elapsed = [_issue_fault_while_hung(hsm_server, hsm_instance) for _ in range(6)]
        assert max(elapsed) < WORKER_TIMEOUT / 3, elapsed
        assert requests.get(health, verify=hsm_server.verify, timeout=5).status_code == 200
        status, checks = _ready(hsm_server)
        assert status == 503 and checks["hsm"] in ("down", "timeout"), checks
    deadline = time.monotonic() + 10  # the stuck calls return once the locks go; each worker opens the token again
    request = rst_envelope("admin", hsm_instance.demo_password)
    while hsm_server.post(request, action=f"{WST}/RST/Issue").status_code != 200:
        assert time.monotonic() < deadline, "service did not resume after the token answered again"
        time.sleep(0.2)
    for _ in range(4):
        verify_with_xmlsec1(_issue(hsm_server, hsm_instance), hsm.cert, saml11=False)


def _ready(server: Server) -> tuple[int, dict[str, str]]:
    response = requests.get(server.url.replace("/services/wso2carbon-sts", "/readyz"), verify=server.verify, timeout=10)
    return response.status_code, response.json()["checks"]


def _ready_within(server: Server, status: int, seconds: float) -> dict[str, str]:
    """The checks once /readyz answers ``status`` (each worker reuses a verdict for a second), within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (answer := _ready(server))[0] != status:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    return answer[1]


def test_readiness_probes_the_token(hsm_server: Server, hsm: Hsm) -> None:
    assert _ready_within(hsm_server, 200, 10)["hsm"] == "ok"
    away = hsm.tokens.with_name("tokens-away")
    shutil.move(hsm.tokens, away)  # Issue fails closed now: /readyz must not say ready
    try:
        checks = _ready_within(hsm_server, 503, 10)
        assert checks["hsm"] == "down"
        assert all(state == "ok" for name, state in checks.items() if name != "hsm"), checks
    finally:
        shutil.move(away, hsm.tokens)
    assert _ready_within(hsm_server, 200, 10)["hsm"] == "ok"


def _master_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _reloads_logged(server: Server, outcome: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while server.log.read_text().count(outcome) < count:
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.1)


def test_reloads_leave_no_token_thread_behind_in_the_master(hsm_instance: Instance, hsm: Hsm, tmp_path: Path) -> None:
    """The master loads the token's key on every reload (to check it, then for the new application): each key it
    no longer uses is closed, so its thread count stays what it was after start, accepted or refused reloads."""
    pid_file = tmp_path / "sts.pid"
    server = start_server(hsm_instance, workers=1, env={"SOFTHSM2_CONF": str(hsm.conf), "STS_PIDFILE": str(pid_file)})
    config = hsm_instance.config.read_text()
    try:
        master = int(pid_file.read_text())
        started_with = _master_threads(master)
        for count in (1, 2, 3):
            os.kill(master, signal.SIGHUP)
            _reloads_logged(server, "reloaded: new workers serve the new configuration", count)
        hsm_instance.config.write_text(config.replace('database = "', 'database = "missing/', 1))
        os.kill(master, signal.SIGHUP)  # the key loads, the database does not: refused after the key was loaded
        _reloads_logged(server, "reload refused", 1)
        deadline = time.monotonic() + 10  # a stopped thread ends once it reads its stop
        while (threads := _master_threads(master)) != started_with:
            assert time.monotonic() < deadline, (threads, started_with)
            time.sleep(0.2)
        verify_with_xmlsec1(_issue(server, hsm_instance), hsm.cert, saml11=False)  # the new workers sign
    finally:
        hsm_instance.config.write_text(config)
        server.stop()


@pytest.mark.parametrize("refusal", ["previous-cert", "next-cert"])
def test_a_reload_refused_by_the_keys_leaves_no_token_thread_behind(
    hsm_instance: Instance, hsm: Hsm, tmp_path: Path, refusal: str
) -> None:
    """A reload refused by a key file problem found after the token's key was loaded (a missing previous
    certificate: load_keystore; an unreadable next certificate: load_material) closes that key too: README says
    the master keeps no thread of an old key "whether the reload is applied or refused"."""
    pid_file = tmp_path / "sts.pid"
    server = start_server(hsm_instance, workers=1, env={"SOFTHSM2_CONF": str(hsm.conf), "STS_PIDFILE": str(pid_file)})
    config = hsm_instance.config.read_text()
    next_cert = hsm_instance.base / "keystore" / "sts-signing-next.crt.pem"
    try:
        master = int(pid_file.read_text())
        started_with = _master_threads(master)
        for count in (1, 2, 3):
            if refusal == "previous-cert":
                none, missing = "\nprevious_certs = []\n", '\nprevious_certs = ["gone.pem"]\n'
                assert none in config
                hsm_instance.config.write_text(config.replace(none, missing))
            else:
                next_cert.write_text("not a certificate\n")
            os.kill(master, signal.SIGHUP)
            _reloads_logged(server, "reload refused", count)
        time.sleep(1)  # a stopped thread ends once it reads its stop
        assert _master_threads(master) == started_with
        assert "not valid TOML" not in server.log.read_text()  # refused by the keys, after the token's was loaded
        verify_with_xmlsec1(_issue(server, hsm_instance), hsm.cert, saml11=False)
    finally:
        hsm_instance.config.write_text(config)
        next_cert.unlink(missing_ok=True)
        server.stop()
