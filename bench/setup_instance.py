"""Benchmark instances: a fresh ``sts init`` plus generated users, relying parties and request templates.

Only the few users that log in get their own argon2id hash (at the STS's configured parameters, through
``PasswordHasher``); the filler users share one precomputed hash string and are written with ``executemany``
straight into the ``users`` table (schema: ``sts/stores/sqlite.py``). Relying parties go through
``RelyingPartyRegistry.add`` (validated as ``sts rp add`` does) in one transaction, all sharing one certificate
copied into the truststore.
"""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from sts import ns
from sts.auth.passwords import PasswordHasher
from sts.auth.users import PRIMARY
from sts.client.options import Connection, IssueOptions, SymmetricKey
from sts.client.rst import build_issue_request
from sts.clock import format_instant
from sts.crypto import keygen
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from sts.wstrust.tokentypes import SamlVersion

STS_BIN = Path(sys.executable).with_name("sts")
WSO2 = "http://wso2.org/claims/"
# 50 claim URIs: the WSO2 ones first (role comes from role membership), then generated ones.
CLAIMS: tuple[str, ...] = (
    WSO2 + "emailaddress", WSO2 + "givenname", WSO2 + "lastname", WSO2 + "role", WSO2 + "organization",
    *(f"http://bench.example.org/claims/attr{i:02d}" for i in range(5, 50)),
)
FILLER_CLAIMS = 5  # claim rows per filler user
LOGIN_USERS = 8  # users that really authenticate (spread over the id range)
RP_HEADLINE = "https://rp-000.bench.example/app/"  # encrypted, 5 claims
RP_SIGNED = "https://rp-001.bench.example/app/"  # signed only, 5 claims
RP_CLAIMS50 = "https://rp-002.bench.example/app/"  # encrypted, 50 claims
PLACEHOLDERS = ("@@USER@@", "@@NONCE@@", "@@CREATED@@", "@@EXPIRES@@")
_TEMPLATE_NOW = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
_TEMPLATE_NONCE = bytes(range(16))


@dataclass
class Instance:
    """One instance directory and what the load generator needs to call it."""

    name: str
    base: Path
    users: int
    rps: int
    password: str
    login_users: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.base / "sts.toml"

    @property
    def database(self) -> Path:
        return self.base / "sts.db"

    @property
    def signing_key(self) -> Path:
        return self.base / "keystore" / "sts-signing.key.pem"


def _claim_value(uri: str, user: str) -> str:
    local = uri.rsplit("/", 1)[-1]
    if local == "emailaddress":
        return f"{user}@bench.example.org"
    return f"{local} of {user}"


def create_instance(
    name: str, base: Path, *, users: int, rps: int, key_size: int, rp_cert: Path, hasher: PasswordHasher,
    shared_hash: str,
) -> Instance:
    """``sts init`` (subprocess, as an operator runs it), then users and relying parties."""
    subprocess.run(  # noqa: S603 - the project's own CLI
        [str(STS_BIN), "init", "--key-size", str(key_size), "--bind", "127.0.0.1:9443", str(base)],
        check=True, stdout=subprocess.DEVNULL,
    )
    instance = Instance(name, base, users, rps, secrets.token_urlsafe(18))
    db = Database(instance.database)
    try:
        _add_users(instance, db, hasher, shared_hash)
        _add_relying_parties(instance, db, rp_cert)
    finally:
        db.close()
    return instance


def _add_users(instance: Instance, db: Database, hasher: PasswordHasher, shared_hash: str) -> None:
    count = instance.users
    step = max(1, count // LOGIN_USERS)
    login = {i * step for i in range(min(LOGIN_USERS, count))}
    now = time.time()
    names = [f"user{i:06d}" for i in range(count)]
    instance.login_users = [names[i] for i in sorted(login)]
    hashes = {i: hasher.hash(instance.password) for i in login}
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO users(domain, name, canonical, password_hash, digest_secret, enabled, created, updated)"
        " VALUES (?, ?, ?, ?, NULL, 1, ?, ?)",
        ((PRIMARY, n, n.casefold(), hashes.get(i, shared_hash), now, now) for i, n in enumerate(names)),
    )
    ids = dict(conn.execute("SELECT canonical, id FROM users"))
    conn.executemany("INSERT INTO user_roles(user_id, role) VALUES (?, 'admin')", ((ids[n],) for n in names))
    stored = [uri for uri in CLAIMS if not uri.endswith("/role")]

    def claim_rows() -> Iterator[tuple[int, str, int, str]]:
        for i, n in enumerate(names):
            for uri in stored if i in login else stored[:FILLER_CLAIMS]:
                yield ids[n], uri, 0, _claim_value(uri, n)

    conn.executemany("INSERT INTO user_claims(user_id, uri, position, value) VALUES (?, ?, ?, ?)", claim_rows())
    conn.execute("COMMIT")


