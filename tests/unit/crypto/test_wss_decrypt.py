"""Inbound WS-Security decryption (sts.crypto.wss_decrypt): allow-lists, the unwrap that never fails loudly, data
decryption that never raises, and the SignedInfo/Timestamp check run before anything is decrypted."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree

from sts import ns
from sts.crypto import wss_decrypt as d
from sts.crypto.wss_sign import HmacSigner, WssSigner, thumbprint_reference
from sts.crypto.wss_signature import AlgorithmRefused

KEY = rsa.generate_private_key(65537, 2048)


def _cert(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))


CERT = _cert(KEY)


def _oaep(digest: type[hashes.HashAlgorithm] = hashes.SHA1) -> padding.OAEP:
    return padding.OAEP(padding.MGF1(hashes.SHA1()), digest(), None)  # noqa: S303 - rsa-oaep-mgf1p


# --- allow-lists -------------------------------------------------------------------------------------------------


def test_key_transport_allows_rsa_oaep_only() -> None:
    assert d.key_transport(d.RSA_OAEP_MGF1P).digest is hashes.SHA1
    assert d.key_transport(d.RSA_OAEP_MGF1P, "http://www.w3.org/2001/04/xmlenc#sha256").digest is hashes.SHA256
    assert d.key_transport(d.RSA_OAEP, "", d.XENC11 + "mgf1sha256").mgf is hashes.SHA256
    for algorithm, digest, mgf in [(d.RSA_15, "", ""), ("", "", ""), (d.RSA_OAEP_MGF1P, "-", ""),
                                   (d.RSA_OAEP_MGF1P, "", d.XENC11 + "mgf1sha256"),
                                   (d.RSA_OAEP, "http://www.w3.org/2001/04/xmldsig-more#md5", "")]:
        with pytest.raises(AlgorithmRefused):
            d.key_transport(algorithm, digest, mgf)


def test_data_ciphers_gcm_always_cbc_only_when_allowed_tripledes_never() -> None:
    assert d.data_cipher(d.AES256_GCM, allow_cbc=False).key_length == 32
    assert d.data_cipher(d.AES128_GCM, allow_cbc=False).key_length == 16
    with pytest.raises(AlgorithmRefused):
        d.data_cipher(d.AES256_CBC, allow_cbc=False)
    assert d.data_cipher(d.AES256_CBC, allow_cbc=True).key_length == 32
    with pytest.raises(AlgorithmRefused):
        d.data_cipher(d.TRIPLEDES_CBC, allow_cbc=True)


# --- key unwrap --------------------------------------------------------------------------------------------------


def test_unwrap_returns_the_key_or_a_random_one_of_the_expected_length() -> None:
    unwrapper = d.KeyUnwrapper(KEY)
    secret = secrets.token_bytes(32)
    wrapped = KEY.public_key().encrypt(secret, _oaep())
    transport = d.key_transport(d.RSA_OAEP_MGF1P)
    assert unwrapper.unwrap(wrapped, transport, 32) == secret
    # a mangled OAEP block, a wrong OAEP digest, a key of another length, a short block: random keys, no error
    mangled = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    sha256 = d.key_transport(d.RSA_OAEP_MGF1P, "http://www.w3.org/2001/04/xmlenc#sha256")
    for block, used, length in [(mangled, transport, 32), (wrapped, sha256, 32), (wrapped, transport, 16),
                                (wrapped[:-1], transport, 32)]:
        first, second = unwrapper.unwrap(block, used, length), unwrapper.unwrap(block, used, length)
        assert len(first) == length and first != second and secret not in (first, second)


# --- data --------------------------------------------------------------------------------------------------------


def test_gcm_decrypts_and_a_flipped_tag_fails_without_raising() -> None:
    key, iv = secrets.token_bytes(32), secrets.token_bytes(12)
    value = iv + AESGCM(key).encrypt(iv, b"<x/>", None)
    cipher = d.data_cipher(d.AES256_GCM, allow_cbc=False)
    assert d.decrypt_data(cipher, key, value) == d.Decrypted(b"<x/>", True)
    result = d.decrypt_data(cipher, key, value[:-1] + bytes([value[-1] ^ 1]))
    assert not result.ok and len(result.plaintext) == len(b"<x/>")
    assert not d.decrypt_data(cipher, key[:16], value).ok
    assert not d.decrypt_data(cipher, key, value[:20]).ok


def _cbc(key: bytes, padded: bytes) -> bytes:
    iv = secrets.token_bytes(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def test_cbc_checks_only_the_last_padding_byte_and_hands_back_a_buffer_either_way() -> None:
    key = secrets.token_bytes(32)
    cipher = d.data_cipher(d.AES256_CBC, allow_cbc=True)
    data = b"<wst:RequestSecurityToken/>"  # 27 bytes: 5 bytes of padding, random filler (Santuario style)
    good = d.decrypt_data(cipher, key, _cbc(key, data + secrets.token_bytes(4) + b"\x05"))
    assert good == d.Decrypted(data, True)
    for last in (0, 17, 255):
        bad = d.decrypt_data(cipher, key, _cbc(key, data + secrets.token_bytes(4) + bytes([last])))
        assert not bad.ok and len(bad.plaintext) == 31  # the parse that follows runs on a buffer all the same
    assert not d.decrypt_data(cipher, key, secrets.token_bytes(40)).ok  # not a multiple of the block size
    assert not d.decrypt_data(cipher, key, secrets.token_bytes(16)).ok  # an IV and no block


# --- the check before decryption ---------------------------------------------------------------------------------


def _signed(signer: WssSigner | HmacSigner) -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.fromstring(
        f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsu="{ns.WSU}"><s:Header>'
        f'<wsse:Security xmlns:wsse="{ns.WSSE}"><wsu:Timestamp wsu:Id="ts"><wsu:Created>x</wsu:Created>'
        "</wsu:Timestamp></wsse:Security></s:Header><s:Body/></s:Envelope>"
    )
    security, timestamp = root[0][0], root[0][0][0]
    signature = signer.sign(security, [timestamp], thumbprint_reference(CERT))
    return signature, timestamp, signature.find(f".//{{{ns.DS}}}Reference")  # type: ignore[return-value]


def _value(signature: etree._Element) -> bytes:
    return d.base64_value(signature.findtext(f"{{{ns.DS}}}SignatureValue") or "") or b""


def test_rsa_signed_info_and_timestamp_digest_verify_before_decryption() -> None:
    signature, timestamp, reference = _signed(WssSigner(KEY))
    method = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert d.signed_info_verifies(signature, CERT, method, _value(signature))
    assert d.reference_digest_matches(reference, timestamp)
    assert not d.signed_info_verifies(signature, _cert(rsa.generate_private_key(65537, 2048)), method,
                                      _value(signature))
    assert not d.signed_info_verifies(signature, b"a symmetric key", method, _value(signature))
    timestamp[0].text = "y"
    assert not d.reference_digest_matches(reference, timestamp)


def test_hmac_signed_info_verifies_with_the_key_only() -> None:
    key = secrets.token_bytes(32)
    signature, _, _ = _signed(HmacSigner(key))
    method = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
    assert d.signed_info_verifies(signature, key, method, _value(signature))
    assert not d.signed_info_verifies(signature, secrets.token_bytes(32), method, _value(signature))
    assert not d.signed_info_verifies(signature, CERT, method, _value(signature))  # an HMAC needs the key K
    assert not d.signed_info_verifies(signature, key, method, _value(signature)[:-1])  # truncated output
