-- The schema of the releases before versioned migrations (they kept its version in meta.schema_version = 1).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    canonical TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    digest_secret BLOB,
    enabled INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (domain, canonical)
);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, canonical TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);
CREATE TABLE IF NOT EXISTS user_claims (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    position INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, uri, position)
);
CREATE TABLE IF NOT EXISTS relying_parties (
    address TEXT PRIMARY KEY,
    canonical TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replay (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS replay_expires ON replay(expires);
CREATE TABLE IF NOT EXISTS counters (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    level INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0,
    expires REAL NOT NULL,
    PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    relying_party TEXT NOT NULL,
    token_type TEXT NOT NULL,
    not_before REAL NOT NULL,
    not_on_or_after REAL NOT NULL,
    status TEXT NOT NULL,
    renewable INTEGER NOT NULL,
    renew_after_expiry INTEGER NOT NULL,
    digest TEXT NOT NULL,
    data TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_expires ON tokens(expires);
CREATE INDEX IF NOT EXISTS tokens_digest ON tokens(digest);
CREATE INDEX IF NOT EXISTS tokens_chain ON tokens(json_extract(data, '$.chain'));
INSERT INTO meta(key, value) VALUES ('schema_version', '1') ON CONFLICT(key) DO NOTHING;
