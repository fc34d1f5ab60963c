"""A bounded loop of Issue requests and metadata scrapes against a real server, for changes made under load
(key rotation, reload): every answer and every certificate the metadata published is kept with its time, so a
test can check that no request was lost and that each token was signed by a key published before it arrived."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from tests.support import Instance, Server, rst_envelope
from tests.token_checks import decrypt_with_python_xmlsec, verify_with_signxml

WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"


@dataclass
class Answer:
    """One Issue request: when it left and came back, and what came back (status 0: no HTTP answer)."""

    sent: float
    received: float
    status: int
    body: bytes


@dataclass
class LoadLoop:
    """Issue requests on ``clients`` threads and metadata scrapes on one, until stopped or ``max_requests``."""

    server: Server
    instance: Instance
    clients: int = 2
    max_requests: int = 400
    answers: list[Answer] = field(default_factory=list)
    # certificate (DER) → monotonic time it was first seen in the metadata; role seen last
    first_published: dict[bytes, float] = field(default_factory=dict)
    roles: dict[bytes, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.scrape()  # what is published before the first request
        self._threads = [threading.Thread(target=self._issue, daemon=True) for _ in range(self.clients)]
        self._threads.append(threading.Thread(target=self._scrape_loop, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for(self, predicate: object, timeout: float = 20.0) -> None:
        """Wait (bounded) until ``predicate()`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not reached in time; loop errors: {self.errors}")

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def _issue(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            with self._lock:
                if len(self.answers) >= self.max_requests:
                    return
            body = rst_envelope("admin", self.instance.demo_password)
            sent = time.monotonic()
            try:
                response = session.post(
                    self.server.url, data=body, verify=self.server.verify, timeout=30,
                    headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'},
                )
                answer = Answer(sent, time.monotonic(), response.status_code, response.content)
            except requests.RequestException as exc:
                answer = Answer(sent, time.monotonic(), 0, repr(exc).encode())
            with self._lock:
                self.answers.append(answer)

    def _scrape_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scrape()
            except Exception as exc:  # kept for the test to report, not swallowed
                self.errors.append(repr(exc))
                return
            time.sleep(0.02)

    def scrape(self) -> None:
        url = self.server.url.replace("/services/wso2carbon-sts", "/metadata")
        try:
            response = requests.get(url, verify=self.server.verify, timeout=10)
        except requests.RequestException:
            return
        if response.status_code != 200:
            return
        seen = time.monotonic()
        root = etree.fromstring(response.content)
        for key_info in root.iter(f"{{{DS}}}KeyInfo"):
            der = base64.b64decode("".join(key_info.findtext(f".//{{{DS}}}X509Certificate", "").split()))
            with self._lock:
                self.first_published.setdefault(der, seen)
                self.roles[der] = key_info.findtext(f"{{{DS}}}KeyName", "")

    def current_cert(self) -> bytes | None:
        with self._lock:
            return next((der for der, role in self.roles.items() if role == "current"), None)

    def published_in_role(self, role: str) -> list[bytes]:
        with self._lock:
            return [der for der, seen_role in self.roles.items() if seen_role == role]


def signing_cert_of(answer: Answer, instance: Instance, candidates: dict[bytes, float]) -> bytes:
    """The published certificate (DER) the answer's token verifies with (signxml, pinned), checked to be the only
    one, and published before the answer arrived."""
    root = etree.fromstring(answer.body)
    holder = root.find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1, answer.body[:500]
    token = holder[0]
    encrypted = token if token.tag == f"{{{XENC}}}EncryptedData" else token[0]
    plain = decrypt_with_python_xmlsec(encrypted, instance.rp_key)
    verified_by = []
    for der, first_seen in candidates.items():
        pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        try:
            verify_with_signxml(plain, pem, saml11=False)
        except Exception:  # noqa: S112 - another key's signature: try the next published certificate
            continue
        assert first_seen <= answer.received, "token signed by a key not yet published"
        verified_by.append(der)
    assert len(verified_by) == 1, "token verifies with no published certificate"
    return verified_by[0]