def _add_relying_parties(instance: Instance, db: Database, rp_cert: Path) -> None:
    truststore = instance.base / "keystore" / "truststore"
    (truststore / "bench-rp.crt.pem").write_bytes(rp_cert.read_bytes())
    store = RelyingPartyRegistry(SqliteRelyingPartyStore(db))
    db.conn.execute("BEGIN IMMEDIATE")
    for i in range(instance.rps):
        claims = CLAIMS if i == 2 else CLAIMS[:5]
        store.add(RelyingParty(
            address=f"https://rp-{i:03d}.bench.example/app/", cert_file="bench-rp.crt.pem",
            encrypt=(i != 1), claims=claims,
        ))
    db.conn.execute("COMMIT")


def make_rp_certificate(directory: Path, key_size: int) -> Path:
    """One relying-party key pair; every generated RP encrypts to its certificate."""
    key = keygen.generate_rsa_key(key_size)
    keygen.write_private_key(directory / "bench-rp.key.pem", key)
    cert = directory / "bench-rp.crt.pem"
    keygen.write_certificate(cert, keygen.self_signed_certificate(key, "benchmark relying party"))
    return cert


@dataclass(frozen=True)
class RequestTemplate:
    """A request body with placeholders (or a fixed body), and its HTTP headers."""

    body: bytes
    headers: dict[str, str]


def issue_template(
    url: str, password: str, *, applies_to: str = RP_HEADLINE, token_type: str | None = "saml20",  # noqa: S107
    soap: str = "1.1", key_type: str = "bearer",
) -> RequestTemplate:
    """The sample client's Issue request (WS-Addressing, Timestamp, UsernameToken with Nonce and Created) with
    ``@@USER@@``, ``@@NONCE@@``, ``@@CREATED@@`` and ``@@EXPIRES@@`` where the Lua script writes fresh values."""
    if key_type not in ("bearer", "symmetric"):
        raise ValueError(f"no template for key type {key_type}")
    options = IssueOptions(
        Connection(url=url, username="@@USER@@", soap_ns={"1.1": ns.S11, "1.2": ns.S12}[soap]),
        applies_to=applies_to,
        token_type=SamlVersion(token_type) if token_type is not None else None,
        key=SymmetricKey() if key_type == "symmetric" else None,
    )
    built = build_issue_request(options, password, now=_TEMPLATE_NOW, nonce=_TEMPLATE_NONCE)
    body = built.body.decode("utf-8")
    import base64

    replacements = {
        base64.b64encode(_TEMPLATE_NONCE).decode("ascii"): "@@NONCE@@",
        format_instant(_TEMPLATE_NOW + dt.timedelta(minutes=5)): "@@EXPIRES@@",
        format_instant(_TEMPLATE_NOW): "@@CREATED@@",
    }
    for old, new in replacements.items():
        if old not in body:
            raise RuntimeError(f"template value {old} not found")
        body = body.replace(old, new)
    return RequestTemplate(body.encode("utf-8"), built.headers)


def no_nonce_template(url: str, password: str, *, applies_to: str = RP_HEADLINE) -> RequestTemplate:  # noqa: S107
    """The Issue request as Microsoft's client code sends it: a Timestamp (``@@CREATED@@``/``@@EXPIRES@@``, which
    the published policy requires) and a UsernameToken with Username and Password only (no Nonce or Created), so
    no replay-store write per request."""
    template = issue_template(url, password, applies_to=applies_to)
    root = etree.fromstring(template.body)
    token = root.find(f".//{{{ns.WSSE}}}Security/{{{ns.WSSE}}}UsernameToken")
    if token is None or root.find(f".//{{{ns.WSSE}}}Security/{{{ns.WSU}}}Timestamp") is None:
        raise RuntimeError("request without a Timestamp and a UsernameToken")
    for path in (f"{{{ns.WSSE}}}Nonce", f"{{{ns.WSU}}}Created"):
        node = token.find(path)
        if node is None:
            raise RuntimeError(f"UsernameToken without {path}")
        token.remove(node)
    return RequestTemplate(etree.tostring(root, encoding="utf-8", xml_declaration=True), template.headers)


def fill(template: RequestTemplate, user: str) -> bytes:
    """A ready-to-send body from a template (for sanity checks and the in-process profile)."""
    import base64

    now = dt.datetime.now(dt.UTC)
    body = template.body.decode("utf-8")
    body = body.replace("@@USER@@", user).replace("@@NONCE@@", base64.b64encode(secrets.token_bytes(16)).decode())
    body = body.replace("@@CREATED@@", format_instant(now))
    return body.replace("@@EXPIRES@@", format_instant(now + dt.timedelta(minutes=5))).encode("utf-8")
