"""WSO2 scenario 5 (SigEncr) and 8 (SgnEncrUsername) requests built in Python, for mutation tests.

WSS4J (tests/clients/wss4j.py) proves interoperability but cannot sign a message after it was tampered with; an
attacker can. :func:`build` makes a request the STS accepts, with hooks to change it before it is signed, before
it is encrypted and after both, so a mutant can still carry a valid signature (scenario 5: the client's key;
scenario 8: the key K the sender chose, which anyone can choose): shapes as WSS4J writes them (WSS 1.1 §8-9;
XML Encryption 1.1 §3-5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from tests.support import B64, PW_TEXT, S11, WSSE, WSU, now_text, rst_body

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
AES256_GCM, AES128_GCM = XENC11 + "aes256-gcm", XENC11 + "aes128-gcm"
AES256_CBC, AES128_CBC = XENC + "aes256-cbc", XENC + "aes128-cbc"
RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
THUMBPRINT = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
ENCRYPTED_KEY_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"
NSMAP = {"soapenv": S11, "wsse": WSSE, "wsu": WSU, "xenc": XENC, "ds": DS}
KEY_LENGTHS = {AES256_GCM: 32, AES128_GCM: 16, AES256_CBC: 32, AES128_CBC: 16}

Edit = Callable[[etree._Element], object]


def q(namespace: str, local: str) -> str:
    """Clark notation."""
    return f"{{{namespace}}}{local}"


@dataclass
class Sender:
    """Who sends: scenario 5 a client certificate and key; scenario 8 a user name and password."""

    certificate: x509.Certificate | None = None
    key: rsa.RSAPrivateKey | None = None
    username: str = ""
    password: str = ""


@dataclass
class Built:
    """A request: its tree, the key K it was encrypted (and, scenario 8, signed) with, its signature value."""

    root: etree._Element
    key: bytes
    signature_value: bytes = b""

    def xml(self) -> bytes:
        return etree.tostring(self.root)


@dataclass
class Options:
    """How to build: algorithms, what is signed and encrypted, and where to tamper."""

    cipher: str = AES256_GCM
    ut_cipher: str | None = None  # the UsernameToken's EncryptedData algorithm (default: ``cipher``)
    body: str = field(default_factory=rst_body)
    sign: tuple[str, ...] | None = None  # the wsu:Ids signed, "TS" the Timestamp's (default: TS, Body-1 [, UT-1])
    encrypt_ut: bool = True
    key: bytes | None = None  # K (default: random, the cipher's length)
    wrapped_key: bytes | None = None  # the EncryptedKey's CipherValue (default: K wrapped with RSA-OAEP)
    body_plaintext: bytes | None = None  # what is encrypted into the Body (default: its content as signed)
    ut_plaintext: bytes | None = None
    before_sign: Edit | None = None
    before_encrypt: Edit | None = None
    after: Edit | None = None
    sign_key: bytes | None = None  # scenario 8: the HMAC key (default: K)


def thumbprint(certificate: x509.Certificate) -> str:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(hashlib.sha1(der).digest()).decode()  # noqa: S324 - WSS ThumbprintSHA1


def c14n(element: etree._Element) -> bytes:
    """Exclusive c14n without comments, as the References and SignedInfo name it."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def encrypt(algorithm: str, key: bytes, plaintext: bytes) -> bytes:
    """IV ‖ ciphertext [‖ tag] (XML Encryption 1.1 §5.2.2, §5.2.4; CBC padding with random filler)."""
    if algorithm in (AES256_GCM, AES128_GCM):
        iv = os.urandom(12)
        return iv + AESGCM(key).encrypt(iv, plaintext, None)
    pad = 16 - len(plaintext) % 16
    padded = plaintext + secrets.token_bytes(pad - 1) + bytes([pad])
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def wrap(sts_certificate: x509.Certificate, key: bytes) -> bytes:
    """K wrapped with rsa-oaep-mgf1p (SHA-1 OAEP digest and MGF1, XML Encryption 1.1 §5.5.2)."""
    public = sts_certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    return public.encrypt(key, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))  # noqa: S303


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sub(parent: etree._Element, namespace: str, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, q(namespace, local), attrs)
    element.text = text
    return element


