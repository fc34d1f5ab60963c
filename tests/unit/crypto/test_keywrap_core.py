"""Holder-of-key material (sts.crypto.keywrap): the proof key wrapped for the relying party, and the client's UseKey.

The wrapped key is opened independently of the STS: with ``cryptography`` and the RP private key using the OAEP
parameters the ``EncryptionMethod`` announces (XML Encryption 1.0 §5.4.2, 1.1 §5.5.2), and as the content key of an
``xenc:EncryptedData`` by python-xmlsec and the ``xmlsec1`` CLI (what RP stacks built on libxmlsec1 do). UseKey
forms follow WS-Trust 1.3 §9.2 (``wst:UseKey`` holding a token or a ``ds:KeyInfo``) and XML Signature §4.5.2.2
(``RSAKeyValue``, CryptoBinary §4.0.1).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree

from sts import ns
from sts.crypto import keygen
from sts.crypto.algorithms import DataCipher, KeyTransport
from sts.crypto.keywrap import (
    X509V3,
    TrustedClientKeys,
    UseKeyRejected,
    accept_client_key,
    read_use_key,
    unwrap_key,
    wrap_key,
)
from tests.token_checks import decrypt_with_python_xmlsec, decrypt_with_xmlsec1

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DS, XENC = ns.DS, ns.XENC
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
OAEP_PARAMETERS = {
    KeyTransport.RSA_OAEP_MGF1P: hashes.SHA1,
    KeyTransport.RSA_OAEP: hashes.SHA256,
}


def _certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    not_before: dt.datetime = T0 - dt.timedelta(days=1),
    not_after: dt.datetime = T0 + dt.timedelta(days=365),
    cn: str = "client",
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _oaep(transport: KeyTransport) -> padding.OAEP:
    digest = OAEP_PARAMETERS[transport]()
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


@pytest.fixture(scope="module")
def rp_key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(2048)


@pytest.fixture(scope="module")
def rp_cert(rp_key: rsa.RSAPrivateKey) -> x509.Certificate:
    return keygen.self_signed_certificate(rp_key, "relying party")


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(2048)


@pytest.fixture(scope="module")
def client_cert(client_key: rsa.RSAPrivateKey) -> x509.Certificate:
    return _certificate(client_key)


@pytest.fixture
def registered(tmp_path: Path, client_cert: x509.Certificate) -> TrustedClientKeys:
    """The client's certificate registered by the operator (PEM, as ``sts`` writes it)."""
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "client.crt.pem").write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    return TrustedClientKeys(clients)


# --- wrap_key: xenc:EncryptedKey for the relying party --------------------------------------------------------------


@pytest.mark.parametrize("transport", list(KeyTransport), ids=lambda t: t.name)
@pytest.mark.parametrize("size", [16, 32, 64])
def test_wrapped_key_opens_with_the_announced_oaep_parameters(
    rp_key: rsa.RSAPrivateKey, rp_cert: x509.Certificate, transport: KeyTransport, size: int
) -> None:
    proof_key = os.urandom(size)
    encrypted = wrap_key(rp_cert, proof_key, transport)
    method = encrypted.find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None and method.get("Algorithm") == transport.value
    cipher = base64.b64decode(encrypted.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue") or "")
    assert len(cipher) == rp_key.key_size // 8  # one RSA block
    assert rp_key.decrypt(cipher, _oaep(transport)) == proof_key


def test_xmlenc11_oaep_is_really_sha256(rp_key: rsa.RSAPrivateKey, rp_cert: x509.Certificate) -> None:
    """The xmlenc11 variant does not merely say SHA-256: the SHA-1 parameters of mgf1p do not open it."""
    encrypted = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP)
    cipher = base64.b64decode(encrypted.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue") or "")
    with pytest.raises(ValueError):
        rp_key.decrypt(cipher, _oaep(KeyTransport.RSA_OAEP_MGF1P))


def test_mgf1p_method_names_the_sha1_oaep_digest_and_no_mgf(rp_cert: x509.Certificate) -> None:
    """rsa-oaep-mgf1p fixes MGF1 with SHA-1 (XML Encryption 1.0 §5.4.2): the only parameter is ds:DigestMethod."""
    method = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP_MGF1P).find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None
    assert [(child.tag, child.get("Algorithm")) for child in method] == [
        (f"{{{DS}}}DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1"),
    ]


