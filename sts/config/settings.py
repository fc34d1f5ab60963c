"""Frozen settings dataclasses: one per TOML table of ``sts.toml``.

Each field's ``metadata`` holds its validator (a predicate and the message reported when it fails), so the
loader can check every value and report every problem at once. Paths are resolved relative to the config file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sts.config.trusted_issuers import TrustedIssuerSettings
from sts.config.user_stores import UserStoreSettings
from sts.netaddr import AddressSet, are_networks, is_host_port

ALL_DOMAINS = "ALL-USER-STORE-DOMAINS"


class ProfileName(StrEnum):
    """The compatibility profiles (what each sets: ``sts.relying_parties.profiles``). Named here, the one list
    both ``[tokens] profile`` and a relying party's own ``profile`` are checked against."""

    STRICT = "strict"
    WSO2 = "wso2"
    ADFS = "adfs"
    CXF = "cxf"


PROFILE_NAMES: tuple[str, ...] = tuple(name.value for name in ProfileName)
STORE_BACKENDS = ("sqlite", "postgresql")
# WSO2 security scenario names this STS serves (policies/README.md), and the AD FS-style certificatemixed.
SCENARIO_NAMES: tuple[str, ...] = (
    "UTOverTransport", "SigOnly", "SigEncr", "SgnEncrUsername", "certificatemixed", "certificatetransport"
)
# Scenarios whose message security needs the STS's private key itself (python-xmlsec, cryptography): SigOnly signs its
# answers, SigEncr and SgnEncrUsername decrypt requests and sign answers. A PKCS#11 token signs tokens only.
KEY_OUTSIDE_TOKEN_SCENARIOS: tuple[str, ...] = ("SigOnly", "SigEncr", "SgnEncrUsername")
RESPONSE_CIPHERS: tuple[str, ...] = ("aes256-gcm", "aes256-cbc")
CLIENT_CERT_USER_RULES: tuple[str, ...] = ("", "cn", "san_email", "san_dns")
HARD_MAX_BODY_BYTES = 1024 * 1024


_HOST_PORT = "HOST:PORT (a port from 1 to 65535; IPv6 as [ADDRESS]:PORT)"


def _check(predicate: Callable[[Any], bool], message: str, default: Any) -> Any:
    return field(default=default, metadata={"check": (predicate, message)})


def _positive(default: int) -> Any:
    return _check(lambda v: v > 0, "must be greater than 0", default)


def _non_negative(default: int) -> Any:
    return _check(lambda v: v >= 0, "must be 0 or more", default)


