-- IssuerSerial (WSS X.509 Token Profile 1.1 §3.2) finds its candidates by serial number alone and compares their
-- issuer names in the code as RFC 5280 §7.1 does: the DER of a name depends on its string types (PrintableString
-- from Java's keytool, UTF8String once ds:X509IssuerName is parsed back), so an index over it found nothing.
CREATE INDEX user_certificates_serial ON user_certificates(serial);
DROP INDEX user_certificates_issuer_serial;
