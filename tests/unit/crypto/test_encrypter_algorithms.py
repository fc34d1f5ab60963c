"""Token encryption per relying party (sts.crypto.encrypter), checked without the STS's own decrypter.

Every cipher and key transport is opened with ``cryptography`` alone: the content key with the RP private key and
the OAEP parameters the ``EncryptionMethod`` announces, the data per XML Encryption 1.1 §5.2.4 (AES-GCM:
IV ‖ ciphertext ‖ 128-bit tag) or §5.2.2 (AES-CBC: IV ‖ ciphertext, the last octet giving the padding length).
The xmlsec1 CLI (libxmlsec1 1.2.x, as Debian 12 RPs run it) and python-xmlsec open them too (interop R30-R32).
Also: the decrypter's refusal of non-element plaintext and the boot self-test's report of a broken encryption.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from sts import ns
from sts.crypto import keygen
from sts.crypto.algorithms import DataCipher, KeyTransport
from sts.crypto.decrypter import DecryptionRejected, TokenDecrypter
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keystore import KeyStore
from sts.crypto.selftest import run_selftest
from sts.crypto.signer import AssertionSigner
from tests.token_checks import decrypt_with_python_xmlsec, decrypt_with_xmlsec1

DS, XENC = ns.DS, ns.XENC
KEY_BYTES = {DataCipher.AES256_GCM: 32, DataCipher.AES128_GCM: 16, DataCipher.AES256_CBC: 32}
OAEP_DIGEST = {KeyTransport.RSA_OAEP_MGF1P: hashes.SHA1, KeyTransport.RSA_OAEP: hashes.SHA256}
MATRIX = [(cipher, transport) for cipher in DataCipher for transport in KeyTransport]
MATRIX_IDS = [f"{cipher.name}-{transport.name}" for cipher, transport in MATRIX]


@pytest.fixture(scope="module")
def sts_key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(2048)


@pytest.fixture(scope="module")
def sts_cert(sts_key: rsa.RSAPrivateKey) -> x509.Certificate:
    return keygen.self_signed_certificate(sts_key, "STS signing")


@pytest.fixture(scope="module")
def rp_key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(2048)


@pytest.fixture(scope="module")
def rp_cert(rp_key: rsa.RSAPrivateKey) -> x509.Certificate:
    return keygen.self_signed_certificate(rp_key, "relying party")


@pytest.fixture(scope="module")
def rp_key_file(tmp_path_factory: pytest.TempPathFactory, rp_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path_factory.mktemp("rp") / "rp.key.pem"
    keygen.write_private_key(path, rp_key)
    return path


def _assertion(assertion_id: str = "_enc1") -> etree._Element:
    assertion = etree.Element(
        f"{{{ns.SAML2}}}Assertion", nsmap={"saml2": ns.SAML2}, ID=assertion_id, Version="2.0",
        IssueInstant="2030-01-01T00:00:00Z",
    )
    etree.SubElement(assertion, f"{{{ns.SAML2}}}Issuer").text = "https://sts.example/"
    subject = etree.SubElement(assertion, f"{{{ns.SAML2}}}Subject")
    etree.SubElement(subject, f"{{{ns.SAML2}}}NameID").text = "alice@example.com"
    return assertion


@pytest.fixture(scope="module")
def signed(sts_key: rsa.RSAPrivateKey, sts_cert: x509.Certificate) -> etree._Element:
    return etree.fromstring(etree.tostring(AssertionSigner(sts_key, sts_cert).sign_saml2(_assertion())))


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def _content_key(encrypted: etree._Element, rp_key: rsa.RSAPrivateKey, transport: KeyTransport) -> bytes:
    wrapped = encrypted.findtext(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    assert wrapped is not None, "EncryptedKey must sit in EncryptedData/ds:KeyInfo (R32)"
    digest = OAEP_DIGEST[transport]()
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    return rp_key.decrypt(base64.b64decode(wrapped), oaep)


def _independent_decrypt(encrypted: etree._Element, rp_key: rsa.RSAPrivateKey, transport: KeyTransport) -> bytes:
    """Open an EncryptedData with cryptography only, following the EncryptionMethod it announces."""
    key = _content_key(encrypted, rp_key, transport)
    blob = base64.b64decode(encrypted.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue") or "")
    algorithm = encrypted.find(f"{{{XENC}}}EncryptionMethod").get("Algorithm")  # type: ignore[union-attr]
    if algorithm in (DataCipher.AES256_GCM, DataCipher.AES128_GCM):
        return AESGCM(key).decrypt(blob[:12], blob[12:], None)
    assert algorithm == DataCipher.AES256_CBC, algorithm
    decryptor = Cipher(algorithms.AES(key), modes.CBC(blob[:16])).decryptor()
    padded = decryptor.update(blob[16:]) + decryptor.finalize()
    assert 1 <= padded[-1] <= 16
    return padded[: -padded[-1]]


def _as_sent(encrypted: etree._Element) -> etree._Element:
    """The EncryptedData as a relying party receives it: serialized and parsed again. (lxml's ``find`` does not
    see some nodes libxmlsec1 creates, whose names are not interned in the document's dictionary.)"""
    return etree.fromstring(etree.tostring(encrypted))


def _encrypt(cert: x509.Certificate, element: etree._Element, cipher: DataCipher, transport: KeyTransport
             ) -> etree._Element:
    return _as_sent(TokenEncrypter(cert, EncryptionPolicy(cipher, transport)).encrypt(copy.deepcopy(element)))


@pytest.mark.parametrize(("cipher", "transport"), MATRIX, ids=MATRIX_IDS)
def test_cryptography_alone_recovers_the_exact_assertion(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey,
    cipher: DataCipher, transport: KeyTransport,
) -> None:
    encrypted = _encrypt(rp_cert, signed, cipher, transport)
    assert len(_content_key(encrypted, rp_key, transport)) == KEY_BYTES[cipher]
    plaintext = _independent_decrypt(encrypted, rp_key, transport)
    assert _c14n(etree.fromstring(plaintext)) == _c14n(signed)  # the signed bytes, so the signature still holds


@pytest.mark.parametrize(("cipher", "transport"), MATRIX, ids=MATRIX_IDS)
def test_python_xmlsec_decrypts_every_policy(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key_file: Path, cipher: DataCipher, transport: KeyTransport
) -> None:
    plaintext = decrypt_with_python_xmlsec(_encrypt(rp_cert, signed, cipher, transport), rp_key_file)
    assert _c14n(etree.fromstring(plaintext)) == _c14n(signed)


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 CLI not installed (make system-test-deps)")
@pytest.mark.parametrize("cipher", list(DataCipher), ids=lambda c: c.name)
def test_xmlsec1_cli_decrypts_the_default_transport(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key_file: Path, cipher: DataCipher
) -> None:
    """rsa-oaep-mgf1p with each data cipher opens with libxmlsec1 1.2.x (interop R31)."""
    encrypted = _encrypt(rp_cert, signed, cipher, KeyTransport.RSA_OAEP_MGF1P)
    plaintext = decrypt_with_xmlsec1(etree.tostring(encrypted), rp_key_file)
    assert _c14n(etree.fromstring(plaintext)) == _c14n(signed)


def test_xmlenc11_transport_is_really_sha256(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey
) -> None:
    encrypted = _encrypt(rp_cert, signed, DataCipher.AES256_GCM, KeyTransport.RSA_OAEP)
    with pytest.raises(ValueError):
        _content_key(encrypted, rp_key, KeyTransport.RSA_OAEP_MGF1P)


@pytest.mark.parametrize(("cipher", "transport"), MATRIX, ids=MATRIX_IDS)
def test_encrypted_data_shape(
    signed: etree._Element, rp_cert: x509.Certificate, cipher: DataCipher, transport: KeyTransport
) -> None:
    """Type Element; EncryptedKey inside EncryptedData/ds:KeyInfo naming the RP certificate (R32); compact (R1)."""
    encrypted = _encrypt(rp_cert, signed, cipher, transport)
    assert encrypted.tag == f"{{{XENC}}}EncryptedData"
    assert encrypted.get("Type") == f"{XENC}Element"
    assert [etree.QName(c).localname for c in encrypted] == ["EncryptionMethod", "KeyInfo", "CipherData"]
    key_info = encrypted[1]
    assert [c.tag for c in key_info] == [f"{{{XENC}}}EncryptedKey"]
    encrypted_key = key_info[0]
    assert [etree.QName(c).localname for c in encrypted_key] == ["EncryptionMethod", "KeyInfo", "CipherData"]
    assert encrypted_key[0].get("Algorithm") == transport.value
    certificates = encrypted_key.findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    assert [base64.b64decode(c.text or "") for c in certificates] == [rp_cert.public_bytes(serialization.Encoding.DER)]
    assert encrypted.find(f".//{{{DS}}}RetrievalMethod") is None
    for node in encrypted.iter():
        assert node.text is None or node.text.strip(), f"whitespace text in {node.tag}"
        assert node.tail is None or node.tail.strip(), f"whitespace tail after {node.tag}"


def _encrypt_as_before(cert: x509.Certificate, element: etree._Element, policy: EncryptionPolicy) -> etree._Element:
    """The encrypter before issue 19: a template built in the element's document per call, layout stripped after."""
    transform, bits = {
        DataCipher.AES256_GCM: (xmlsec.constants.TransformAes256Gcm, 256),
        DataCipher.AES128_GCM: (xmlsec.constants.TransformAes128Gcm, 128),
        DataCipher.AES256_CBC: (xmlsec.constants.TransformAes256Cbc, 256),
    }[policy.cipher]
    template = xmlsec.template.encrypted_data_create(element, transform, type=xmlsec.constants.TypeEncElement,
                                                     ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    method = encrypted_key.find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None
    if policy.key_transport is KeyTransport.RSA_OAEP:
        method.set("Algorithm", KeyTransport.RSA_OAEP.value)
        etree.SubElement(method, f"{{{DS}}}DigestMethod", nsmap={"ds": DS}).set(
            "Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256"
        )
        etree.SubElement(method, f"{{{ns.XENC11}}}MGF", nsmap={"xenc11": ns.XENC11}).set(
            "Algorithm", "http://www.w3.org/2009/xmlenc11#mgf1sha256"
        )
    manager = xmlsec.KeysManager()
    public_key = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    manager.add_key(xmlsec.Key.from_memory(public_key, xmlsec.constants.KeyDataFormatPem))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, bits, xmlsec.constants.KeyDataTypeSession)
    encrypted: etree._Element = context.encrypt_xml(template, element)
    for node in encrypted.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    key_info_x509 = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
    etree.SubElement(etree.SubElement(key_info_x509, f"{{{DS}}}X509Data"), f"{{{DS}}}X509Certificate").text = (
        base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    )
    method.addnext(key_info_x509)
    return encrypted


def _without_ciphertext(encrypted: etree._Element) -> bytes:
    copied = _as_sent(encrypted)
    for value in copied.iter(f"{{{XENC}}}CipherValue"):
        value.text = "ciphertext"
    return etree.tostring(copied)


@pytest.mark.parametrize(("cipher", "transport"), MATRIX, ids=MATRIX_IDS)
def test_output_is_what_the_per_call_template_gave(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey, cipher: DataCipher,
    transport: KeyTransport,
) -> None:
    """One template per encrypter, filled in a copy by python-xmlsec: the same document, ciphertexts apart."""
    policy = EncryptionPolicy(cipher, transport)
    encrypter = TokenEncrypter(rp_cert, policy)
    before = _without_ciphertext(_encrypt_as_before(rp_cert, copy.deepcopy(signed), policy))
    for _ in range(2):  # the cached template is not consumed by the first call
        encrypted = encrypter.encrypt(copy.deepcopy(signed))
        assert _without_ciphertext(encrypted) == before
        assert _c14n(etree.fromstring(_independent_decrypt(_as_sent(encrypted), rp_key, transport))) == _c14n(signed)


def test_template_is_built_once_per_encrypter(
    signed: etree._Element, rp_cert: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    encrypter = TokenEncrypter(rp_cert, EncryptionPolicy())

    def no_template(*args: object, **kwargs: object) -> etree._Element:
        raise AssertionError("EncryptedData template built per call")

    monkeypatch.setattr(xmlsec.template, "encrypted_data_create", no_template)
    for _ in range(2):
        assert encrypter.encrypt(copy.deepcopy(signed)).tag == f"{{{XENC}}}EncryptedData"


def test_no_keys_manager_on_the_token_path(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The content key is set on the context and wrapped by ``cryptography``: no xmlsec keys manager, whose key
    look-up and type checks cost about half of ``encrypt_xml`` per token, is built or consulted."""

    def no_manager(*args: object, **kwargs: object) -> None:
        raise AssertionError("xmlsec KeysManager on the token path")

    monkeypatch.setattr(xmlsec, "KeysManager", no_manager)
    for transport in KeyTransport:
        encrypted = TokenEncrypter(rp_cert, EncryptionPolicy(key_transport=transport)).encrypt(copy.deepcopy(signed))
        assert _c14n(etree.fromstring(_independent_decrypt(_as_sent(encrypted), rp_key, transport))) == _c14n(signed)


def test_each_token_gets_a_fresh_content_key(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey
) -> None:
    encrypter = TokenEncrypter(rp_cert, EncryptionPolicy())
    keys = {
        _content_key(_as_sent(encrypter.encrypt(copy.deepcopy(signed))), rp_key, KeyTransport.RSA_OAEP_MGF1P)
        for _ in range(3)
    }
    assert len(keys) == 3


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_building_an_encrypter_leaves_the_ca_environment_as_it_was(
    rp_cert: x509.Certificate, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "/nonexistent/ca-bundle")
    TokenEncrypter(rp_cert, EncryptionPolicy())
    assert os.environ[variable] == "/nonexistent/ca-bundle"
    monkeypatch.delenv(variable)
    TokenEncrypter(rp_cert, EncryptionPolicy())
    assert variable not in os.environ


# --- decrypter: plaintext that is not an element --------------------------------------------------------------------


def test_encrypted_data_without_an_element_type_is_refused(
    signed: etree._Element, rp_cert: x509.Certificate, rp_key: rsa.RSAPrivateKey
) -> None:
    """Without ``Type=#Element`` xmlsec returns raw octets, which are no token to inspect or verify."""
    encrypted = _encrypt(rp_cert, signed, DataCipher.AES256_GCM, KeyTransport.RSA_OAEP_MGF1P)
    del encrypted.attrib["Type"]
    with pytest.raises(DecryptionRejected, match="^decrypted content is not an element$"):
        TokenDecrypter(rp_key).decrypt(encrypted)


# --- boot self-test: a broken encryption is reported, not raised ----------------------------------------------------


class _BrokenEncryptionContext:
    """libxmlsec1 failing as it does with a mismatched libxml2 (python-xmlsec #320): every operation errors."""

    def __init__(self, *args: object) -> None:
        raise xmlsec.Error(1, "failed to create encryption context")


def test_selftest_reports_a_failing_encryption(
    sts_key: rsa.RSAPrivateKey, sts_cert: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    keystore = KeyStore(sts_key, sts_cert, (), ())
    assert run_selftest(keystore) == []
    monkeypatch.setattr(xmlsec, "EncryptionContext", _BrokenEncryptionContext)
    assert run_selftest(keystore) == ["self-test: encrypt/decrypt failed (Error)"]
