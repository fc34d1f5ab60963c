"""Independent verification of issued tokens: signatures with signxml and the xmlsec1 CLI, decryption with
python-xmlsec and the xmlsec1 CLI. Nothing here uses the STS's own crypto code (``sts.crypto``), so a token that
passes was checked the way a relying party would check it.

Every function raises ``AssertionError`` on a failed check and returns what a relying party would go on with.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XMLSEC1 = "xmlsec1"
XMLSEC1_TIMEOUT = 30


def _id_attribute(saml11: bool) -> str:
    return "AssertionID" if saml11 else "ID"


def _assertion_tag(saml11: bool) -> str:
    return f"{{{SAML1 if saml11 else SAML2}}}Assertion"


def check_signature_form(assertion: etree._Element, saml11: bool) -> etree._Element:
    """The one enveloped signature of an assertion: exc-c14n, one Reference to ``#ID`` (R25); returns ds:Signature."""
    assert assertion.tag == _assertion_tag(saml11), assertion.tag
    assertion_id = assertion.get(_id_attribute(saml11))
    assert assertion_id, "assertion without an ID"
    signatures = assertion.findall(f"{{{DS}}}Signature")
    assert len(signatures) == 1, f"expected one ds:Signature child, found {len(signatures)}"
    signature = signatures[0]
    c14n = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}CanonicalizationMethod")
    assert [m.get("Algorithm") for m in c14n] == [EXC_C14N]
    references = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert len(references) == 1
    assert references[0].get("URI") == "#" + assertion_id
    transforms = [t.get("Algorithm") for t in references[0].iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
    assert transforms == [ENVELOPED, EXC_C14N]
    key_info = signature.findall(f"{{{DS}}}KeyInfo")
    assert len(key_info) == 1
    assert [etree.QName(child).localname for child in key_info[0]] == ["X509Data"]  # no KeyValue (R27)
    return signature


def embedded_certificates(signature: etree._Element) -> list[bytes]:
    """DER of every ``KeyInfo/X509Data/X509Certificate`` of a signature."""
    path = f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"
    return [base64.b64decode("".join((cert.text or "").split())) for cert in signature.findall(path)]


def verify_with_signxml(assertion_bytes: bytes, sts_cert_pem: bytes | str, saml11: bool) -> etree._Element:
    """Verify with a fresh signxml verifier pinned to the STS certificate; return the signed XML only."""
    if isinstance(sts_cert_pem, bytes):
        sts_cert_pem = sts_cert_pem.decode("ascii")
    root = etree.fromstring(assertion_bytes)
    signature = check_signature_form(root, saml11)
    pinned = x509.load_pem_x509_certificate(sts_cert_pem.encode("ascii"))
    assert embedded_certificates(signature) == [pinned.public_bytes(serialization.Encoding.DER)]  # R27
    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
    )
    result = XMLVerifier().verify(
        assertion_bytes,
        x509_cert=sts_cert_pem,
        id_attribute=_id_attribute(saml11),
        expect_config=config,
    )
    assert isinstance(result, VerifyResult)  # one reference expected, so one result
    signed = result.signed_xml
    assert isinstance(signed, etree._Element)
    assert signed.tag == _assertion_tag(saml11)
    assert signed.get(_id_attribute(saml11)) == root.get(_id_attribute(saml11))
    return signed


def run_xmlsec1_verify(path: Path, sts_cert_path: Path, saml11: bool) -> subprocess.CompletedProcess[bytes]:
    """Run ``xmlsec1 --verify`` on a file with the ID attribute registered; the caller judges the exit code."""
    id_attr = f"--id-attr:{_id_attribute(saml11)}"
    node = f"{SAML1 if saml11 else SAML2}:Assertion"
    return subprocess.run(
        [XMLSEC1, "--verify", "--pubkey-cert-pem", str(sts_cert_path), id_attr, node, str(path)],
        capture_output=True,
        timeout=XMLSEC1_TIMEOUT,
        check=False,
    )