def test_xmlenc11_method_names_sha256_digest_and_mgf(rp_cert: x509.Certificate) -> None:
    """xmlenc11#rsa-oaep defaults to SHA-1 (XML Encryption 1.1 §5.5.2): both parameters must be explicit."""
    method = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP).find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None
    assert [(child.tag, child.get("Algorithm")) for child in method] == [
        (f"{{{DS}}}DigestMethod", "http://www.w3.org/2001/04/xmlenc#sha256"),
        (f"{{{ns.XENC11}}}MGF", "http://www.w3.org/2009/xmlenc11#mgf1sha256"),
    ]


def test_encrypted_key_names_the_rp_certificate_and_stands_alone(rp_cert: x509.Certificate) -> None:
    encrypted = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP_MGF1P)
    assert encrypted.tag == f"{{{XENC}}}EncryptedKey"
    assert [etree.QName(child).localname for child in encrypted] == ["EncryptionMethod", "KeyInfo", "CipherData"]
    certificates = encrypted.findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    assert [base64.b64decode(c.text or "") for c in certificates] == [_der(rp_cert)]
    # Serialized on its own (as inside an assertion's SubjectConfirmation) it parses with the same meaning.
    reparsed = etree.fromstring(etree.tostring(encrypted))
    assert etree.tostring(reparsed, method="c14n", exclusive=True) == etree.tostring(
        encrypted, method="c14n", exclusive=True
    )


def test_two_wraps_of_one_key_differ(rp_key: rsa.RSAPrivateKey, rp_cert: x509.Certificate) -> None:
    """OAEP is randomized: the same proof key never yields the same CipherValue twice."""
    proof_key = os.urandom(32)
    first, second = (wrap_key(rp_cert, proof_key, KeyTransport.RSA_OAEP_MGF1P) for _ in range(2))
    path = f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue"
    assert first.findtext(path) != second.findtext(path)
    assert unwrap_key(first, rp_key) == unwrap_key(second, rp_key) == proof_key


def test_wrap_refuses_a_certificate_without_an_rsa_key() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="^relying-party certificate without an RSA key$"):
        wrap_key(_certificate(ec_key), os.urandom(32), KeyTransport.RSA_OAEP_MGF1P)


def _encrypted_data(encrypted_key: etree._Element, content_key: bytes, plaintext: bytes) -> etree._Element:
    """An ``xenc:EncryptedData`` (AES-256-GCM, XML Encryption 1.1 §5.2.4) whose content key is ``encrypted_key``."""
    nonce = os.urandom(12)
    data = etree.Element(f"{{{XENC}}}EncryptedData", nsmap={"xenc": XENC}, Type=f"{XENC}Element")
    etree.SubElement(data, f"{{{XENC}}}EncryptionMethod", Algorithm=DataCipher.AES256_GCM.value)
    etree.SubElement(data, f"{{{DS}}}KeyInfo", nsmap={"ds": DS}).append(encrypted_key)
    cipher_data = etree.SubElement(data, f"{{{XENC}}}CipherData")
    etree.SubElement(cipher_data, f"{{{XENC}}}CipherValue").text = _b64(
        nonce + AESGCM(content_key).encrypt(nonce, plaintext, None)
    )
    return data


