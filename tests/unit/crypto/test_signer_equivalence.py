"""AssertionSigner's shortcuts around signxml change nothing it signs (issue 19).

signxml 5 copies what it signs by serializing and re-parsing it; ``sts.crypto.signer`` deep-copies the parentless
trees it builds instead, caches signxml's ds: names and hands it a prebuilt ``ds:KeyInfo``. RSA PKCS#1 v1.5 is
deterministic, so with the same key the whole signed document must equal, byte for byte, what signxml's own path
(configured as the product configured it before) writes.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.processor import XMLProcessor
from signxml.signer import SignatureReference, XMLSigner

from sts import ns
from sts.crypto import keygen
from sts.crypto.signer import AssertionSigner
from sts.crypto.verifier import verify_enveloped
from sts.tokens.base import NAMEID_UNSPECIFIED, AssertionContent, Attribute, Delegate
from sts.tokens.saml2 import build_saml2
from sts.tokens.saml11 import build_saml11

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
AWKWARD = "tab\there\r\nCR-LF & <angle> \"quoted\" 'single' ]]> \u00e9\u4e2d\U0001f600"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(2048)


@pytest.fixture(scope="module")
def cert(key: rsa.RSAPrivateKey) -> x509.Certificate:
    return keygen.self_signed_certificate(key, "STS signing")


def _content(**changes: object) -> AssertionContent:
    attributes = tuple(
        Attribute(f"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/claim{i}", (f"value {i}", AWKWARD))
        for i in range(5)
    )
    content = AssertionContent(
        assertion_id="_" + "b" * 40, issuer="https://sts.example/", issue_instant=T0,
        not_before=T0 - dt.timedelta(seconds=60), not_on_or_after=T0 + dt.timedelta(seconds=300),
        audience="https://rp.example/?a=1&b=2", recipient="https://rp.example/", name_id=AWKWARD,
        name_id_format=NAMEID_UNSPECIFIED, authn_instant=T0, attributes=attributes,
    )
    return dataclasses.replace(content, **changes)  # type: ignore[arg-type]


def _holder_of_key() -> AssertionContent:
    key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    etree.SubElement(etree.SubElement(key_info, ns.qn(ns.DS, "X509Data")), ns.qn(ns.DS, "X509Certificate")).text = (
        "TUlJQw=="
    )
    delegate = Delegate("https://service.example/", "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches", T0)
    return _content(key_info=key_info, delegates=(delegate,))


def _signxml_as_before(assertion: etree._Element, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> etree._Element:
    """The product's signing before issue 19: signxml's own copies and KeyInfo (``cert=[cert]``)."""
    saml2 = assertion.tag == ns.qn(ns.SAML2, "Assertion")
    id_attribute = "ID" if saml2 else "AssertionID"
    if saml2:
        issuer = assertion.find(ns.qn(ns.SAML2, "Issuer"))
        assert issuer is not None
        issuer.addnext(etree.Element(ns.qn(ns.DS, "Signature"), Id="placeholder", nsmap={"ds": ns.DS}))
    signer = _SignxmlWithPrefixList(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    # xsi:type prefixes the element does not visibly use go in the reference's PrefixList (Exc-C14N §4).
    delegated = assertion.find(f".//{{{ns.SAML_DELEGATION}}}Delegate") is not None
    prefixes = ["del"] if saml2 and delegated else None
    reference = SignatureReference(URI="#" + assertion.get(id_attribute, ""), inclusive_ns_prefixes=prefixes)
    signed: etree._Element = signer.sign(
        assertion, key=key, cert=[cert], reference_uri=[reference], id_attribute=id_attribute
    )
    return signed


class _SignxmlWithPrefixList(XMLSigner):
    """signxml's own path, writing the reference's PrefixList it digests with (signxml 5 omits it when enveloped)."""

    def _build_transforms_for_reference(self, *, transforms_node: Any, reference: Any, **kwargs: Any) -> None:
        super()._build_transforms_for_reference(transforms_node=transforms_node, reference=reference, **kwargs)
        if reference.inclusive_ns_prefixes:
            etree.SubElement(
                transforms_node[-1],
                "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                PrefixList=" ".join(reference.inclusive_ns_prefixes),
                nsmap={"ec": "http://www.w3.org/2001/10/xml-exc-c14n#"},
            )


def _sign(signer: AssertionSigner, assertion: etree._Element) -> etree._Element:
    if assertion.tag == ns.qn(ns.SAML2, "Assertion"):
        return signer.sign_saml2(assertion)
    return signer.sign_saml11(assertion)


BUILDS: dict[str, Callable[[], etree._Element]] = {
    "saml2": lambda: build_saml2(_content()),
    "saml11": lambda: build_saml11(_content()),
    "saml2-holder-of-key": lambda: build_saml2(_holder_of_key()),
    "saml11-holder-of-key": lambda: build_saml11(_holder_of_key()),
    "saml2-no-claims": lambda: build_saml2(_content(attributes=())),
}


@pytest.mark.parametrize("build", list(BUILDS.values()), ids=list(BUILDS))
def test_signed_document_is_byte_identical_to_signxml_own_path(
    build: Callable[[], etree._Element], key: rsa.RSAPrivateKey, cert: x509.Certificate
) -> None:
    ours = _sign(AssertionSigner(key, cert), build())
    theirs = _signxml_as_before(build(), key, cert)
    assert etree.tostring(ours) == etree.tostring(theirs)
    id_attribute = "ID" if ours.tag == ns.qn(ns.SAML2, "Assertion") else "AssertionID"
    verify_enveloped(etree.fromstring(etree.tostring(ours)), id_attribute, (cert,))


def test_one_signer_signs_many_assertions_alike(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
    """The prebuilt KeyInfo is copied per signature, never moved out of the signer."""
    signer = AssertionSigner(key, cert)
    first, second = (signer.sign_saml2(build_saml2(_content())) for _ in range(2))
    assert etree.tostring(first) == etree.tostring(second)
    assert first.find(f".//{{{ns.DS}}}X509Certificate") is not None


def test_own_trees_are_not_reparsed(
    key: rsa.RSAPrivateKey, cert: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """signxml's serialize-and-parse copy stays off the path of every assertion the product builds."""

    def reparse(self: XMLProcessor, xml_string: bytes, **kwargs: object) -> etree._Element:
        raise AssertionError("signxml re-parsed an assertion built by sts.tokens")

    monkeypatch.setattr(XMLProcessor, "_fromstring", reparse)
    signer = AssertionSigner(key, cert)
    for build in BUILDS.values():
        _sign(signer, build())


def test_nested_element_takes_signxml_path_and_signs_alike(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
    """An assertion with a parent is copied by signxml (its namespaces may come from the parent)."""

    def nested() -> etree._Element:
        holder = etree.Element(ns.qn(ns.SAML2, "Holder"), nsmap={"saml2": ns.SAML2})
        holder.append(build_saml2(_content()))
        holder[0].tail = "\n"
        return holder[0]

    ours = AssertionSigner(key, cert).sign_saml2(nested())
    assert ours.getparent() is None
    assert etree.tostring(ours) == etree.tostring(_signxml_as_before(nested(), key, cert))


def test_tree_with_entity_reference_still_refused_by_signxml(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
    """No deep copy for a tree holding an entity reference: signxml's own re-parse refuses it, as before."""
    assertion = build_saml2(_content())
    name_id = assertion.find(f".//{{{ns.SAML2}}}NameID")
    assert name_id is not None
    name_id.append(etree.Entity("ext"))
    with pytest.raises(etree.XMLSyntaxError, match="^Entity 'ext' not defined"):
        AssertionSigner(key, cert).sign_saml2(copy.deepcopy(assertion))