def _encrypted_key(security: etree._Element, sts_certificate: x509.Certificate, wrapped: bytes) -> etree._Element:
    key = _sub(security, XENC, "EncryptedKey", Id="EK-1")
    method = _sub(key, XENC, "EncryptionMethod", Algorithm=RSA_OAEP_MGF1P)
    _sub(method, DS, "DigestMethod", Algorithm="http://www.w3.org/2000/09/xmldsig#sha1")
    reference = _sub(_sub(key, DS, "KeyInfo"), WSSE, "SecurityTokenReference")
    _sub(reference, WSSE, "KeyIdentifier", thumbprint(sts_certificate), EncodingType=B64, ValueType=THUMBPRINT)
    _sub(_sub(key, XENC, "CipherData"), XENC, "CipherValue", _b64(wrapped))
    return key


def _timestamp(security: etree._Element) -> str:
    timestamp = _sub(security, WSU, "Timestamp")
    identifier = "TS-" + secrets.token_hex(8)  # a fresh SignedInfo per message, however alike (replay cache)
    timestamp.set(q(WSU, "Id"), identifier)
    _sub(timestamp, WSU, "Created", now_text())
    _sub(timestamp, WSU, "Expires", now_text(300))
    return identifier


def _username_token(security: etree._Element, sender: Sender) -> None:
    token = _sub(security, WSSE, "UsernameToken")
    token.set(q(WSU, "Id"), "UT-1")
    _sub(token, WSSE, "Username", sender.username)
    _sub(token, WSSE, "Password", sender.password, Type=PW_TEXT)
    _sub(token, WSSE, "Nonce", _b64(os.urandom(16)), EncodingType=B64)
    _sub(token, WSU, "Created", now_text())


def by_id(root: etree._Element, identifier: str) -> etree._Element:
    """The element whose Id or wsu:Id is ``identifier``."""
    for element in root.iter(etree.Element):
        if identifier in (element.get("Id"), element.get(q(WSU, "Id"))):
            return element
    raise KeyError(identifier)


def sign(root: etree._Element, ids: tuple[str, ...], method: str, key: rsa.RSAPrivateKey | bytes,
         key_info: Callable[[etree._Element], object]) -> bytes:
    """Append a ds:Signature over ``ids`` to the Security header; returns its value."""
    security = root.find(f"{q(S11, 'Header')}/{q(WSSE, 'Security')}")
    assert security is not None
    signature = _sub(security, DS, "Signature", Id="SIG-1")
    signed_info = _sub(signature, DS, "SignedInfo")
    _sub(signed_info, DS, "CanonicalizationMethod", Algorithm=EXC_C14N)
    _sub(signed_info, DS, "SignatureMethod", Algorithm=method)
    for identifier in ids:
        reference = _sub(signed_info, DS, "Reference", URI="#" + identifier)
        _sub(_sub(reference, DS, "Transforms"), DS, "Transform", Algorithm=EXC_C14N)
        _sub(reference, DS, "DigestMethod", Algorithm=SHA256)
        _sub(reference, DS, "DigestValue", _b64(hashlib.sha256(c14n(by_id(root, identifier))).digest()))
    data = c14n(signed_info)
    if isinstance(key, bytes):
        value = hmac.new(key, data, "sha256").digest()
    else:
        value = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    _sub(signature, DS, "SignatureValue", _b64(value))
    key_info(_sub(_sub(signature, DS, "KeyInfo"), WSSE, "SecurityTokenReference"))
    return value