def _networks(default: tuple[str, ...]) -> Any:
    return _check(
        are_networks, "must list IP addresses or networks such as \"10.0.0.5\" or \"10.0.0.0/24\" ('*' is refused)",
        default,
    )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """``[server]``: where and how gunicorn listens."""

    bind: str = _check(is_host_port, f"must be {_HOST_PORT}", "127.0.0.1:9443")
    workers: int = _non_negative(0)  # 0: one per CPU core
    tls_cert: Path | None = None
    tls_key: Path | None = None
    timeout: int = _positive(30)
    graceful_timeout: int = _positive(30)
    keepalive: int = _non_negative(5)
    # Serving model (sts.gunicorn_worker): threads per worker run requests that the worker's event loop has
    # read in full; a client has read_timeout seconds for the TLS handshake and its whole request.
    threads: int = _check(lambda v: 1 <= v <= 64, "must be between 1 and 64", 1)
    worker_connections: int = _check(lambda v: 1 <= v <= 100000, "must be between 1 and 100000", 1000)
    read_timeout: int = _check(lambda v: 1 <= v <= 300, "must be between 1 and 300", 10)
    # TLS-terminating proxies whose X-Forwarded-Proto/-Ssl/-Protocol and X-Forwarded-For are believed.
    trusted_proxies: tuple[str, ...] = _networks(())
    allow_insecure_transport: bool = False
    public_url: str = ""
    # TLS client certificates (certificatetransport): gunicorn asks every client for one (CERT_OPTIONAL, so the other
    # endpoints keep working without) and verifies it against this CA bundle; _required refuses handshakes without.
    tls_client_ca_file: Path | None = None
    tls_client_cert_required: bool = False
    # Behind a TLS-terminating proxy: the header in which a trusted_proxies peer passes the verified client
    # certificate (PEM, URL-encoded as nginx's $ssl_client_escaped_cert); never read from any other peer.
    client_cert_header: str = _check(
        lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9-]{1,64}", v) is not None,
        "must be an HTTP header name (letters, digits, '-') or empty", "",
    )
    soap12_sender_status: int = _check(lambda v: v in (400, 500), "must be 400 or 500", 400)
    # gunicorn's master writes its process id here; `sts reload` signals that process.
    pid_file: Path | None = None
    # GET /readyz: how long the stores, directories and cache this node depends on have to answer.
    readiness_timeout_ms: int = _check(lambda v: 50 <= v <= 30000, "must be between 50 and 30000", 2000)


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """``[limits]``: request size and XML structure caps, so hostile input is refused before it costs much."""

    max_body_bytes: int = _check(
        lambda v: 0 < v <= HARD_MAX_BODY_BYTES, f"must be between 1 and {HARD_MAX_BODY_BYTES}", 65536
    )
    max_depth: int = _check(lambda v: 8 <= v <= 256, "must be between 8 and 256", 32)
    max_elements: int = _positive(2000)
    max_attributes: int = _positive(32)
    max_namespaces: int = _positive(256)
    max_text_bytes: int = _positive(65536)


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """``[issuer]``: the STS identity and its signing key."""

    name: str = _check(bool, "must not be empty", "https://localhost:9443/services/wso2carbon-sts")
    signing_key: Path = Path("keystore/sts-signing.key.pem")
    signing_cert: Path = Path("keystore/sts-signing.crt.pem")
    # The key passphrase never sits in this file: it comes from $STS_SIGNING_KEY_PASSPHRASE or this file.
    signing_key_passphrase_file: Path | None = None
    # Certificates of earlier signing keys whose signatures Validate and Renew still accept (kept by hand).
    previous_certs: tuple[Path, ...] = ()
    # Rotation (README, "Rotating the signing key"): `sts key rotate` writes the next key here; it is published
    # in the metadata from then on, and becomes the signing key on `sts key promote` or at promote_at.
    next_signing_key: Path = Path("keystore/sts-signing-next.key.pem")
    next_signing_cert: Path = Path("keystore/sts-signing-next.crt.pem")
    # `sts key promote` moves the replaced certificate here; it stays accepted for previous_overlap seconds.
    retired_certs: Path = Path("keystore/retired")
    previous_overlap: int = _check(lambda v: 0 <= v <= 90 * 86400, "must be between 0 and 7776000 (90 days)", 86400)
    # When set: from this instant on, a next key made before it signs (every node at once, by its own clock).
    promote_at: dt.datetime | None = _check(
        lambda v: v.tzinfo is not None, "must be a date-time with a UTC offset, such as 2030-01-31T12:00:00Z", None
    )
    # The signing key in a PKCS#11 token (an HSM) instead of signing_key; the PIN comes from $STS_PKCS11_PIN or
    # pkcs11_pin_file, never from this file.
    pkcs11_module: Path | None = None
    pkcs11_token_label: str = ""
    pkcs11_key_label: str = ""
    pkcs11_pin_file: Path | None = None
    # How long a request waits for the token's answer before failing closed; well under [server] timeout, so a
    # token that stops answering costs a fault, never the worker.
    pkcs11_timeout_ms: int = _check(lambda v: 100 <= v <= 20000, "must be between 100 and 20000", 5000)


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """``[tokens]``: issued-token defaults."""

    lifetime: int = _positive(300)
    max_lifetime: int = _check(lambda v: 0 < v <= 43200, "must be between 1 and 43200 (12 h)", 43200)
    clock_skew: int = _check(lambda v: 0 <= v <= 600, "must be between 0 and 600", 60)
    # Compatibility profile of relying parties that name none (sts.relying_parties.profiles).
    profile: str = _check(
        lambda v: v in PROFILE_NAMES, "must be strict, wso2, adfs or cxf", "strict"
    )
    default_relying_party: str = ""


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """``[lifecycle]``: the token store behind Validate, Renew and Cancel."""

    # Keep a record of every issued token (needed by Renew, Cancel and Validate of encrypted tokens).
    token_store: bool = True
    # How long after expiry a token issued with Renewing OK="true" may still be renewed (CXF caps at 30 min).
    renew_after_expiry: int = _check(lambda v: 0 <= v <= 86400, "must be between 0 and 86400", 1800)
    # A renewal chain ends this many seconds after the first token of it was issued.
    max_renewal_age: int = _positive(86400)
    # Roles allowed to call Validate, Renew and Cancel; empty: [security] allowed_roles.
    allowed_roles: tuple[str, ...] = ()
    # Certificates of other issuers whose assertions Validate accepts (besides this STS's own).
    trusted_issuer_certs: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """``[security]``: who may use the STS and how callers are authenticated."""

    scenario: str = _check(lambda v: v == "UTOverTransport", "must be UTOverTransport", "UTOverTransport")
    # Every scenario served, each on its own endpoint; empty: [scenario] alone (the key above, kept working).
    scenarios: tuple[str, ...] = _check(
        lambda v: len(set(v)) == len(v) and set(v) <= set(SCENARIO_NAMES),
        "must list distinct names of " + ", ".join(SCENARIO_NAMES),
        (),
    )
    # X.509 clients: a CA whose certificates authenticate users named by client_cert_user (cn, san_email,
    # san_dns), its CRL, and rsa-sha1/sha1 signatures from legacy clients (off: SHA-256 and up only).
    client_ca_file: Path | None = None
    client_crl_file: Path | None = None
    client_cert_user: str = _check(
        lambda v: v in CLIENT_CERT_USER_RULES, "must be cn, san_email, san_dns or empty", ""
    )
    legacy_sha1: bool = False
    # Encrypted requests (SigEncr, SgnEncrUsername): AES-CBC request data (Rampart and WSS4J 1.6 defaults; off:
    # AES-GCM only), the cipher of encrypted answers, and a signed but unencrypted UsernameToken on SgnEncrUsername
    # over plain HTTP (off: only over TLS).
    inbound_cbc: bool = False
    response_cipher: str = _check(lambda v: v in RESPONSE_CIPHERS, "must be aes256-gcm or aes256-cbc", "aes256-gcm")
    accept_plain_ut: bool = False
    # PublicKey tokens on unsigned (UsernameToken) requests: only keys registered to the caller, unless this
    # restores the old rule (any key in trusted_client_certs, possession never proven).
    legacy_unproven_use_key: bool = False
    allowed_roles: tuple[str, ...] = ("admin",)
    allowed_domains: tuple[str, ...] = (ALL_DOMAINS,)
    # A name without DOMAIN/ goes to PRIMARY; "chain" tries PRIMARY, then each [[user_stores]] domain in order,
    # as WSO2 does (one wrong password then reaches every directory).
    unqualified_login: str = _check(lambda v: v in ("primary", "chain"), "must be primary or chain", "primary")
    timestamp_ttl: int = _positive(300)
    timestamp_future_ttl: int = _non_negative(60)
    min_nonce_bytes: int = _check(lambda v: 8 <= v <= 64, "must be between 8 and 64", 16)
    bsp_strict: bool = False
    credential_cache_ttl: int = _check(lambda v: 0 <= v <= 300, "must be between 0 and 300", 60)
    max_password_bytes: int = _check(lambda v: 8 <= v <= 4096, "must be between 8 and 4096", 1024)
    # Password spraying: after this many failed authentications from one client address within
    # client_failure_window seconds, that address is refused without a password check (0 disables).
    client_failure_limit: int = _non_negative(20)
    client_failure_window: int = _positive(60)
    # With legacy_unproven_use_key only: certificates whose keys unsigned PublicKey requests may bind (wst:UseKey).
    trusted_client_certs: Path = Path("keystore/clients")
    # Client addresses never throttled (local tools and health checks); loopback by default.
    client_failure_exempt: tuple[str, ...] = _networks(("127.0.0.1", "::1"))

    @property
    def enabled_scenarios(self) -> tuple[str, ...]:
        """The scenarios served: ``scenarios``, else the single ``scenario``."""
        return self.scenarios or (self.scenario,)


