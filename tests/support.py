"""Test helpers shared by unit and integration tests: instances, a real gunicorn, fault parsing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from lxml import etree

from sts.cli import main as sts_main
from tests.servers._process import die_with_parent

REPO = Path(__file__).resolve().parent.parent
STS_BIN = Path(sys.executable).with_name("sts")
S11 = "http://schemas.xmlsoap.org/soap/envelope/"
S12 = "http://www.w3.org/2003/05/soap-envelope"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    """An instance directory made by ``sts init --demo``."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "sts.toml"

    @property
    def ca_file(self) -> Path:
        return self.base / "keystore" / "tls.crt.pem"

    @property
    def signing_cert(self) -> Path:
        return self.base / "keystore" / "sts-signing.crt.pem"

    @property
    def demo_password(self) -> str:
        return (self.base / "demo-admin-password.txt").read_text().strip()

    @property
    def rp_key(self) -> Path:
        return self.base / "demo-rp" / "rp.key.pem"

    def cli(self, *args: str) -> int:
        """Run an ``sts`` command in-process against this instance."""
        return sts_main(["--config", str(self.config), *args])


def make_instance(base: Path) -> Instance:
    """``sts init --demo`` with 2048-bit keys (fast to generate)."""
    assert sts_main(["init", "--demo", "--key-size", "2048", str(base)]) == 0
    return Instance(base)


@dataclass
class Server:
    """A real gunicorn serving an instance on 127.0.0.1; stopped by :meth:`stop`."""

    instance: Instance
    port: int
    tls: bool
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    stdout_log: Path | None = None  # set when stdout and stderr were kept apart

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/services/wso2carbon-sts"

    @property
    def verify(self) -> str | bool:
        return str(self.instance.ca_file) if self.tls else False

    def post(self, body: bytes, *, soap12: bool = False, action: str = "", **kwargs: object) -> requests.Response:
        """POST a SOAP envelope."""
        headers = {"Content-Type": "application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8"}
        if action and not soap12:
            headers["SOAPAction"] = f'"{action}"'
        elif action:
            headers["Content-Type"] += f'; action="{action}"'
        return requests.post(self.url, data=body, headers=headers, verify=self.verify, timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)  # reaped: no "still running" warning when the Popen is collected


def start_server(
    instance: Instance,
    *,
    workers: int = 2,
    tls: bool = True,
    env: Mapping[str, str] | None = None,
    command: list[str] | None = None,
    cwd: Path | None = None,
    split_output: bool = False,
) -> Server:
    """Start gunicorn via ``sts serve`` (or ``command``) and wait until /healthz answers.

    Output goes to ``server.log``; with ``split_output`` only stderr does, and stdout to ``server.stdout_log``.
    The port is picked free, then bound by gunicorn a moment later: when another process took it meanwhile, the
    server is started again on another port (unless the caller named the port in ``env``).
    """
    for attempt in range(PORT_ATTEMPTS):
        try:
            return _start_server(instance, workers, tls, env, command, cwd, split_output)
        except _PortTaken:
            if attempt + 1 == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


PORT_ATTEMPTS = 3
# gunicorn's message when its bind fails (it retries 5 times, a second apart, then exits).
_PORT_IN_USE = "Connection in use: ('127.0.0.1', {port})"


class _PortTaken(RuntimeError):
    """The picked port was taken by another process before gunicorn bound it."""


def _start_server(
    instance: Instance,
    workers: int,
    tls: bool,
    env: Mapping[str, str] | None,
    command: list[str] | None,
    cwd: Path | None,
    split_output: bool,
) -> Server:
    port = free_port()
    log = instance.base / f"server-{port}.log"
    stdout_log = instance.base / f"server-{port}.stdout" if split_output else None
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    full_env.update({"STS_LOGGING_ACCESS_LOG": "false", **(env or {})})
    if not tls:
        full_env.update(
            {"STS_SERVER_TLS_CERT": "", "STS_SERVER_TLS_KEY": "", "STS_SERVER_ALLOW_INSECURE_TRANSPORT": "true"}
        )
    full_env.update(env or {})  # explicit settings win over the TLS switch above
    argv = command or [str(STS_BIN), "--config", str(instance.config), "serve"]
    argv = [*argv, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)] if command is None else argv
    if command is not None:
        full_env.setdefault("STS_SERVER_BIND", f"127.0.0.1:{port}")
        full_env.setdefault("STS_SERVER_WORKERS", str(workers))
    our_port = full_env.get("STS_SERVER_BIND", f"127.0.0.1:{port}") == f"127.0.0.1:{port}"
    # SIGTERM when the test run is killed: gunicorn's master then stops its workers.
    on_death, where = die_with_parent(signal.SIGTERM), cwd or instance.base
    with log.open("wb") as handle:
        if stdout_log is None:
            process = subprocess.Popen(
                argv, stdout=handle, stderr=subprocess.STDOUT, env=full_env, cwd=where, preexec_fn=on_death
            )
        else:
            with stdout_log.open("wb") as out:
                process = subprocess.Popen(
                    argv, stdout=out, stderr=handle, env=full_env, cwd=where, preexec_fn=on_death
                )
    server = Server(instance, port, tls, process, log, full_env, stdout_log)
    try:
        _wait_healthy(server, our_port)
    except BaseException:
        server.stop()  # whatever went wrong (a timeout, an interrupt): no server left running, the process reaped
        raise
    return server


