"""Tests for sts.crypto signer / verifier / encrypter / decrypter / selftest (catalogue I09, G07, G16, E01-E04, E06)."""

from __future__ import annotations

import base64
import copy
import dataclasses
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

import sts.crypto.decrypter as decrypter_module
import sts.crypto.verifier as verifier_module
from sts import ns
from sts.crypto import keygen
from sts.crypto.algorithms import DataCipher, KeyTransport
from sts.crypto.decrypter import DecryptionRejected, TokenDecrypter
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keystore import KeyStore
from sts.crypto.selftest import run_selftest
from sts.crypto.signer import AssertionSigner
from sts.crypto.verifier import SignatureRejected, precheck_signature, verify_enveloped

DS = ns.DS
SHA1_SIG = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"
INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
INCLUSIVE_C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
TRIPLEDES = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"


@dataclasses.dataclass(frozen=True)
class Keys:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    other_key: rsa.RSAPrivateKey
    other_cert: x509.Certificate
    rp_key: rsa.RSAPrivateKey
    rp_cert: x509.Certificate


@pytest.fixture(scope="module")
def keys() -> Keys:
    key, other, rp = (keygen.generate_rsa_key(2048) for _ in range(3))
    return Keys(
        key,
        keygen.self_signed_certificate(key, "STS signing"),
        other,
        keygen.self_signed_certificate(other, "attacker"),
        rp,
        keygen.self_signed_certificate(rp, "relying party"),
    )


@pytest.fixture(scope="module")
def signer(keys: Keys) -> AssertionSigner:
    return AssertionSigner(keys.key, keys.cert)


def _saml2(assertion_id: str = "_a2b3c4", name_id: str = "alice@example.com") -> etree._Element:
    assertion = etree.Element(
        ns.qn(ns.SAML2, "Assertion"), nsmap={"saml2": ns.SAML2}, ID=assertion_id, Version="2.0",
        IssueInstant="2026-01-01T12:00:00Z",
    )
    etree.SubElement(assertion, ns.qn(ns.SAML2, "Issuer")).text = "https://sts.example.com/"
    subject = etree.SubElement(assertion, ns.qn(ns.SAML2, "Subject"))
    etree.SubElement(subject, ns.qn(ns.SAML2, "NameID")).text = name_id
    conditions = etree.SubElement(assertion, ns.qn(ns.SAML2, "Conditions"))
    audience = etree.SubElement(etree.SubElement(conditions, ns.qn(ns.SAML2, "AudienceRestriction")),
                                ns.qn(ns.SAML2, "Audience"))
    audience.text = "https://rp.example.com/"
    return assertion


def _saml1(assertion_id: str = "_s11abc") -> etree._Element:
    assertion = etree.Element(
        ns.qn(ns.SAML1, "Assertion"), nsmap={"saml": ns.SAML1}, AssertionID=assertion_id, MajorVersion="1",
        MinorVersion="1", Issuer="https://sts.example.com/", IssueInstant="2026-01-01T12:00:00Z",
    )
    etree.SubElement(assertion, ns.qn(ns.SAML1, "Conditions"))
    statement = etree.SubElement(assertion, ns.qn(ns.SAML1, "AttributeStatement"))
    subject = etree.SubElement(statement, ns.qn(ns.SAML1, "Subject"))
    etree.SubElement(subject, ns.qn(ns.SAML1, "NameIdentifier")).text = "alice"
    return assertion


