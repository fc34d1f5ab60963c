-- Client certificates registered to built-in users (`sts user add-cert`): X.509 client authentication. Found by
-- what a wsse:SecurityTokenReference can name (WSS X.509 Token Profile 1.1 §3.2): SHA-256 of the DER (the key),
-- SHA-1 thumbprint, SubjectKeyIdentifier, issuer and serial number.
-- IF NOT EXISTS: a database that went back to version 1 by hand (tests do) may hold the table already.
CREATE TABLE IF NOT EXISTS user_certificates (
    sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha1 BLOB NOT NULL,
    ski BLOB,
    issuer BLOB NOT NULL,
    serial TEXT NOT NULL,
    der BLOB NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS user_certificates_sha1 ON user_certificates(sha1);
CREATE INDEX IF NOT EXISTS user_certificates_ski ON user_certificates(ski);
CREATE INDEX IF NOT EXISTS user_certificates_issuer_serial ON user_certificates(issuer, serial);
CREATE INDEX IF NOT EXISTS user_certificates_user ON user_certificates(user_id);