@pytest.fixture(scope="module")
def rp_key_file(tmp_path_factory: pytest.TempPathFactory, rp_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path_factory.mktemp("rp") / "rp.key.pem"
    keygen.write_private_key(path, rp_key)
    return path


ASSERTION = f'<saml2:Assertion xmlns:saml2="{ns.SAML2}" ID="_k1"><saml2:Issuer>sts</saml2:Issuer></saml2:Assertion>'


@pytest.mark.parametrize("transport", list(KeyTransport), ids=lambda t: t.name)
def test_python_xmlsec_unwraps_the_key(rp_cert: x509.Certificate, rp_key_file: Path, transport: KeyTransport) -> None:
    content_key = os.urandom(32)
    data = _encrypted_data(wrap_key(rp_cert, content_key, transport), content_key, ASSERTION.encode())
    assert etree.fromstring(decrypt_with_python_xmlsec(data, rp_key_file)).get("ID") == "_k1"


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 CLI not installed (make system-test-deps)")
def test_xmlsec1_cli_unwraps_the_mgf1p_key(rp_cert: x509.Certificate, rp_key_file: Path) -> None:
    """libxmlsec1 1.2.x, as RPs on Debian 12 run it, understands the default transport (interop R31)."""
    content_key = os.urandom(32)
    data = _encrypted_data(wrap_key(rp_cert, content_key, KeyTransport.RSA_OAEP_MGF1P), content_key, ASSERTION.encode())
    assert etree.fromstring(decrypt_with_xmlsec1(etree.tostring(data), rp_key_file)).get("ID") == "_k1"


# --- unwrap_key: the relying party's side ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", list(KeyTransport), ids=lambda t: t.name)
def test_unwrap_opens_an_independently_made_encrypted_key(
    rp_key: rsa.RSAPrivateKey, transport: KeyTransport
) -> None:
    proof_key = os.urandom(32)
    encrypted = etree.fromstring(
        f'<xenc:EncryptedKey xmlns:xenc="{XENC}"><xenc:EncryptionMethod Algorithm="{transport.value}"/>'
        f"<xenc:CipherData><xenc:CipherValue>"
        f"{_b64(rp_key.public_key().encrypt(proof_key, _oaep(transport)))}"
        f"</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>"
    )
    assert unwrap_key(encrypted, rp_key) == proof_key


@pytest.mark.parametrize(
    "remove",
    [f"{{{XENC}}}EncryptionMethod", f"{{{XENC}}}CipherData"],
    ids=["no_method", "no_cipher_data"],
)
def test_unwrap_refuses_a_malformed_encrypted_key(
    rp_key: rsa.RSAPrivateKey, rp_cert: x509.Certificate, remove: str
) -> None:
    encrypted = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP_MGF1P)
    child = encrypted.find(remove)
    assert child is not None
    encrypted.remove(child)
    with pytest.raises(ValueError, match="^malformed EncryptedKey$"):
        unwrap_key(encrypted, rp_key)


def test_unwrap_refuses_rsa_1_5(rp_key: rsa.RSAPrivateKey, rp_cert: x509.Certificate) -> None:
    """RSA 1.5 is outside the KeyTransport allow-list (Bleichenbacher): never attempted."""
    encrypted = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP_MGF1P)
    method = encrypted.find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None
    method.set("Algorithm", RSA_1_5)
    with pytest.raises(ValueError, match="is not a valid KeyTransport"):
        unwrap_key(encrypted, rp_key)


def test_unwrap_with_another_key_fails(rp_cert: x509.Certificate, client_key: rsa.RSAPrivateKey) -> None:
    encrypted = wrap_key(rp_cert, os.urandom(32), KeyTransport.RSA_OAEP_MGF1P)
    with pytest.raises(ValueError):
        unwrap_key(encrypted, client_key)


def use_key_info(use_key_child: etree._Element, now: dt.datetime, trusted: TrustedClientKeys) -> etree._Element:
    """What Issue does with a UseKey: read it, accept it now, name it in the assertion."""
    key = read_use_key(use_key_child)
    accept_client_key(key, now, trusted)
    return key.key_info()


# --- use_key_info: the three accepted UseKey forms ------------------------------------------------------------------


def _bst(cert_der: bytes, value_type: str = X509V3) -> etree._Element:
    encoded = _b64(cert_der)
    wrapped = "\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))  # line-wrapped, as many clients send
    return etree.fromstring(
        f'<wsse:BinarySecurityToken xmlns:wsse="{ns.WSSE}" ValueType="{value_type}" '
        f'EncodingType="{ns.BASE64_BINARY}">\n{wrapped}\n</wsse:BinarySecurityToken>'
    )


def _x509_key_info(*encoded: str) -> etree._Element:
    certificates = "".join(f"<ds:X509Certificate>{text}</ds:X509Certificate>" for text in encoded)
    return etree.fromstring(f'<ds:KeyInfo xmlns:ds="{DS}"><ds:X509Data>{certificates}</ds:X509Data></ds:KeyInfo>')