def _reparse(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


@pytest.fixture(scope="module")
def signed2(signer: AssertionSigner) -> etree._Element:
    return _reparse(signer.sign_saml2(_saml2()))


@pytest.fixture(scope="module")
def signed1(signer: AssertionSigner) -> etree._Element:
    return _reparse(signer.sign_saml11(_saml1()))


def _ds(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, namespaces={"ds": DS})
    assert found is not None, path
    return found


# --- signer placement and algorithms ------------------------------------------------------------------------------


def test_saml2_signature_right_after_issuer(signed2: etree._Element) -> None:
    tags = [etree.QName(child).localname for child in signed2]
    assert tags == ["Issuer", "Signature", "Subject", "Conditions"]
    assert signed2[1].tag == ns.qn(DS, "Signature")
    assert len(signed2.findall(f".//{{{DS}}}Signature")) == 1


def test_saml2_signature_algorithms(signed2: etree._Element) -> None:
    signature = signed2[1]
    assert _ds(signature, "ds:SignedInfo/ds:CanonicalizationMethod").get("Algorithm") == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    assert _ds(signature, "ds:SignedInfo/ds:SignatureMethod").get("Algorithm") == (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    references = signature.findall("ds:SignedInfo/ds:Reference", namespaces={"ds": DS})
    assert len(references) == 1
    assert references[0].get("URI") == "#_a2b3c4"
    assert [t.get("Algorithm") for t in references[0].findall("ds:Transforms/ds:Transform", {"ds": DS})] == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    assert _ds(references[0], "ds:DigestMethod").get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert signature.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", {"ds": DS}) is not None


def test_saml2_signer_leaves_no_placeholder(signed2: etree._Element) -> None:
    assert signed2[1].get("Id") is None
    assert b"placeholder" not in etree.tostring(signed2)


def test_saml2_without_issuer_refused(signer: AssertionSigner) -> None:
    assertion = etree.Element(ns.qn(ns.SAML2, "Assertion"), ID="_x")
    with pytest.raises(ValueError):
        signer.sign_saml2(assertion)


def test_saml11_signature_is_last_child(signed1: etree._Element) -> None:
    tags = [etree.QName(child).localname for child in signed1]
    assert tags == ["Conditions", "AttributeStatement", "Signature"]
    reference = _ds(signed1[-1], "ds:SignedInfo/ds:Reference")
    assert reference.get("URI") == "#_s11abc"


# --- verify_enveloped ---------------------------------------------------------------------------------------------


def test_verify_saml2_with_pinned_cert(signed2: etree._Element, keys: Keys) -> None:
    result = verify_enveloped(signed2, "ID", (keys.cert,))
    assert result.get("ID") == "_a2b3c4"
    assert result.findtext(f".//{{{ns.SAML2}}}NameID") == "alice@example.com"
    assert result.find(f"{{{DS}}}Signature") is None  # signed_xml has the signature removed


def test_verify_saml11_with_assertion_id(signed1: etree._Element, keys: Keys) -> None:
    result = verify_enveloped(signed1, "AssertionID", (keys.cert,))
    assert result.get("AssertionID") == "_s11abc"


def test_verify_accepts_any_trusted_cert_in_the_set(signed2: etree._Element, keys: Keys) -> None:
    assert verify_enveloped(signed2, "ID", (keys.other_cert, keys.cert)).get("ID") == "_a2b3c4"


def test_verify_rejects_another_cert(signed2: etree._Element, keys: Keys) -> None:
    with pytest.raises(SignatureRejected):
        verify_enveloped(signed2, "ID", (keys.other_cert,))


def test_verify_rejects_with_no_trusted_certs(signed2: etree._Element) -> None:
    with pytest.raises(SignatureRejected):
        verify_enveloped(signed2, "ID", ())


def test_verify_rejects_signature_by_another_key_with_its_own_cert_in_keyinfo(keys: Keys) -> None:
    forged = _reparse(AssertionSigner(keys.other_key, keys.other_cert).sign_saml2(_saml2()))
    with pytest.raises(SignatureRejected):
        verify_enveloped(forged, "ID", (keys.cert,))


def test_verify_rejects_tampered_name_id(signed2: etree._Element, keys: Keys) -> None:
    tampered = copy.deepcopy(signed2)
    _ds_free = tampered.find(f".//{{{ns.SAML2}}}NameID")
    assert _ds_free is not None
    _ds_free.text = "admin@example.com"
    with pytest.raises(SignatureRejected):
        verify_enveloped(tampered, "ID", (keys.cert,))


def test_verify_rejects_tampered_attribute(signed2: etree._Element, keys: Keys) -> None:
    tampered = copy.deepcopy(signed2)
    tampered.set("IssueInstant", "2030-01-01T12:00:00Z")
    with pytest.raises(SignatureRejected):
        verify_enveloped(tampered, "ID", (keys.cert,))


def test_verify_rejects_tampered_signature_value(signed2: etree._Element, keys: Keys) -> None:
    tampered = copy.deepcopy(signed2)
    value = _ds(tampered, ".//ds:SignatureValue")
    raw = bytearray(base64.b64decode(value.text or ""))
    raw[10] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureRejected):
        verify_enveloped(tampered, "ID", (keys.cert,))


def test_comment_inside_signed_text_does_not_truncate(signer: AssertionSigner, keys: Keys) -> None:  # G19
    signed = _reparse(signer.sign_saml2(_saml2(name_id="admin@corp.evil.test")))
    name_id = signed.find(f".//{{{ns.SAML2}}}NameID")
    assert name_id is not None
    name_id.text = "admin@corp"
    name_id.append(etree.Comment(""))
    name_id[-1].tail = ".evil.test"
    result = verify_enveloped(signed, "ID", (keys.cert,))  # exc-c14n drops comments: still valid
    found = result.find(f".//{{{ns.SAML2}}}NameID")
    assert found is not None
    assert "".join(found.itertext()) == "admin@corp.evil.test"


class _ExplodingVerifier:
    """Stands in for signxml's XMLVerifier: the pre-check must reject before it is ever built."""

    created = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).created += 1
        raise AssertionError("signxml must not run for a rejected signature")