def tampered(assertion_bytes: bytes, saml11: bool) -> bytes:
    """A copy with one character changed in the first AttributeValue (else in the NameID / NameIdentifier)."""
    root = etree.fromstring(assertion_bytes)
    saml = SAML1 if saml11 else SAML2
    target = root.find(f".//{{{saml}}}AttributeValue")
    if target is None:
        target = root.find(f".//{{{saml}}}{'NameIdentifier' if saml11 else 'NameID'}")
    assert target is not None and target.text, "nothing to tamper with"
    first = target.text[0]
    target.text = ("X" if first != "X" else "Y") + target.text[1:]
    changed: bytes = etree.tostring(root)
    assert changed != assertion_bytes
    return changed


def verify_with_xmlsec1(assertion_bytes: bytes, sts_cert_path: Path, saml11: bool) -> None:
    """``xmlsec1 --verify`` with the pinned STS certificate passes; a tampered copy fails."""
    with tempfile.TemporaryDirectory(prefix="xmlsec1-") as tmp:
        good, bad = Path(tmp) / "assertion.xml", Path(tmp) / "tampered.xml"
        good.write_bytes(assertion_bytes)
        bad.write_bytes(tampered(assertion_bytes, saml11))
        result = run_xmlsec1_verify(good, sts_cert_path, saml11)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        result = run_xmlsec1_verify(bad, sts_cert_path, saml11)
        assert result.returncode != 0, "xmlsec1 accepted a tampered assertion"


def verify_with_both(assertion_bytes: bytes, sts_cert_path: Path, saml11: bool) -> etree._Element:
    """signxml and xmlsec1 both accept the assertion; returns signxml's signed XML."""
    signed = verify_with_signxml(assertion_bytes, sts_cert_path.read_bytes(), saml11)
    verify_with_xmlsec1(assertion_bytes, sts_cert_path, saml11)
    return signed


def _standalone(plaintext: bytes) -> bytes:
    """The plaintext must parse on its own (it declares every namespace it uses) and be one assertion."""
    root = etree.fromstring(plaintext)
    assert root.tag in (_assertion_tag(False), _assertion_tag(True)), root.tag
    return plaintext


def decrypt_with_python_xmlsec(encrypted_data_element: etree._Element, rp_key_path: Path) -> bytes:
    """Decrypt an ``xenc:EncryptedData`` with python-xmlsec directly; return the plaintext assertion bytes.

    The EncryptedData is decrypted as the root of its own document, so the plaintext is parsed without any
    namespace declaration inherited from a wrapper.
    """
    assert encrypted_data_element.tag == f"{{{XENC}}}EncryptedData", encrypted_data_element.tag
    document = etree.fromstring(etree.tostring(encrypted_data_element))
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(str(rp_key_path), xmlsec.constants.KeyDataFormatPem))
    result = xmlsec.EncryptionContext(manager).decrypt(document)
    assert isinstance(result, etree._Element), "decrypted content is not an element"
    return _standalone(etree.tostring(result))


def decrypt_with_xmlsec1(encrypted_data_bytes: bytes, rp_key_path: Path) -> bytes:
    """``xmlsec1 --decrypt --privkey-pem KEY FILE`` on a file holding only the EncryptedData; its output."""
    assert etree.fromstring(encrypted_data_bytes).tag == f"{{{XENC}}}EncryptedData"
    with tempfile.TemporaryDirectory(prefix="xmlsec1-") as tmp:
        path = Path(tmp) / "encrypted.xml"
        path.write_bytes(encrypted_data_bytes)
        result = subprocess.run(
            [XMLSEC1, "--decrypt", "--privkey-pem", str(rp_key_path), str(path)],
            capture_output=True,
            timeout=XMLSEC1_TIMEOUT,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return _standalone(result.stdout)