@dataclass(frozen=True, slots=True)
class LockoutSettings:
    """``[lockout]``: account lockout after consecutive failed password checks (WSO2's policy)."""

    max_failures: int = _positive(5)
    duration: int = _positive(300)
    max_duration: int = _positive(86400)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """``[store]``: the database of durable state (SQLite file or PostgreSQL) and the relying-party truststore."""

    # sqlite: one file for one host; postgresql: shared by every node (sts.stores.postgres).
    backend: str = _check(lambda v: v in STORE_BACKENDS, "must be sqlite or postgresql", "sqlite")
    database: Path = Path("sts.db")
    truststore: Path = Path("keystore/truststore")
    # Key that encrypts the recoverable secrets of users enrolled for PasswordDigest.
    credential_key: Path = Path("keystore/credentials.key")
    busy_timeout_ms: int = _positive(5000)
    # PostgreSQL: a libpq URL or key=value string, best without the password, which comes from password_file,
    # from $PGPASSWORD or ~/.pgpass (libpq), or with the whole URL from $STS_STORE_URL.
    url: str = ""
    password_file: Path | None = None
    # CA certificate(s) the server's certificate must chain to (sslmode=verify-full); empty: the system's CAs.
    ca_file: Path | None = None
    connect_timeout: int = _check(lambda v: 2 <= v <= 60, "must be between 2 and 60 (libpq's floor is 2)", 2)
    statement_timeout_ms: int = _check(lambda v: 10 <= v <= 60000, "must be between 10 and 60000", 1000)
    # Client-side bound on one store operation (wait for a connection + statements): the only bound that holds
    # when the server hangs, because the server enforces statement_timeout itself.
    operation_timeout_ms: int = _check(lambda v: 50 <= v <= 60000, "must be between 50 and 60000", 2000)
    pool_size: int = _check(lambda v: 1 <= v <= 64, "must be between 1 and 64", 4)
    pool_timeout_ms: int = _check(lambda v: 10 <= v <= 30000, "must be between 10 and 30000", 500)