@pytest.fixture
def no_signxml(monkeypatch: pytest.MonkeyPatch) -> type[_ExplodingVerifier]:
    _ExplodingVerifier.created = 0
    monkeypatch.setattr(verifier_module, "XMLVerifier", _ExplodingVerifier)
    return _ExplodingVerifier


@pytest.mark.parametrize(
    ("path", "algorithm"),
    [
        ("ds:SignedInfo/ds:SignatureMethod", SHA1_SIG),
        ("ds:SignedInfo/ds:Reference/ds:DigestMethod", SHA1_DIGEST),
        ("ds:SignedInfo/ds:CanonicalizationMethod", INCLUSIVE_C14N),
        ("ds:SignedInfo/ds:CanonicalizationMethod", INCLUSIVE_C14N_11),
        ("ds:SignedInfo/ds:CanonicalizationMethod", "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"),
        ("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform[2]", INCLUSIVE_C14N),
        ("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform[1]", "http://www.w3.org/TR/1999/REC-xslt-19991116"),
        ("ds:SignedInfo/ds:SignatureMethod", "http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
    ],
    ids=["rsa-sha1", "sha1-digest", "inclusive-c14n", "inclusive-c14n-11", "exc-with-comments",
         "inclusive-transform", "xslt-transform", "hmac"],
)
def test_forbidden_algorithm_rejected_before_signxml(
    signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier], path: str, algorithm: str
) -> None:
    edited = copy.deepcopy(signed2)
    _ds(edited[1], path).set("Algorithm", algorithm)
    with pytest.raises(SignatureRejected):
        verify_enveloped(edited, "ID", (keys.cert,))
    assert no_signxml.created == 0


def test_two_signatures_rejected(signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier]) -> None:
    doubled = copy.deepcopy(signed2)
    doubled.append(copy.deepcopy(doubled[1]))
    with pytest.raises(SignatureRejected):
        verify_enveloped(doubled, "ID", (keys.cert,))
    assert no_signxml.created == 0


def test_nested_second_signature_rejected(
    signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier]
) -> None:
    nested = copy.deepcopy(signed2)
    subject = nested.find(f"{{{ns.SAML2}}}Subject")
    assert subject is not None
    subject.append(copy.deepcopy(nested[1]))
    with pytest.raises(SignatureRejected):
        verify_enveloped(nested, "ID", (keys.cert,))
    assert no_signxml.created == 0