def _wait_healthy(server: Server, our_port: bool) -> None:
    """Return once /healthz answers 200; raise if the server exits or does not answer within 30 s."""
    deadline = time.monotonic() + 30
    health = server.url.replace("/services/wso2carbon-sts", "/healthz")
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            text = server.log.read_text(errors="replace")
            if our_port and _PORT_IN_USE.format(port=server.port) in text:
                raise _PortTaken(f"port {server.port} taken before gunicorn bound it: {text}")
            raise RuntimeError(f"server exited: {text}")
        # Patient reads: a probe that gave up while the just-forked worker had not yet accepted its connection
        # would be counted by the server as a refused connection (a failed TLS handshake), which tests count.
        read_timeout = max(0.5, min(10.0, deadline - time.monotonic()))
        try:
            if requests.get(health, verify=server.verify, timeout=(2, read_timeout)).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start: {server.log.read_text(errors='replace')}")


def fault_qname(body: bytes) -> tuple[str, str]:
    """The fault code of a SOAP 1.1 or 1.2 fault as (namespace, local): 1.2 gives the Subcode."""
    root = etree.fromstring(body)
    code = root.find(f".//{{{S11}}}Fault/faultcode")
    if code is None:
        code = root.find(f".//{{{S12}}}Fault/{{{S12}}}Code/{{{S12}}}Subcode/{{{S12}}}Value")
    assert code is not None, body
    prefix, _, local = (code.text or "").partition(":")
    return code.nsmap[prefix], local


def fault_string(body: bytes) -> str:
    """The fault string (1.1) or Reason/Text (1.2)."""
    root = etree.fromstring(body)
    node = root.find(f".//{{{S11}}}Fault/faultstring")
    if node is None:
        node = root.find(f".//{{{S12}}}Reason/{{{S12}}}Text")
    assert node is not None
    return node.text or ""


WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSA = "http://www.w3.org/2005/08/addressing"
PW_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
PW_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"


def now_text(offset: float = 0) -> str:
    """Current UTC time (+ offset seconds) as xsd:dateTime with a Z."""
    import datetime as dt

    instant = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def wsu_timestamp(lifetime: int = 300) -> etree._Element:
    """A fresh ``wsu:Timestamp`` (Created now, Expires now + lifetime), e.g. for zeep's ``timestamp_token``: zeep
    sends none by default, and the STS's policy requires one (``sp:IncludeTimestamp``)."""
    timestamp = etree.Element(f"{{{WSU}}}Timestamp", nsmap={"wsu": WSU})
    timestamp.set(f"{{{WSU}}}Id", "TS-zeep")
    etree.SubElement(timestamp, f"{{{WSU}}}Created").text = now_text()
    etree.SubElement(timestamp, f"{{{WSU}}}Expires").text = now_text(lifetime)
    return timestamp


def rst_envelope(
    username: str,
    password: str,
    *,
    digest: bool = False,
    nonce: bytes | None = None,
    created: str | None = None,
    soap12: bool = False,
    applies_to: str = "https://localhost:8443/demo-rp/",
    token_type: str = "urn:oasis:names:tc:SAML:2.0:assertion",
    extra_rst: str = "",
    request_type: str = f"{WST}/Issue",
    timestamp: bool = True,
) -> bytes:
    """A WS-Trust 1.3 RST with a Timestamp (unless ``timestamp=False``) and a UsernameToken, as a typical client
    sends it."""
    import base64
    import hashlib
    import os as _os
    from xml.sax.saxutils import escape

    env = S12 if soap12 else S11
    created = created or now_text()
    nonce = nonce if nonce is not None else _os.urandom(16)
    if digest:
        value = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
        pw = f'<wsse:Password Type="{PW_DIGEST}">{value}</wsse:Password>'
    else:
        pw = f'<wsse:Password Type="{PW_TEXT}">{escape(password)}</wsse:Password>'
    ts = (
        f'<wsu:Timestamp wsu:Id="TS-1"><wsu:Created>{now_text()}</wsu:Created>\n'
        f"<wsu:Expires>{now_text(300)}</wsu:Expires></wsu:Timestamp>"
        if timestamp
        else ""
    )
    rst = rst_body(applies_to=applies_to, token_type=token_type, extra_rst=extra_rst, request_type=request_type)
    return f"""<s:Envelope xmlns:s="{env}" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><s:Header>
<wsse:Security s:mustUnderstand="1">{ts}<wsse:UsernameToken wsu:Id="UT-1">
<wsse:Username>{escape(username)}</wsse:Username>{pw}
<wsse:Nonce EncodingType="{B64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>
<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header><s:Body>
{rst}</s:Body></s:Envelope>""".encode()


def rst_body(
    *,
    applies_to: str = "https://localhost:8443/demo-rp/",
    token_type: str = "urn:oasis:names:tc:SAML:2.0:assertion",
    extra_rst: str = "",
    request_type: str = f"{WST}/Issue",
    key_type: str = f"{WST}/Bearer",
) -> str:
    """The ``wst:RequestSecurityToken`` of :func:`rst_envelope` (the Body a WS-Security client signs)."""
    return f"""<wst:RequestSecurityToken xmlns:wst="{WST}"><wst:TokenType>{token_type}</wst:TokenType>
<wst:RequestType>{request_type}</wst:RequestType><wsp:AppliesTo xmlns:wsp="{WSP}"><wsa:EndpointReference
xmlns:wsa="{WSA}"><wsa:Address>{applies_to}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>
<wst:KeyType>{key_type}</wst:KeyType>{extra_rst}</wst:RequestSecurityToken>"""


def audit_records(log: Path) -> list[dict[str, object]]:
    """The audit events a server wrote to its log file."""
    import json

    records = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"sts.audit"' in line:
            records.append(json.loads(line))
    return records
