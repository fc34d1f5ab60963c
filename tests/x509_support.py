"""X.509 client material for the signed-request tests: client certificates (registered or CA-issued, good and
bad), a client CA with its CRL, and signed RST envelopes made with the STS's own client library."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

from sts.client.options import Connection, IssueOptions, PublicKey, SigningCredential
from sts.client.rst import build_issue_request
from sts.wstrust.tokentypes import SamlVersion

_KEYS: list[rsa.RSAPrivateKey] = []


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA key (2048-bit ones are reused from a small pool: generating them is the slow part)."""
    if bits != 2048:
        return rsa.generate_private_key(65537, bits)
    key = rsa.generate_private_key(65537, 2048)
    _KEYS.append(key)
    return key


@dataclass
class Client:
    """A client certificate, its key, and the PEM files written for them."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    cert_file: Path
    key_file: Path


def make_cert(
    common_name: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
    days: tuple[int, int] = (-1, 30),
    key_usage: str = "digitalSignature",
    extended: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.CLIENT_AUTH,
    ca: bool = False,
    serial: int | None = None,
    subject: x509.Name | None = None,
    key_cert_sign: bool | None = None,
    crl_sign: bool | None = None,
    crl_points: Sequence[str] = (),
) -> x509.Certificate:
    """A certificate for ``key``: self-signed, or signed by ``issuer`` (certificate, key); ``subject`` replaces
    the default ``O=sts tests, CN=<common_name>``; ``key_cert_sign`` and ``crl_sign`` override KeyUsage keyCertSign
    and cRLSign (default: set exactly for a CA); ``crl_points`` are CRLDistributionPoints URIs."""
    now = dt.datetime.now(dt.UTC)
    subject = subject or x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sts tests"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if issuer is not None:  # RFC 5280 §4.2.1.1 (OpenSSL's X509_STRICT, Python 3.13's default, insists on it)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    usage = {"digital_signature": False, "content_commitment": False, "key_encipherment": False,
             "data_encipherment": False, "key_agreement": False,
             "key_cert_sign": ca if key_cert_sign is None else key_cert_sign,
             "crl_sign": ca if crl_sign is None else crl_sign,
             "encipher_only": False, "decipher_only": False}
    if key_usage == "digitalSignature":
        usage["digital_signature"] = True
    elif key_usage == "keyEncipherment":
        usage["key_encipherment"] = True
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    if crl_points:
        points = [x509.DistributionPoint([x509.UniformResourceIdentifier(uri)], None, None, None) for uri in crl_points]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    if extended is not None and not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([extended]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def printable_name(common_name: str, organization: str = "sts tests") -> x509.Name:
    """``O=<organization>, CN=<common_name>`` encoded as PrintableString, as Java's keytool (and .NET's
    certificate tools) write names; cryptography writes UTF8String unless told."""
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization, _type=_ASN1Type.PrintableString),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name, _type=_ASN1Type.PrintableString),
    ])


def undecodable_name_der(cert: x509.Certificate, which: str = "issuer") -> bytes:
    """``cert``'s DER with a byte of its issuer's or subject's CN (UTF8String, self-signed: the same text in both,
    the issuer first) made 0xFF, which is no UTF-8: the certificate still loads, the name raises when read."""
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    first = der.find(value.encode())
    where = first if which == "issuer" else der.find(value.encode(), first + 1)
    assert where > 0
    der[where] = 0xFF
    return bytes(der)


def write_client(directory: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> Client:
    """Write ``name.crt.pem`` and ``name.key.pem`` to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{name}.crt.pem", directory / f"{name}.key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Client(cert, key, cert_file, key_file)


def make_crl(
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey],
    revoked: list[int],
    next_update_days: int = 7,
    *,
    this_update_hours: int = -1,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    entry_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> bytes:
    """A PEM CRL by ``ca`` listing ``revoked`` serial numbers, with the CRL ``extensions`` and, on every entry, the
    ``entry_extensions`` given as (extension, critical)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[0].subject)
        .last_update(now + dt.timedelta(hours=this_update_hours))
        .next_update(now + dt.timedelta(days=next_update_days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for serial in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - dt.timedelta(minutes=5))
        for extension, critical in entry_extensions:
            entry = entry.add_extension(extension, critical=critical)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca[1], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def signed_rst(
    url: str,
    client: Client,
    *,
    applies_to: str = "https://localhost:8443/demo-rp/",
    sign_to: bool = False,
    use_key: x509.Certificate | None = None,
    cafile: Path | None = None,
    token_type: SamlVersion | None = None,
) -> etree._Element:
    """A signed Issue request (the STS's own client library), parsed, so that tests can take it apart."""
    connection = Connection(url, "", cafile=cafile, signing=SigningCredential(client.cert, client.key, sign_to))
    key = PublicKey(use_key) if use_key is not None else None
    built = build_issue_request(IssueOptions(connection, applies_to=applies_to, token_type=token_type, key=key), "")
    return etree.fromstring(built.body)