def test_signed_element_with_nested_second_signature_rejected(signer: AssertionSigner, keys: Keys) -> None:
    assertion = _saml2()
    subject = assertion.find(f"{{{ns.SAML2}}}Subject")
    assert subject is not None
    etree.SubElement(subject, ns.qn(DS, "Signature"))
    signed = _reparse(signer.sign_saml2(assertion))
    assert len(list(signed.iter(ns.qn(DS, "Signature")))) == 2
    with pytest.raises(SignatureRejected):
        verify_enveloped(signed, "ID", (keys.cert,))


def test_missing_signature_rejected(keys: Keys, no_signxml: type[_ExplodingVerifier]) -> None:
    with pytest.raises(SignatureRejected):
        verify_enveloped(_saml2(), "ID", (keys.cert,))


@pytest.mark.parametrize("uri", ["#_other", "", "#", "#xpointer(/)", "http://127.0.0.1:9/x"])
def test_reference_naming_another_id_rejected(
    signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier], uri: str
) -> None:
    edited = copy.deepcopy(signed2)
    _ds(edited[1], "ds:SignedInfo/ds:Reference").set("URI", uri)
    with pytest.raises(SignatureRejected):
        verify_enveloped(edited, "ID", (keys.cert,))
    assert no_signxml.created == 0


def test_reference_to_a_renamed_element_rejected(signed2: etree._Element, keys: Keys) -> None:
    """V09: the one Reference must name the element the signature is enveloped in."""
    edited = copy.deepcopy(signed2)
    edited.set("ID", "_evil")
    with pytest.raises(SignatureRejected):
        verify_enveloped(edited, "ID", (keys.cert,))


def test_two_references_rejected(signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier]) -> None:
    edited = copy.deepcopy(signed2)
    signed_info = _ds(edited[1], "ds:SignedInfo")
    signed_info.append(copy.deepcopy(_ds(signed_info, "ds:Reference")))
    with pytest.raises(SignatureRejected):
        verify_enveloped(edited, "ID", (keys.cert,))


@pytest.mark.parametrize("local", ["Object", "Manifest", "RetrievalMethod"])
def test_forbidden_signature_children_rejected(
    signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier], local: str
) -> None:
    edited = copy.deepcopy(signed2)
    etree.SubElement(edited[1], ns.qn(DS, local))
    with pytest.raises(SignatureRejected):
        verify_enveloped(edited, "ID", (keys.cert,))


def test_too_many_transforms_rejected(
    signed2: etree._Element, keys: Keys, no_signxml: type[_ExplodingVerifier]
) -> None:
    edited = copy.deepcopy(signed2)
    transforms = _ds(edited[1], "ds:SignedInfo/ds:Reference/ds:Transforms")
    transforms.append(copy.deepcopy(transforms[1]))
    with pytest.raises(SignatureRejected):
        verify_enveloped(edited, "ID", (keys.cert,))


def test_precheck_returns_the_signature(signed2: etree._Element) -> None:
    assert precheck_signature(signed2, "ID") is signed2[1]


def test_verify_with_wrong_id_attribute_rejected(signed1: etree._Element, keys: Keys) -> None:
    with pytest.raises(SignatureRejected):
        verify_enveloped(signed1, "ID", (keys.cert,))


# --- encrypt / decrypt ----------------------------------------------------------------------------------------------


def _encrypt(keys: Keys, element: etree._Element, cipher: DataCipher, transport: KeyTransport) -> etree._Element:
    return TokenEncrypter(keys.rp_cert, EncryptionPolicy(cipher, transport)).encrypt(copy.deepcopy(element))


def _data_cipher_value(encrypted: etree._Element) -> etree._Element:
    found = encrypted.find(f"{{{ns.XENC}}}CipherData/{{{ns.XENC}}}CipherValue")
    assert found is not None
    return found


def _key_cipher_value(encrypted: etree._Element) -> etree._Element:
    found = encrypted.find(f".//{{{ns.XENC}}}EncryptedKey/{{{ns.XENC}}}CipherData/{{{ns.XENC}}}CipherValue")
    assert found is not None
    return found