CACHE_PASSWORD_ENV = "STS_CACHE_PASSWORD"  # noqa: S105 - the variable name, not a secret


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """``[cache]``: where replay nonces, lockout and throttle counters and credential-cache versions live.

    ``local``: in the ``[store]`` database (one host). ``redis``: in a Redis shared by several nodes; the password
    never needs to sit in this file (``password_file``, or ``$STS_CACHE_PASSWORD``).
    """

    backend: str = _check(lambda v: v in ("local", "redis"), "must be local or redis", "local")
    url: str = _check(
        lambda v: v == "" or v.startswith(("redis://", "rediss://")), "must be a redis:// or rediss:// URL", ""
    )
    password_file: Path | None = None
    # CA certificates that verify the server of a rediss:// URL (empty: the system's); the host name is checked.
    ca_file: Path | None = None
    # Every command fails (closed) after this long: a hung Redis never holds a request longer (never retried).
    socket_timeout_ms: int = _check(lambda v: 10 <= v <= 10000, "must be between 10 and 10000", 300)
    connect_timeout_ms: int = _check(lambda v: 10 <= v <= 10000, "must be between 10 and 10000", 300)
    # Connections per worker process (a worker runs [server] threads requests at once).
    max_connections: int = _check(lambda v: 1 <= v <= 256, "must be between 1 and 256", 4)


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """``[logging]``: structured logs (JSON lines by default) to stderr or a file."""

    level: str = _check(
        lambda v: v.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "must be DEBUG|INFO|WARNING|ERROR", "INFO"
    )
    format: str = _check(lambda v: v in ("json", "text"), "must be json or text", "json")
    file: Path | None = None
    access_log: bool = True
    # Access log lines as json or text; empty: the same as ``format``.
    access_log_format: str = _check(lambda v: v in ("", "json", "text"), "must be json, text or empty", "")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]``: the Prometheus endpoint (sts.metrics)."""

    enabled: bool = True
    # Empty: served by the workers on the main port at ``path``, to the ``allow`` networks only. HOST:PORT: served
    # by the gunicorn master on a listener of its own (any path), e.g. a management interface.
    bind: str = _check(lambda v: v == "" or is_host_port(v), f"must be {_HOST_PORT} or empty", "")
    path: str = _check(lambda v: v.startswith("/") and len(v) > 1, "must be a path such as /metrics", "/metrics")
    allow: tuple[str, ...] = _networks(("127.0.0.1", "::1"))


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration, immutable once loaded."""

    config_path: Path
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    issuer: IssuerSettings = field(default_factory=IssuerSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    lockout: LockoutSettings = field(default_factory=LockoutSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    user_stores: tuple[UserStoreSettings, ...] = ()
    trusted_issuers: tuple[TrustedIssuerSettings, ...] = ()
    # Keys of an older sts.toml the loader ignored because their value changes nothing (sts.config.loader)
    notices: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the file are resolved against."""
        return self.config_path.parent


def config_warnings(settings: Settings) -> list[str]:
    """Valid but risky combinations, for ``sts check-config`` and the start-up log."""
    warnings = [*settings.notices, *(warning for store in settings.user_stores for warning in store.warnings)]
    if settings.security.unqualified_login == "chain" and len(settings.user_stores) > 1:
        warnings.append(
            "security.unqualified_login = \"chain\": a name without DOMAIN/ is tried on every user store in turn,"
            " so one wrong password reaches every directory (and counts towards each one's own lockout)"
        )
    return warnings + _proxy_warnings(settings)


def hsm_scenario_problems(settings: Settings) -> list[str]:
    """Scenarios that cannot be served while ``[issuer] pkcs11_module`` keeps the signing key in an HSM: the server
    refuses to start with them, so ``sts check-config``, ``sts reload`` and ``sts serve`` report them first."""
    if settings.issuer.pkcs11_module is None:
        return []
    served = [name for name in KEY_OUTSIDE_TOKEN_SCENARIOS if name in settings.security.enabled_scenarios]
    if not served:
        return []
    return [
        f"security.scenarios: {', '.join(served)} sign or decrypt with the STS key outside the token; this cannot be"
        " served while [issuer] pkcs11_module keeps the signing key in an HSM"
    ]


def tls_problems(settings: Settings) -> list[str]:
    """``[server]`` TLS settings gunicorn would not serve as written: with only one of ``tls_cert`` and ``tls_key``
    it listens in plain HTTP while the WSDL, the metadata and ``sts serve`` announce https URLs, and a
    ``tls_client_ca_file`` without them asks no client for a certificate. ``sts check-config`` reports them, and
    ``sts serve``, ``sts reload`` and the gunicorn master refuse them."""
    server = settings.server
    problems = []
    if (server.tls_cert is None) != (server.tls_key is None):
        problems.append("server: tls_cert and tls_key go together")
    if server.tls_client_ca_file is not None and server.tls_cert is None:
        problems.append("server.tls_client_ca_file: needs tls_cert and tls_key (gunicorn terminating TLS)")
    return problems


def _proxy_warnings(settings: Settings) -> list[str]:
    security = settings.security
    exempt = AddressSet.parse(security.client_failure_exempt)
    if security.client_failure_limit and exempt.covers_loopback() and not settings.server.trusted_proxies:
        # Behind nginx on the same host every request comes from 127.0.0.1: spray throttling would be off.
        return [
            "security.client_failure_exempt exempts loopback and server.trusted_proxies is empty: if a proxy on"
            " this host forwards the clients, they all arrive from loopback and are never throttled; list the proxy"
            " in trusted_proxies (its X-Forwarded-For then names each client) or remove loopback from the exemptions"
        ]
    return []


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "limits": LimitSettings,
    "issuer": IssuerSettings,
    "tokens": TokenSettings,
    "security": SecuritySettings,
    "lockout": LockoutSettings,
    "lifecycle": LifecycleSettings,
    "store": StoreSettings,
    "cache": CacheSettings,
    "logging": LoggingSettings,
    "metrics": MetricsSettings,
}
