-- Client certificates registered to built-in users (`sts user add-cert`): X.509 client authentication. Found by
-- what a wsse:SecurityTokenReference can name (WSS X.509 Token Profile 1.1 §3.2): SHA-256 of the DER (the key),
-- SHA-1 thumbprint, SubjectKeyIdentifier, issuer and serial number.
CREATE TABLE user_certificates (
    sha256 TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha1 BYTEA NOT NULL,
    ski BYTEA,
    issuer BYTEA NOT NULL,
    serial TEXT NOT NULL,
    der BYTEA NOT NULL,
    added DOUBLE PRECISION NOT NULL
);
CREATE INDEX user_certificates_sha1 ON user_certificates(sha1);
CREATE INDEX user_certificates_ski ON user_certificates(ski);
CREATE INDEX user_certificates_issuer_serial ON user_certificates(issuer, serial);
CREATE INDEX user_certificates_user ON user_certificates(user_id);