@pytest.mark.parametrize("transport", list(KeyTransport), ids=lambda t: t.name)
@pytest.mark.parametrize("cipher", list(DataCipher), ids=lambda c: c.name)
def test_round_trip_every_cipher_and_transport(
    signed2: etree._Element, keys: Keys, cipher: DataCipher, transport: KeyTransport
) -> None:
    encrypted = _encrypt(keys, signed2, cipher, transport)
    assert encrypted.tag == ns.qn(ns.XENC, "EncryptedData")
    assert encrypted.get("Type") == "http://www.w3.org/2001/04/xmlenc#Element"
    methods = [m.get("Algorithm") for m in encrypted.iter(ns.qn(ns.XENC, "EncryptionMethod"))]
    assert methods == [cipher.value, transport.value]
    assert b"alice@example.com" not in etree.tostring(encrypted)
    # the RP certificate is named in the EncryptedKey
    x509_text = encrypted.findtext(f".//{{{ns.XENC}}}EncryptedKey//{{{DS}}}X509Certificate")
    assert x509_text is not None
    assert x509.load_der_x509_certificate(base64.b64decode(x509_text)) == keys.rp_cert

    decrypted = TokenDecrypter(keys.rp_key).decrypt(_reparse(encrypted))
    assert decrypted.get("ID") == "_a2b3c4"
    result = verify_enveloped(decrypted, "ID", (keys.cert,))
    assert result.findtext(f".//{{{ns.SAML2}}}NameID") == "alice@example.com"


@pytest.mark.parametrize(
    ("transport", "hash_cls"),
    [(KeyTransport.RSA_OAEP_MGF1P, hashes.SHA1), (KeyTransport.RSA_OAEP, hashes.SHA256)],
    ids=["mgf1p-sha1", "xmlenc11-sha256"],
)
def test_key_transport_is_the_announced_oaep_variant(
    signed2: etree._Element, keys: Keys, transport: KeyTransport, hash_cls: type[hashes.HashAlgorithm]
) -> None:
    """Independent check with cryptography: the CEK unwraps with exactly the OAEP parameters announced."""
    encrypted = _encrypt(keys, signed2, DataCipher.AES256_GCM, transport)
    wrapped = base64.b64decode(_key_cipher_value(encrypted).text or "")
    cek = keys.rp_key.decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(hash_cls()), algorithm=hash_cls(), label=None))
    assert len(cek) == 32
    blob = base64.b64decode(_data_cipher_value(encrypted).text or "")
    plaintext = AESGCM(cek).decrypt(blob[:12], blob[12:], None)
    assert b"alice@example.com" in plaintext
    if transport is KeyTransport.RSA_OAEP:
        method = encrypted.find(f".//{{{ns.XENC}}}EncryptedKey/{{{ns.XENC}}}EncryptionMethod")
        assert method is not None
        assert method.find(f"{{{DS}}}DigestMethod").get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"  # type: ignore[union-attr]
        assert method.find(f"{{{ns.XENC11}}}MGF").get("Algorithm") == (  # type: ignore[union-attr]
            "http://www.w3.org/2009/xmlenc11#mgf1sha256"
        )


@pytest.mark.parametrize("cipher", list(DataCipher), ids=lambda c: c.name)
def test_two_encryptions_differ(signed2: etree._Element, keys: Keys, cipher: DataCipher) -> None:  # E03
    first = _encrypt(keys, signed2, cipher, KeyTransport.RSA_OAEP_MGF1P)
    second = _encrypt(keys, signed2, cipher, KeyTransport.RSA_OAEP_MGF1P)
    assert _data_cipher_value(first).text != _data_cipher_value(second).text
    assert _key_cipher_value(first).text != _key_cipher_value(second).text
    # IV / nonce freshness: the leading bytes differ too
    iv_len = 12 if cipher is not DataCipher.AES256_CBC else 16
    first_iv = base64.b64decode(_data_cipher_value(first).text or "")[:iv_len]
    second_iv = base64.b64decode(_data_cipher_value(second).text or "")[:iv_len]
    assert first_iv != second_iv


