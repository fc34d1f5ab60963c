"""The commented ``sts.toml`` written by ``sts init``. Every key is optional; shown values are the defaults."""

TEMPLATE = """\
# sts.toml: configuration of the WS-Trust Security Token Service.
# Relative paths are resolved against the directory of this file. Every value can be overridden from the
# environment as STS_<TABLE>_<KEY>, e.g. STS_SERVER_BIND=0.0.0.0:9443 or STS_LIMITS_MAX_BODY_BYTES=131072
# (lists as comma-separated values). Secrets never go in this file.

[server]
# Address gunicorn listens on. The SOAP endpoint is /services/wso2carbon-sts (WSO2's path).
bind = {bind}
# Worker processes; 0 means one per CPU core.
workers = 0
# TLS certificate and key served by gunicorn. Remove both to serve plain HTTP behind a TLS-terminating proxy.
tls_cert = "keystore/tls.crt.pem"
tls_key = "keystore/tls.key.pem"
# TLS-terminating proxies (IP addresses or networks such as "10.0.0.0/24"; "*" is refused) whose
# X-Forwarded-Proto/-Ssl/-Protocol and X-Forwarded-For headers are believed. Behind them the client address is
# the right-most X-Forwarded-For hop that is not one of them.
trusted_proxies = []
# Accept PasswordText over plain HTTP (never in production; for loopback tests only).
allow_insecure_transport = false
# TLS client certificates (the certificatetransport scenario): a PEM bundle (client CA and registered self-signed
# client certificates) makes gunicorn ask every client for one (optional; _required for a dedicated listener).
# tls_client_ca_file = "keystore/tls-clients.pem"
# tls_client_cert_required = false
# Behind a proxy: the header carrying the verified client certificate (URL-encoded PEM, nginx's
# $ssl_client_escaped_cert), believed only from trusted_proxies.
# client_cert_header = "X-SSL-Client-Cert"
# URL clients use (written into the WSDL); empty: derived from bind and TLS.
public_url = ""
# Seconds a worker may go silent before gunicorn restarts it, and the grace period of a shutdown.
timeout = 30
graceful_timeout = 30
# Seconds an idle kept-alive connection stays open.
keepalive = 5
# Each worker reads requests in an event loop and serves complete ones: with 1 thread in the loop's own thread
# (no hand-off: the cheapest per token), with more on this many request threads; idle and slow clients never
# hold a thread. A client has read_timeout seconds for the TLS handshake and its whole request; a worker holds
# at most worker_connections connections. More threads overlap waits inside requests (directory or database
# round trips), and each can hold an argon2id verification's 19 MiB.
threads = 1
read_timeout = 10
worker_connections = 1000
# HTTP status of SOAP 1.2 Sender faults: 400 (SOAP 1.2 HTTP binding) or 500 (what AD FS answers).
soap12_sender_status = 400

[limits]
# Request body cap in bytes (hard maximum 1048576); bigger bodies get HTTP 413 before any parsing.
max_body_bytes = 65536
max_depth = 32
max_elements = 2000
max_attributes = 32
max_namespaces = 256
max_text_bytes = 65536

[issuer]
# Issuer name (entity id) written into every assertion.
name = {issuer}
signing_key = "keystore/sts-signing.key.pem"
signing_cert = "keystore/sts-signing.crt.pem"
# An encrypted signing key's passphrase comes from $STS_SIGNING_KEY_PASSPHRASE or from this file:
# signing_key_passphrase_file = "/run/secrets/sts-signing-key-passphrase"
# Certificates of retired signing keys whose tokens Validate still accepts during a rollover:
previous_certs = []

[tokens]
# Lifetime of issued tokens in seconds (WSO2: 300); per relying party override with `sts rp update`.
lifetime = 300
# Upper bound for any lifetime (12 h).
max_lifetime = 43200
# NotBefore is back-dated by this many seconds for relying parties whose clock runs behind.
clock_skew = 60
# Compatibility profile for relying parties that name none: strict | wso2 | adfs | cxf (see README).
# It sets the token type used when a request names none, the token-type spelling, and encryption defaults,
# and the endpoint's rules published in ?wsdl and mex (every profile requires a wsu:Timestamp).
profile = "strict"
# Relying party used when AppliesTo is missing or unknown; empty: such requests are refused.
default_relying_party = ""

[security]
# WS-SecurityPolicy scenario published in the WSDL (policies/): UTOverTransport (WSO2 scenario 1).
scenario = "UTOverTransport"
# A caller must hold at least one of these roles (WSO2: "admin").
allowed_roles = ["admin"]
# User-store domains whose users may authenticate: ALL-USER-STORE-DOMAINS or names such as "PRIMARY".
allowed_domains = ["ALL-USER-STORE-DOMAINS"]
# A name without DOMAIN/ goes to PRIMARY; "chain" tries PRIMARY, then each [[user_stores]] domain in order
# (as WSO2 does; one wrong password then reaches every directory).
unqualified_login = "primary"
# wsu:Timestamp and UsernameToken Created freshness, in seconds (WSS4J defaults).
timestamp_ttl = 300
timestamp_future_ttl = 60
# Minimum decoded size of a UsernameToken Nonce.
min_nonce_bytes = 16
# WS-I BSP strict mode: refuse a Password without Type.
bsp_strict = false
# Seconds a successful PasswordText check is remembered per worker (0 disables).
credential_cache_ttl = 60
max_password_bytes = 1024
# Certificates (PEM/DER) whose keys unsigned PublicKey requests may bind via wst:UseKey, only with
# legacy_unproven_use_key = true (otherwise: certificates registered with `sts user add-cert`).
trusted_client_certs = "keystore/clients"
# Password spraying: failed authentications allowed per client address within the window (0 disables).
client_failure_limit = 20
client_failure_window = 60
# Addresses or networks never throttled (loopback by default). A proxy on this host that is not listed in
# [server] trusted_proxies makes every client loopback, hence never throttled: list the proxy there.
client_failure_exempt = ["127.0.0.1", "::1"]

[lockout]
# Consecutive failed password checks before an account is locked, and for how long (doubling each time).
max_failures = 5
duration = 300
max_duration = 86400

[lifecycle]
# Keep a record of every issued token: Renew, Cancel and Validate of still-encrypted tokens need it.
token_store = true
# Seconds after expiry a token issued with <wst:Renewing OK="true"/> may still be renewed.
renew_after_expiry = 1800
# A renewal chain ends this many seconds after its first token was issued.
max_renewal_age = 86400
# Roles allowed to Validate, Renew and Cancel; empty: [security] allowed_roles.
allowed_roles = []
# Certificates of other issuers whose assertions Validate accepts, besides this STS's own.
trusted_issuer_certs = []

[store]
# sqlite: the database file below, for one host. postgresql: the database at url, shared by every node; the password
# is not written here: password_file, $PGPASSWORD or ~/.pgpass (or the whole URL in $STS_STORE_URL).
backend = "{store_backend}"
database = "sts.db"
url = {store_url}
password_file = {store_password_file}
# CA certificate of the PostgreSQL server (TLS with sslmode=verify-full); empty: the system's CAs (not needed for
# a server on loopback).
ca_file = {store_ca_file}
# Seconds to connect; server-side limit per statement; client-side bound per store operation (holds also when the
# server hangs); connections per worker process and how long a request waits for one.
connect_timeout = 2
statement_timeout_ms = 1000
operation_timeout_ms = 2000
pool_size = 4
pool_timeout_ms = 500
# Relying-party certificates (PEM), referenced by `sts rp add --cert`.
truststore = "keystore/truststore"
# 256-bit key (mode 0600) encrypting the recoverable secrets of users enrolled for PasswordDigest.
credential_key = "keystore/credentials.key"

[cache]
# Replay nonces, lockout and throttle counters, credential-cache versions: "local" (the database above, one
# host) or "redis" (shared by several nodes). The Redis password comes from $STS_CACHE_PASSWORD or password_file.
backend = "local"
# url = "rediss://sts@redis.example.internal:6380/0"
# password_file = "/run/secrets/sts-redis-password"
# ca_file = "keystore/redis-ca.pem"
# Each Redis command fails (closed) after this long, never retried.
# socket_timeout_ms = 300
# connect_timeout_ms = 300

[logging]
# DEBUG | INFO | WARNING | ERROR; json (one object a line) or text; file empty: stderr.
level = "INFO"
format = "json"
file = ""
# gunicorn's access log (never bodies) goes to the same place; access_log_format: json, text, or empty for
# the same as format.
access_log = true
access_log_format = ""

[metrics]
# Prometheus metrics (README: "Health, readiness and metrics"). bind empty: GET <path> on the main port, to the
# allow networks only; bind = "HOST:PORT": on a listener of its own in the gunicorn master instead.
enabled = true
bind = ""
path = "/metrics"
allow = ["127.0.0.1", "::1"]

# Directory user stores (LDAP, Active Directory): one [[user_stores]] table per domain, with WSO2's
# deployment.toml user-store keys (README: "Directory user stores"). Check with `sts user-store test DOMAIN`.
# [[user_stores]]
# domain_name = "CORP"
# type = "active_directory"                 # or read_only_ldap
# connection_url = ["ldaps://dc1.corp.example.com", "ldaps://dc2.corp.example.com"]
# connection_name = "CN=svc-sts,CN=Users,DC=corp,DC=example,DC=com"
# connection_password_file = "corp-ldap.pw" # or $STS_USER_STORE_CORP_PASSWORD
# user_search_base = "CN=Users,DC=corp,DC=example,DC=com"
# group_search_base = "DC=corp,DC=example,DC=com"
# ca_file = "keystore/corp-ca.pem"
# netbios_name = "CORP"                     # active_directory only: CORP\\alice logs in as CORP/alice
"""