def _rsa_key_value(modulus: str, exponent: str, extra: str = "") -> etree._Element:
    return etree.fromstring(
        f'<ds:KeyInfo xmlns:ds="{DS}">{extra}<ds:KeyValue><ds:RSAKeyValue>{modulus}{exponent}'
        "</ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo>"
    )


def _modulus(value: bytes) -> str:
    return f"<ds:Modulus>{_b64(value)}</ds:Modulus>"


def _exponent(value: bytes) -> str:
    return f"<ds:Exponent>{_b64(value)}</ds:Exponent>"


def _n_bytes(key: rsa.RSAPrivateKey) -> bytes:
    n = key.public_key().public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _only_certificate(key_info: etree._Element) -> bytes:
    assert key_info.tag == f"{{{DS}}}KeyInfo"
    assert [etree.QName(child).localname for child in key_info.iter()] == ["KeyInfo", "X509Data", "X509Certificate"]
    text = key_info.findtext(f"{{{DS}}}X509Data/{{{DS}}}X509Certificate") or ""
    assert text == "".join(text.split())  # re-encoded without the client's line breaks
    return base64.b64decode(text)


def test_binary_security_token_becomes_an_x509_key_info(
    registered: TrustedClientKeys, client_cert: x509.Certificate
) -> None:
    assert _only_certificate(use_key_info(_bst(_der(client_cert)), T0, registered)) == _der(client_cert)


def test_key_info_certificate_becomes_an_x509_key_info(
    registered: TrustedClientKeys, client_cert: x509.Certificate
) -> None:
    info = use_key_info(_x509_key_info(f"\n  {_b64(_der(client_cert))}\n"), T0, registered)
    assert _only_certificate(info) == _der(client_cert)


def test_rsa_key_value_is_rebuilt_canonically(registered: TrustedClientKeys, client_key: rsa.RSAPrivateKey) -> None:
    """CryptoBinary has no leading zero octets (XML Signature §4.0.1): a sign octet and line breaks are dropped,
    and nothing but the key (no KeyName the client chose) reaches the assertion."""
    padded = _b64(b"\x00" + _n_bytes(client_key))
    element = _rsa_key_value(
        f"<ds:Modulus>\n{padded[:60]}\n{padded[60:]}\n</ds:Modulus>",
        _exponent(b"\x00\x01\x00\x01"),
        extra="<ds:KeyName>admin</ds:KeyName>",
    )
    info = use_key_info(element, T0, registered)
    assert [etree.QName(child).localname for child in info.iter()] == [
        "KeyInfo", "KeyValue", "RSAKeyValue", "Modulus", "Exponent",
    ]
    value = f"{{{DS}}}KeyValue/{{{DS}}}RSAKeyValue"
    assert base64.b64decode(info.findtext(f"{value}/{{{DS}}}Modulus") or "") == _n_bytes(client_key)
    assert info.findtext(f"{value}/{{{DS}}}Exponent") == "AQAB"  # 65537


def test_unregistered_rsa_key_value_refused(registered: TrustedClientKeys, rp_key: rsa.RSAPrivateKey) -> None:
    element = _rsa_key_value(_modulus(_n_bytes(rp_key)), _exponent(b"\x01\x00\x01"))
    with pytest.raises(UseKeyRejected, match="^UseKey is not a registered client key$"):
        use_key_info(element, T0, registered)


def test_unregistered_certificate_refused(registered: TrustedClientKeys, rp_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UseKeyRejected, match="^UseKey is not a registered client key$"):
        use_key_info(_bst(_der(_certificate(rp_key))), T0, registered)


def test_nothing_is_registered_without_a_directory(client_cert: x509.Certificate) -> None:
    with pytest.raises(UseKeyRejected, match="^UseKey is not a registered client key$"):
        use_key_info(_bst(_der(client_cert)), T0, TrustedClientKeys(None))


@pytest.fixture(scope="module")
def small_key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(1024)