@pytest.mark.parametrize("cipher", [DataCipher.AES256_GCM, DataCipher.AES128_GCM], ids=lambda c: c.name)
@pytest.mark.parametrize("position", [0, 20, -1])
def test_flipped_ciphertext_bit_fails_to_decrypt(
    signed2: etree._Element, keys: Keys, cipher: DataCipher, position: int
) -> None:  # E04
    encrypted = _encrypt(keys, signed2, cipher, KeyTransport.RSA_OAEP_MGF1P)
    value = _data_cipher_value(encrypted)
    raw = bytearray(base64.b64decode(value.text or ""))
    raw[position] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DecryptionRejected):
        TokenDecrypter(keys.rp_key).decrypt(encrypted)


def test_decrypt_with_the_wrong_key_fails(signed2: etree._Element, keys: Keys) -> None:
    encrypted = _encrypt(keys, signed2, DataCipher.AES256_GCM, KeyTransport.RSA_OAEP_MGF1P)
    with pytest.raises(DecryptionRejected):
        TokenDecrypter(keys.other_key).decrypt(encrypted)


class _ExplodingContext:
    created = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).created += 1
        raise AssertionError("xmlsec must not be asked to decrypt a disallowed algorithm")


@pytest.mark.parametrize(
    ("which", "algorithm"),
    [("key", RSA_1_5), ("data", TRIPLEDES), ("data", "http://www.w3.org/2001/04/xmlenc#aes128-cbc")],
    ids=["rsa-1_5", "3des", "aes128-cbc"],
)
def test_decrypter_refuses_disallowed_algorithms_without_trying(
    signed2: etree._Element, keys: Keys, monkeypatch: pytest.MonkeyPatch, which: str, algorithm: str
) -> None:  # E06
    encrypted = _encrypt(keys, signed2, DataCipher.AES256_GCM, KeyTransport.RSA_OAEP_MGF1P)
    methods = list(encrypted.iter(ns.qn(ns.XENC, "EncryptionMethod")))
    (methods[1] if which == "key" else methods[0]).set("Algorithm", algorithm)
    _ExplodingContext.created = 0
    monkeypatch.setattr(decrypter_module.xmlsec, "EncryptionContext", _ExplodingContext)
    with pytest.raises(DecryptionRejected):
        TokenDecrypter(keys.rp_key).decrypt(encrypted)
    assert _ExplodingContext.created == 0


def test_encrypter_consumes_the_element_in_place(keys: Keys, signed2: etree._Element) -> None:
    holder = etree.Element("holder")
    holder.append(copy.deepcopy(signed2))
    encrypted = TokenEncrypter(keys.rp_cert, EncryptionPolicy()).encrypt(holder[0])
    assert len(holder) == 1
    assert holder[0].tag == ns.qn(ns.XENC, "EncryptedData")
    assert encrypted.tag == ns.qn(ns.XENC, "EncryptedData")
    assert holder.find(f".//{{{ns.SAML2}}}Assertion") is None


def test_default_policy_is_gcm_with_oaep() -> None:
    policy = EncryptionPolicy()
    assert policy.cipher is DataCipher.AES256_GCM
    assert policy.key_transport is KeyTransport.RSA_OAEP_MGF1P
    assert RSA_1_5 not in {k.value for k in KeyTransport}
    assert TRIPLEDES not in {c.value for c in DataCipher}


# --- selftest -------------------------------------------------------------------------------------------------------


def test_selftest_passes_for_good_keys(keys: Keys) -> None:
    assert run_selftest(KeyStore(keys.key, keys.cert, (), ())) == []


def test_selftest_reports_mismatched_keys(keys: Keys) -> None:
    problems = run_selftest(KeyStore(keys.key, keys.other_cert, (), ()))
    assert problems == ["self-test: sign/verify failed (SignatureRejected)"]
