"""Tests for sts.crypto.wss_signature: the SignedInfo/KeyInfo allow-lists checked before any cryptography (MS4; rows
G27, G28, G29, G33, G34) and verification with an explicitly set key over exactly the resolved referents."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from sts import ns
from sts.crypto.wss_signature import (
    EXC_C14N,
    AlgorithmRefused,
    SignatureInvalid,
    SignatureStructureError,
    read_signed_info,
    verify_signature,
)
from tests.x509_support import Client, make_cert, rsa_key, signed_rst

URL = "http://127.0.0.1:9/services/wso2carbon-sts/SigOnly"
WSU_ID = ns.qn(ns.WSU, "Id")
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def _ds(local: str) -> str:
    return ns.qn(ns.DS, local)


@pytest.fixture(scope="module")
def client() -> Client:
    key = rsa_key()
    return Client(make_cert("alice", key), key, None, None)  # type: ignore[arg-type]


@pytest.fixture
def envelope(client: Client) -> etree._Element:
    return signed_rst(URL, client)


def _signature(envelope: etree._Element) -> etree._Element:
    found = envelope.find(f".//{_ds('Signature')}")
    assert found is not None
    return found


def _signed_info(envelope: etree._Element) -> etree._Element:
    return _signature(envelope)[0]


def _referents(envelope: etree._Element) -> dict[str, tuple[etree._Element, str | None]]:
    timestamp = envelope.find(f".//{ns.qn(ns.WSU, 'Timestamp')}")
    assert timestamp is not None
    body = envelope[-1]
    return {str(timestamp.get(WSU_ID)): (timestamp, ns.WSU), str(body.get(WSU_ID)): (body, ns.WSU)}


def test_an_allowed_signature_yields_its_facts(envelope: etree._Element) -> None:
    facts = read_signed_info(_signature(envelope), legacy_sha1=False)
    assert set(facts.reference_ids) == set(_referents(envelope))
    assert facts.signature_method.endswith("rsa-sha256")
    assert facts.token_reference.tag == ns.qn(ns.WSSE, "SecurityTokenReference")
    assert facts.signature_value and b" " not in facts.signature_value


def _respelled(envelope: etree._Element, how: str) -> etree._Element:
    """The envelope with its SignatureValue written another way that xmlsec reads as the same value."""
    copy = etree.fromstring(etree.tostring(envelope))
    value = _signature(copy)[1]
    text = "".join(str(value.text).split())
    if how == "whitespace":
        value.text = "\n" + "\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"
    elif how == "comment":  # .text stops at a comment; xmlsec reads the text on both sides
        value.text = text[:17]
        comment = etree.Comment("x")
        comment.tail = text[17:]
        value.append(comment)
    elif how == "spare_bits":  # an RSA-2048 value ends in "==": the last character's low 4 bits are not decoded
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = text.rstrip("=")[-1]
        value.text = text.rstrip("=")[:-1] + alphabet[alphabet.index(last) ^ 1] + "=="
    return copy


@pytest.mark.parametrize("how", ["whitespace", "comment", "spare_bits"])
def test_every_spelling_of_a_signature_has_one_replay_key(envelope: etree._Element, how: str) -> None:
    """The key is what was signed (the canonical SignedInfo), not the value as sent (WSS 1.1 §13)."""
    original = read_signed_info(_signature(envelope), legacy_sha1=False)
    respelled = _respelled(envelope, how)
    facts = read_signed_info(_signature(respelled), legacy_sha1=False)
    assert facts.replay_key == original.replay_key
    assert facts.signature_value == original.signature_value or how == "spare_bits"  # the whole value is read


def test_another_signed_info_has_another_replay_key(envelope: etree._Element) -> None:
    original = read_signed_info(_signature(envelope), legacy_sha1=False)
    _signed_info(envelope)[2][2].text = "AAAA" + str(_signed_info(envelope)[2][2].text)[4:]  # a DigestValue
    assert read_signed_info(_signature(envelope), legacy_sha1=False).replay_key != original.replay_key


def test_inclusive_namespaces_of_a_few_prefixes_are_allowed(envelope: etree._Element) -> None:
    c14n = _signed_info(envelope)[0]
    etree.SubElement(c14n, ns.qn(EXC_C14N, "InclusiveNamespaces"), PrefixList="soap wsse #default")
    read_signed_info(_signature(envelope), legacy_sha1=False)


def _mutate(envelope: etree._Element, case: str) -> None:  # noqa: C901 - one branch per named case
    signature, signed_info = _signature(envelope), _signed_info(envelope)
    c14n, method, reference = signed_info[0], signed_info[1], signed_info[2]
    transform = reference[0][0]
    if case == "object":
        etree.SubElement(signature, _ds("Object"))
    elif case == "no_key_info":
        signature.remove(signature[2])
    elif case == "signed_info_order":
        signed_info.insert(0, method)
    elif case == "G34_prefix_list_flood":
        etree.SubElement(c14n, ns.qn(EXC_C14N, "InclusiveNamespaces"),
                         PrefixList=" ".join(f"p{i}" for i in range(10000)))
    elif case == "prefix_not_ncname":
        etree.SubElement(c14n, ns.qn(EXC_C14N, "InclusiveNamespaces"), PrefixList="a:b")
    elif case == "c14n_parameter":
        etree.SubElement(c14n, "{urn:x}Other")
    elif case == "hmac_output_length":
        etree.SubElement(method, _ds("HMACOutputLength")).text = "8"
    elif case == "no_reference":
        for ref in signed_info.findall(_ds("Reference")):
            signed_info.remove(ref)
    elif case == "six_references":
        for _ in range(5):
            signed_info.append(etree.fromstring(etree.tostring(reference)))
    elif case == "manifest_in_signed_info":
        etree.SubElement(signed_info, _ds("Manifest"))
    elif case.startswith("G27_"):
        reference.set("URI", {"G27_empty_uri": "", "G27_http_uri": "http://127.0.0.1:9/x", "G27_cid_uri": "cid:x",
                              "G27_xpointer": "#xpointer(/)", "G27_no_uri": None}[case] or "")
        if case == "G27_no_uri":
            del reference.attrib["URI"]
    elif case == "reference_without_transforms":
        reference.remove(reference[0])
    elif case == "G29_key_value_instead_of_str":
        key_info = signature[2]
        key_info.remove(key_info[0])
        etree.SubElement(key_info, _ds("KeyValue"))
    elif case == "G29_key_value_beside_str":
        etree.SubElement(signature[2], _ds("KeyValue"))
    elif case == "empty_signature_value":
        signature[1].text = ""
    elif case == "oversized_signature_value":
        signature[1].text = "A" * 2049
    elif case == "G28_two_transforms":
        reference[0].append(etree.fromstring(etree.tostring(transform)))
    elif case == "G28_enveloped_signature":
        transform.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    elif case == "G28_xpath":
        transform.set("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
    elif case == "G28_str_transform":
        transform.set("Algorithm", "http://docs.oasis-open.org/wss/2004/01/"
                                   "oasis-200401-wss-soap-message-security-1.0#STR-Transform")
    elif case == "inclusive_c14n":
        c14n.set("Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    elif case == "G33_rsa_sha1":
        method.set("Algorithm", RSA_SHA1)
    elif case == "G33_sha1_digest":
        reference[1].set("Algorithm", SHA1)
    elif case == "md5_digest":
        reference[1].set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5")
    else:
        raise AssertionError(case)


STRUCTURE_CASES = [
    "object", "no_key_info", "signed_info_order", "G34_prefix_list_flood", "prefix_not_ncname", "c14n_parameter",
    "hmac_output_length", "no_reference", "six_references", "manifest_in_signed_info", "G27_empty_uri",
    "G27_http_uri", "G27_cid_uri", "G27_xpointer", "G27_no_uri", "reference_without_transforms",
    "G29_key_value_instead_of_str", "G29_key_value_beside_str", "empty_signature_value", "oversized_signature_value",
]
ALGORITHM_CASES = [
    "G28_two_transforms", "G28_enveloped_signature", "G28_xpath", "G28_str_transform", "inclusive_c14n",
    "G33_rsa_sha1", "G33_sha1_digest", "md5_digest",
]


@pytest.mark.parametrize("case", STRUCTURE_CASES)
def test_structure_outside_the_allow_list_is_refused(envelope: etree._Element, case: str) -> None:
    _mutate(envelope, case)
    started = time.perf_counter()
    with pytest.raises(SignatureStructureError):
        read_signed_info(_signature(envelope), legacy_sha1=False)
    assert time.perf_counter() - started < 0.1  # G34: refused before any work proportional to the flood


@pytest.mark.parametrize("case", ALGORITHM_CASES)
def test_algorithms_outside_the_allow_list_are_refused(envelope: etree._Element, case: str) -> None:
    _mutate(envelope, case)
    with pytest.raises(AlgorithmRefused):
        read_signed_info(_signature(envelope), legacy_sha1=False)


def test_sha1_is_allowed_only_under_the_legacy_switch(envelope: etree._Element) -> None:
    _mutate(envelope, "G33_rsa_sha1")
    _mutate(envelope, "G33_sha1_digest")
    assert read_signed_info(_signature(envelope), legacy_sha1=True).signature_method == RSA_SHA1


def test_the_signature_verifies_with_the_signers_certificate(envelope: etree._Element, client: Client) -> None:
    verify_signature(_signature(envelope), _referents(envelope), client.cert, legacy_sha1=False)


def test_another_certificate_does_not_verify_it(envelope: etree._Element) -> None:
    other = make_cert("mallory", rsa_key())
    with pytest.raises(SignatureInvalid):
        verify_signature(_signature(envelope), _referents(envelope), other, legacy_sha1=False)


def test_a_changed_body_does_not_verify(envelope: etree._Element, client: Client) -> None:
    envelope[-1][0].append(etree.Element("{urn:evil}Extra"))
    with pytest.raises(SignatureInvalid):
        verify_signature(_signature(envelope), _referents(envelope), client.cert, legacy_sha1=False)


def test_only_the_resolved_referents_are_ids(envelope: etree._Element, client: Client) -> None:
    """Leaving the Body out of the referents leaves its Reference unresolvable: no verification by Id lookup."""
    referents = _referents(envelope)
    body_id = str(envelope[-1].get(WSU_ID))
    with pytest.raises(SignatureInvalid):
        verify_signature(_signature(envelope), {k: v for k, v in referents.items() if k != body_id}, client.cert,
                         legacy_sha1=False)


def test_a_referent_must_carry_the_referenced_id(envelope: etree._Element, client: Client) -> None:
    referents = _referents(envelope)
    body_id = str(envelope[-1].get(WSU_ID))
    referents[body_id] = (envelope[-1][0], ns.WSU)  # the RST, which carries no wsu:Id at all
    with pytest.raises(SignatureInvalid):
        verify_signature(_signature(envelope), referents, client.cert, legacy_sha1=False)
    timestamp = envelope.find(f".//{ns.qn(ns.WSU, 'Timestamp')}")
    assert timestamp is not None
    with pytest.raises(SignatureInvalid):  # an element carrying another Id
        verify_signature(_signature(envelope), {body_id: (timestamp, ns.WSU)}, client.cert, legacy_sha1=False)


def test_a_plain_id_referent_is_registered_without_namespace(envelope: etree._Element, client: Client) -> None:
    referents = _referents(envelope)
    body = envelope[-1]
    body_id = str(body.get(WSU_ID))
    del body.attrib[WSU_ID]
    body.set("Id", body_id)  # same value, plain Id: the digest changes (the attribute is in the c14n output)
    referents[body_id] = (body, None)
    with pytest.raises(SignatureInvalid):
        verify_signature(_signature(envelope), referents, client.cert, legacy_sha1=False)
