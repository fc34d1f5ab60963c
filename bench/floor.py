"""The floor: what a minimal, framework-free issue pipeline costs with the product's own libraries, in-process.

Run by bench/run.py as a subprocess::

    python bench/floor.py --config DIR/sts.toml --template T --headers JSON --users a,b --requests N --log F

Issue 19's targets are ratios to the RSA reference request. This script measures how low a token can go at all
with the libraries the product is built on, so that a missed target can be told apart from a target below what
they allow. :class:`FloorPipeline` answers the headline request (UsernameToken, SAML 2.0 bearer, AES-256-GCM and
RSA-OAEP to the relying party) with the least work a token needs: one hardened lxml parse, the Timestamp window,
the password against a warm HMAC cache, the nonce into SQLite, the assertion built with lxml and five claims,
signed by the product's :class:`~sts.crypto.signer.AssertionSigner` (signxml), encrypted by its
:class:`~sts.crypto.encrypter.TokenEncrypter` (python-xmlsec), a token row into SQLite, the RSTR envelope
serialized and one JSON audit line written and flushed.

It leaves out, so it is a lower bound: Spyne, the envelope's structural caps and mustUnderstand, WS-Addressing
checks and reply headers beyond two, the security header's ID and order checks, lockout, the user store (claims
are constants), the relying party's policy (one dict lookup), metrics, the renewal record, every error path. A
server answering with it would also pay HTTP (the bench's /static reference) and the load remainder.

In one process, in alternating blocks of 50 so drift hits both alike, it times the product's headline request (the
WSGI app, without HTTP) and the floor, then the RSA reference (one RSA PKCS#1 v1.5 SHA-256 signature with the STS key).
Reported (JSON on stdout): ms of CPU per token for both, the floor's signxml ``sign`` and xmlsec ``encrypt_xml``
calls, and the RSA reference; bench/report.py turns them into served estimates with the run's own references.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))

import setup_instance  # noqa: E402
from inprocess_common import CallTimer, app_environment, argument_parser, rsa_reference_ms  # noqa: E402
from inprocess_profile import environ_for  # noqa: E402

HEADLINE_PATH = "/services/wso2carbon-sts"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSA = "http://www.w3.org/2005/08/addressing"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
CLAIMS = (
    ("http://wso2.org/claims/emailaddress", "user@bench.example"),
    ("http://wso2.org/claims/givenname", "Given"),
    ("http://wso2.org/claims/lastname", "Last"),
    ("http://wso2.org/claims/role", "Internal/everyone"),
    ("http://wso2.org/claims/organization", "Bench"),
)
SKEW = dt.timedelta(seconds=300)
BLOCK = 50  # requests per block of the alternation


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def _instant(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class FloorPipeline:
    """The least work an encrypted SAML 2.0 bearer token for a UsernameToken request needs (module docstring)."""

    def __init__(self, signer: Any, encrypter: Any, relying_party: str, work: Path) -> None:
        self._signer = signer
        self._encrypter = encrypter
        self._relying_parties = {relying_party: relying_party}
        self._parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                                       remove_comments=True, remove_pis=True)
        self._cache_key = os.urandom(32)
        self._credentials: dict[str, bytes] = {}
        self._db = sqlite3.connect(work / "floor.db", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replay (ns TEXT, key TEXT, expires REAL, PRIMARY KEY (ns, key))")
        self._db.execute("CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, subject TEXT, relying_party TEXT, "
                         "not_before REAL, not_on_or_after REAL, status TEXT, digest TEXT, expires REAL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS tokens_expires ON tokens(expires)")
        self._db.execute("CREATE INDEX IF NOT EXISTS tokens_digest ON tokens(digest)")
        self._log = (work / "floor.log").open("a", encoding="utf-8")

    def issue(self, body: bytes) -> bytes:
        """The RSTR for one headline request."""
        envelope = etree.fromstring(body, self._parser)
        header, soap_body = envelope.find(_q(SOAP, "Header")), envelope.find(_q(SOAP, "Body"))
        if header is None or soap_body is None:
            raise ValueError("not a SOAP 1.1 envelope")
        now = dt.datetime.now(dt.UTC)
        user = self._authenticate(header, now)
        rst = soap_body[0]
        applies_to = rst.find(_q(WSP, "AppliesTo"))
        if applies_to is None:
            raise ValueError("no AppliesTo")
        party = self._relying_parties[applies_to[0].findtext(_q(WSA, "Address")) or ""]
        token_id = "_" + uuid.uuid4().hex
        expires = now + dt.timedelta(hours=1)
        signed = self._signer.sign_saml2(self._assertion(token_id, user, party, now, expires))
        digest = hashlib.sha256(etree.tostring(signed, method="c14n", exclusive=True)).hexdigest()
        encrypted = self._encrypter.encrypt(signed)
        self._db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, 'issued', ?, ?)",
                         (token_id, user, party, now.timestamp(), expires.timestamp(), digest,
                          expires.timestamp() + 86400))
        answer = self._answer(header.findtext(_q(WSA, "MessageID")) or "", encrypted, now, expires)
        self._log.write(json.dumps({"time": _instant(now), "event": "issue", "outcome": "success", "user": user,
                                    "applies_to": party, "token_id": token_id}) + "\n")
        self._log.flush()
        return answer

    def close(self) -> None:
        """Close the database and the log."""
        self._db.close()
        self._log.close()

    def _authenticate(self, header: etree._Element, now: dt.datetime) -> str:
        security = header.find(_q(WSSE, "Security"))
        if security is None:
            raise ValueError("no Security header")
        timestamp, token = security.find(_q(WSU, "Timestamp")), security.find(_q(WSSE, "UsernameToken"))
        if timestamp is None or token is None:
            raise ValueError("no Timestamp or UsernameToken")
        created = dt.datetime.fromisoformat(timestamp.findtext(_q(WSU, "Created")) or "")
        expires = dt.datetime.fromisoformat(timestamp.findtext(_q(WSU, "Expires")) or "")
        if not created - SKEW <= now <= expires + SKEW:
            raise ValueError("stale")
        user, password = token.findtext(_q(WSSE, "Username")) or "", token.findtext(_q(WSSE, "Password")) or ""
        mac = hmac.new(self._cache_key, f"{user}\0{password}".encode(), "sha256").digest()
        if not hmac.compare_digest(self._credentials.setdefault(user, mac), mac):
            raise ValueError("wrong password")
        nonce = hashlib.sha256(base64.b64decode(token.findtext(_q(WSSE, "Nonce")) or "")).hexdigest()
        inserted = self._db.execute("INSERT INTO replay VALUES ('nonce', ?, ?) ON CONFLICT DO NOTHING",
                                    (nonce, now.timestamp() + 600)).rowcount
        if inserted != 1:
            raise ValueError("replayed nonce")
        return user

    @staticmethod
    def _assertion(token_id: str, user: str, party: str, now: dt.datetime, expires: dt.datetime) -> etree._Element:
        sub = etree.SubElement
        assertion = etree.Element(_q(SAML, "Assertion"), nsmap={"saml2": SAML}, ID=token_id,
                                  IssueInstant=_instant(now), Version="2.0")
        sub(assertion, _q(SAML, "Issuer")).text = "https://sts.bench.example"
        subject = sub(assertion, _q(SAML, "Subject"))
        sub(subject, _q(SAML, "NameID")).text = user
        confirmation = sub(subject, _q(SAML, "SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
        sub(confirmation, _q(SAML, "SubjectConfirmationData"), NotOnOrAfter=_instant(expires), Recipient=party)
        conditions = sub(assertion, _q(SAML, "Conditions"), NotBefore=_instant(now), NotOnOrAfter=_instant(expires))
        sub(sub(conditions, _q(SAML, "AudienceRestriction")), _q(SAML, "Audience")).text = party
        authn = sub(assertion, _q(SAML, "AuthnStatement"), AuthnInstant=_instant(now))
        sub(sub(authn, _q(SAML, "AuthnContext")), _q(SAML, "AuthnContextClassRef")).text = (
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
        statement = sub(assertion, _q(SAML, "AttributeStatement"))
        for uri, value in CLAIMS:
            attribute = sub(statement, _q(SAML, "Attribute"), Name=uri,
                            NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri")
            sub(attribute, _q(SAML, "AttributeValue")).text = value
        return assertion

    @staticmethod
    def _answer(message_id: str, encrypted: etree._Element, now: dt.datetime, expires: dt.datetime) -> bytes:
        sub = etree.SubElement
        envelope = etree.Element(_q(SOAP, "Envelope"), nsmap={"s": SOAP, "a": WSA, "u": WSU})
        header = sub(envelope, _q(SOAP, "Header"))
        sub(header, _q(WSA, "Action")).text = WST + "/RSTRC/IssueFinal"
        sub(header, _q(WSA, "RelatesTo")).text = message_id
        collection = sub(sub(envelope, _q(SOAP, "Body")), _q(WST, "RequestSecurityTokenResponseCollection"),
                         nsmap={"t": WST})
        response = sub(collection, _q(WST, "RequestSecurityTokenResponse"))
        sub(response, _q(WST, "TokenType")).text = SAML  # the SAML 2.0 token type is the namespace
        sub(sub(response, _q(WST, "RequestedSecurityToken")), _q(SAML, "EncryptedAssertion")).append(encrypted)
        lifetime = sub(response, _q(WST, "Lifetime"))
        sub(lifetime, _q(WSU, "Created")).text = _instant(now)
        sub(lifetime, _q(WSU, "Expires")).text = _instant(expires)
        return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


def build_floor(settings: Any, work: Path) -> tuple[FloorPipeline, dict[str, CallTimer]]:
    """The floor for the instance of ``settings`` (its signing key, the headline relying party's certificate),
    with timers on the signxml ``sign`` call, the xmlsec ``encrypt_xml`` call and the whole encryption."""
    from cryptography import x509
    from signxml.signer import XMLSigner

    import sts.crypto.encrypter as encrypter_module
    from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
    from sts.crypto.keystore import load_keystore
    from sts.crypto.signer import AssertionSigner

    timers = {name: CallTimer(on=False) for name in ("sign_call", "encrypt_xml_call", "encryption")}
    XMLSigner.sign = timers["sign_call"].wrap(XMLSigner.sign)  # type: ignore[method-assign]
    encrypter_module._encrypt_xml = timers["encrypt_xml_call"].wrap(encrypter_module._encrypt_xml)  # type: ignore[assignment]
    TokenEncrypter.encrypt = timers["encryption"].wrap(TokenEncrypter.encrypt)  # type: ignore[method-assign]
    keys = load_keystore(settings)
    rp_pem = (Path(settings.store.truststore) / "bench-rp.crt.pem").read_bytes()
    encrypter = TokenEncrypter(x509.load_pem_x509_certificate(rp_pem), EncryptionPolicy())
    floor = FloorPipeline(AssertionSigner(keys.signing_key, keys.signing_cert), encrypter,
                          setup_instance.RP_HEADLINE, work)
    return floor, timers


def main() -> int:
    args = argument_parser(__doc__).parse_args()

    env = app_environment(args.log)
    from sts.bootstrap import boot
    from sts.config import load_settings

    settings = load_settings(args.config, env=env)
    floor, timers = build_floor(settings, args.log.parent)
    app = boot(settings=settings)
    template = setup_instance.RequestTemplate(args.template.read_bytes(), json.loads(args.headers))
    users = args.users.split(",")
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
        status.append(line)

    def product(body: bytes) -> None:
        answer = b"".join(app(environ_for(body, template.headers, HEADLINE_PATH), start_response))
        if not status[-1].startswith("200") or b"EncryptedAssertion" not in answer:
            raise RuntimeError(f"unexpected answer {status[-1]}: {answer[:400]!r}")

    def block(run: Callable[[bytes], Any], count: int) -> float:
        bodies = [setup_instance.fill(template, users[i % len(users)]) for i in range(count)]
        started = time.process_time()
        for body in bodies:
            run(body)
        return time.process_time() - started

    block(product, args.warmup)
    block(floor.issue, args.warmup)
    product_cpu = floor_cpu = 0.0
    blocks = max(1, args.requests // BLOCK)
    for _ in range(blocks):  # alternating blocks, so drift hits both alike without one evicting the other's caches
        product_cpu += block(product, BLOCK)
        for timer in timers.values():
            timer.on = True
        floor_cpu += block(floor.issue, BLOCK)
        for timer in timers.values():
            timer.on = False
    floor.close()
    n = blocks * BLOCK
    rsa_ms = rsa_reference_ms(settings, max(200, n))
    print(json.dumps({
        "requests": n,
        "rsa_reference_cpu_ms": rsa_ms,
        "headline_cpu_ms_per_token": product_cpu * 1000 / n,
        "floor_cpu_ms_per_token": floor_cpu * 1000 / n,
        "floor_sign_call_ms": timers["sign_call"].seconds * 1000 / n,
        "floor_encrypt_xml_call_ms": timers["encrypt_xml_call"].seconds * 1000 / n,
        "floor_encryption_ms": timers["encryption"].seconds * 1000 / n,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