def test_short_rsa_key_value_refused(registered: TrustedClientKeys, small_key: rsa.RSAPrivateKey) -> None:
    element = _rsa_key_value(_modulus(_n_bytes(small_key)), _exponent(b"\x01\x00\x01"))
    with pytest.raises(UseKeyRejected, match="^UseKey must be an RSA key of at least 2048 bits$"):
        use_key_info(element, T0, registered)


def test_short_rsa_certificate_refused(registered: TrustedClientKeys, small_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UseKeyRejected, match="^UseKey: RSA key of 1024 bits; at least 2048 required$"):
        use_key_info(_bst(_der(_certificate(small_key))), T0, registered)


def test_certificate_without_an_rsa_key_refused(registered: TrustedClientKeys) -> None:
    cert = _certificate(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UseKeyRejected, match="^UseKey: only RSA keys are supported$"):
        use_key_info(_x509_key_info(_b64(_der(cert))), T0, registered)


@pytest.mark.parametrize(
    ("not_before", "not_after", "message"),
    [
        (T0 - dt.timedelta(days=30), T0, "UseKey: certificate expired on 2030-01-01"),
        (T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=30), "UseKey: certificate not valid before 2030-01-02"),
    ],
    ids=["expired", "not_yet_valid"],
)
def test_certificate_outside_its_validity_refused(
    tmp_path: Path, client_key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime, message: str
) -> None:
    """Even a registered certificate: the one sent in UseKey is checked at ``now`` too."""
    cert = _certificate(client_key, not_before, not_after)
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "c.der").write_bytes(_der(cert))
    with pytest.raises(UseKeyRejected) as raised:
        use_key_info(_bst(_der(cert)), T0, TrustedClientKeys(clients))
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("modulus", "exponent"),
    [
        ("", _exponent(b"\x01\x00\x01")),
        (_modulus(b"\x01" * 256), ""),
        (_modulus(b"\x01" * 256) * 2, _exponent(b"\x01\x00\x01")),
        ("<ds:Modulus>not base64!</ds:Modulus>", _exponent(b"\x01\x00\x01")),
        (_modulus(b"\xc1" * 256), _exponent(b"\x02")),  # even exponent: not an RSA public key
        (_modulus(b"\xc1" * 256), _exponent(b"\x01")),  # exponent 1
    ],
    ids=["no_modulus", "no_exponent", "two_moduli", "bad_base64", "even_exponent", "exponent_one"],
)
def test_malformed_rsa_key_value_refused(registered: TrustedClientKeys, modulus: str, exponent: str) -> None:
    with pytest.raises(UseKeyRejected, match="^malformed RSAKeyValue$"):
        use_key_info(_rsa_key_value(modulus, exponent), T0, registered)


def test_binary_security_token_of_another_value_type_refused(
    registered: TrustedClientKeys, client_cert: x509.Certificate
) -> None:
    pkipath = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1"
    with pytest.raises(UseKeyRejected, match="^BinarySecurityToken is not an X.509 v3 certificate$"):
        use_key_info(_bst(_der(client_cert), pkipath), T0, registered)


@pytest.mark.parametrize("count", [0, 2])
def test_key_info_needs_exactly_one_certificate(
    registered: TrustedClientKeys, client_cert: x509.Certificate, count: int
) -> None:
    with pytest.raises(UseKeyRejected, match="^KeyInfo must carry exactly one X509Certificate$"):
        use_key_info(_x509_key_info(*[_b64(_der(client_cert))] * count), T0, registered)


@pytest.mark.parametrize(
    "element",
    [
        f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"><wsse:Reference URI="#x"/></wsse:SecurityTokenReference>',
        f'<saml2:Assertion xmlns:saml2="{ns.SAML2}" ID="_a"/>',
        f'<ds:X509Data xmlns:ds="{DS}"/>',
    ],
    ids=["str", "assertion", "bare_x509data"],
)
def test_other_use_key_forms_refused(registered: TrustedClientKeys, element: str) -> None:
    with pytest.raises(UseKeyRejected, match="^unsupported UseKey form$"):
        use_key_info(etree.fromstring(element), T0, registered)


