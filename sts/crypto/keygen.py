"""Key and certificate generation and import for ``sts init`` and ``sts rp`` (never on the request path)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sts.files import PUBLIC_FILE, SECRET_FILE, write_file

DEFAULT_BITS = 3072
# Re-exported so that modules outside sts.crypto never import cryptography.hazmat themselves.
RSAPrivateKey = rsa.RSAPrivateKey


def certificate_pem(cert: x509.Certificate) -> bytes:
    """A certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_der(cert: x509.Certificate) -> bytes:
    """A certificate as DER."""
    return cert.public_bytes(serialization.Encoding.DER)


def generate_rsa_key(bits: int = DEFAULT_BITS) -> rsa.RSAPrivateKey:
    """A fresh RSA key (65537 exponent)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed_certificate(
    key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    days: int = 825,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server_auth: bool = False,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed certificate for signing (digitalSignature) or TLS (serverAuth with SANs); valid from
    ``not_before`` (default: five minutes ago, for relying parties whose clocks run behind)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if dns_names or ip_addresses:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if server_auth:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(key, hashes.SHA256())


def load_pkcs12(path: Path, password: bytes | None) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Key and certificate from a PKCS#12 file."""
    key, cert, _chain = pkcs12.load_key_and_certificates(path.read_bytes(), password)
    if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
        raise ValueError("the PKCS#12 file must hold an RSA private key and its certificate")
    return key, cert


def load_private_key(path: Path, password: bytes | None) -> rsa.RSAPrivateKey:
    """An RSA private key from a PEM file."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys are supported")
    return key


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM key readable only by its owner (mode 0600, whatever the umask or the mode
    of a file it replaces; never through a symbolic link)."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_file(path, data, SECRET_FILE)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """Write a PEM certificate (public; mode 0644; never through a symbolic link)."""
    write_file(path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE)