def encrypted_data(identifier: str, kind: str, algorithm: str, cipher: bytes, *, key_info: bool = True
                   ) -> etree._Element:
    """An xenc:EncryptedData naming the EncryptedKey EK-1."""
    data = etree.Element(q(XENC, "EncryptedData"), Id=identifier, Type=XENC + kind, nsmap={"xenc": XENC})
    _sub(data, XENC, "EncryptionMethod", Algorithm=algorithm)
    if key_info:
        reference = _sub(_sub(data, DS, "KeyInfo"), WSSE, "SecurityTokenReference")
        _sub(reference, WSSE, "Reference", URI="#EK-1", ValueType=ENCRYPTED_KEY_TYPE)
    _sub(_sub(data, XENC, "CipherData"), XENC, "CipherValue", _b64(cipher))
    return data


def build(scenario: str, sts_certificate: x509.Certificate, sender: Sender, options: Options | None = None) -> Built:
    """A scenario 5 (``"s5"``) or 8 (``"s8"``) request: sign, then encrypt (WSS4J's order)."""
    o = options or Options()
    symmetric = scenario == "s8"
    key = o.key if o.key is not None else os.urandom(KEY_LENGTHS[o.cipher])
    root = etree.fromstring(
        f'<soapenv:Envelope xmlns:soapenv="{S11}"><soapenv:Header><wsse:Security xmlns:wsse="{WSSE}" '
        f'xmlns:wsu="{WSU}" soapenv:mustUnderstand="1"/></soapenv:Header><soapenv:Body xmlns:wsu="{WSU}" '
        f'wsu:Id="Body-1">{o.body}</soapenv:Body></soapenv:Envelope>'
    )
    security = root[0][0]
    wrapped = o.wrapped_key if o.wrapped_key is not None else wrap(sts_certificate, key)
    encrypted_key = _encrypted_key(security, sts_certificate, wrapped)
    if not symmetric:
        assert sender.certificate is not None
        token = _sub(security, WSSE, "BinarySecurityToken",
                     _b64(sender.certificate.public_bytes(serialization.Encoding.DER)), EncodingType=B64,
                     ValueType=X509V3)
        token.set(q(WSU, "Id"), "X509-1")
    timestamp = _timestamp(security)
    if symmetric:
        _username_token(security, sender)
    if o.before_sign:
        o.before_sign(root)
    ids = o.sign or (("TS", "Body-1", "UT-1") if symmetric else ("TS", "Body-1"))
    ids = tuple(timestamp if identifier == "TS" else identifier for identifier in ids)

    def key_info(reference: etree._Element) -> None:
        if symmetric:
            _sub(reference, WSSE, "Reference", URI="#EK-1", ValueType=ENCRYPTED_KEY_TYPE)
        else:
            _sub(reference, WSSE, "Reference", URI="#X509-1", ValueType=X509V3)

    signing_key: rsa.RSAPrivateKey | bytes | None = (o.sign_key or key) if symmetric else sender.key
    assert signing_key is not None
    value = sign(root, ids, HMAC_SHA256 if symmetric else RSA_SHA256, signing_key, key_info)
    if o.before_encrypt:
        o.before_encrypt(root)
    references = [("ED-Body", root[1])]
    body = root[1]
    plaintext = o.body_plaintext
    if plaintext is None:
        plaintext = (body.text or "").encode() + b"".join(etree.tostring(child) for child in body)
    for child in list(body):
        body.remove(child)
    body.text = None
    body.append(encrypted_data("ED-Body", "Content", o.cipher, encrypt(o.cipher, key, plaintext)))
    token = security.find(q(WSSE, "UsernameToken"))
    if symmetric and o.encrypt_ut and token is not None:
        ut_plaintext = o.ut_plaintext if o.ut_plaintext is not None else etree.tostring(token)
        ut_cipher = o.ut_cipher or o.cipher
        data = encrypted_data("ED-UT", "Element", ut_cipher, encrypt(ut_cipher, key, ut_plaintext))
        data.tail = token.tail
        security.replace(token, data)
        references.append(("ED-UT", security))
    reference_list = _sub(encrypted_key, XENC, "ReferenceList")
    for identifier, _ in references:
        _sub(reference_list, XENC, "DataReference", URI="#" + identifier)
    if o.after:
        o.after(root)
    return Built(root, key, value)