def test_oversized_certificate_refused_before_decoding(registered: TrustedClientKeys) -> None:
    """A 16 KiB DER certificate is the limit: longer base64 is refused without being decoded."""
    with pytest.raises(UseKeyRejected, match="^certificate too large$"):
        use_key_info(_x509_key_info("A" * (16 * 1024 * 4 // 3 + 8)), T0, registered)


@pytest.mark.parametrize(
    "encoded",
    ["not base64!", _b64(b"\x30\x03\x02\x01\x01"), _b64(os.urandom(300))],
    ids=["bad_base64", "not_a_certificate", "random_bytes"],
)
def test_malformed_certificate_refused(registered: TrustedClientKeys, encoded: str) -> None:
    with pytest.raises(UseKeyRejected, match="^malformed certificate$"):
        use_key_info(_x509_key_info(encoded), T0, registered)


# --- TrustedClientKeys: the operator's folder of client certificates ------------------------------------------------


def test_no_directory_trusts_nothing(client_key: rsa.RSAPrivateKey) -> None:
    assert TrustedClientKeys(None).contains(client_key.public_key(), T0) is False


def test_missing_directory_trusts_nothing(tmp_path: Path, client_key: rsa.RSAPrivateKey) -> None:
    assert TrustedClientKeys(tmp_path / "absent").contains(client_key.public_key(), T0) is False


def test_removed_directory_stops_trusting(
    tmp_path: Path, client_key: rsa.RSAPrivateKey, client_cert: x509.Certificate
) -> None:
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "client.der").write_bytes(_der(client_cert))
    trusted = TrustedClientKeys(clients)
    assert trusted.contains(client_key.public_key(), T0) is True
    shutil.rmtree(clients)
    assert trusted.contains(client_key.public_key(), T0) is False
    clients.mkdir()  # and comes back when the folder does
    (clients / "client.der").write_bytes(_der(client_cert))
    assert trusted.contains(client_key.public_key(), T0) is True


def test_unreadable_and_foreign_files_are_skipped(
    tmp_path: Path, client_key: rsa.RSAPrivateKey, client_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey
) -> None:
    """Junk, a private key, a sub-folder and an EC certificate neither count nor hide the valid certificate."""
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "README").write_text("client certificates go here\n")
    (clients / "broken.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    keygen.write_private_key(clients / "oops.key.pem", rp_key)
    (clients / "subfolder").mkdir()
    ec_cert = _certificate(ec.generate_private_key(ec.SECP256R1()), cn="ec client")
    (clients / "ec.crt.pem").write_bytes(ec_cert.public_bytes(serialization.Encoding.PEM))
    (clients / "zz-client.crt.pem").write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    trusted = TrustedClientKeys(clients)
    assert trusted.contains(client_key.public_key(), T0) is True
    assert trusted.contains(rp_key.public_key(), T0) is False  # a private key file registers nothing


def test_certificates_are_reread_when_the_folder_changes(
    tmp_path: Path, client_key: rsa.RSAPrivateKey, client_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey
) -> None:
    clients = tmp_path / "clients"
    clients.mkdir()
    trusted = TrustedClientKeys(clients)
    assert trusted.contains(client_key.public_key(), T0) is False
    (clients / "client.der").write_bytes(_der(client_cert))  # added: counts without a restart
    assert trusted.contains(client_key.public_key(), T0) is True
    other = _certificate(rp_key, cn="replacement")
    (clients / "client.der").write_bytes(_der(other))  # replaced in place: the old key stops counting
    assert trusted.contains(client_key.public_key(), T0) is False
    assert trusted.contains(rp_key.public_key(), T0) is True
    (clients / "client.der").unlink()
    assert trusted.contains(rp_key.public_key(), T0) is False


def test_each_dated_problem_is_logged_once(
    tmp_path: Path, client_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clients = tmp_path / "clients"
    clients.mkdir()
    cert = _certificate(client_key, T0 - dt.timedelta(days=100), T0 - dt.timedelta(days=1))
    (clients / "old.der").write_bytes(_der(cert))
    trusted = TrustedClientKeys(clients)
    with caplog.at_level(logging.WARNING, logger="sts.clients"):
        for _ in range(3):
            assert trusted.contains(client_key.public_key(), T0) is False
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "client certificate old.der: expired on 2029-12-31; its key is refused for UseKey"),
    ]
