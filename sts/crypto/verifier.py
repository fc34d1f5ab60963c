"""Verification of assertions signed by this STS (or an explicitly trusted issuer), with a pinned certificate.

Algorithm URIs are checked against the allow-lists *before* signxml canonicalizes anything (an attacker-chosen c14n can
cost seconds), a fresh ``XMLVerifier`` is used per call (it keeps per-call state), and only ``VerifyResult.signed_xml``
is returned: callers read nothing else (signxml docs, "See what is signed": against signature wrapping).
"""

from __future__ import annotations

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from sts import ns
from sts.crypto.algorithms import Canonicalization, DigestMethod, Transform
from sts.crypto.algorithms import SignatureMethod as AllowedSignature


class SignatureRejected(Exception):
    """The signature is absent, malformed, outside the allow-list, or does not verify."""


_EXPECT = SignatureConfiguration(
    location="./",
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}),
)
_ALLOWED = {
    "CanonicalizationMethod": {c.value for c in Canonicalization},
    "SignatureMethod": {s.value for s in AllowedSignature},
    "DigestMethod": {d.value for d in DigestMethod},
    "Transform": {t.value for t in Transform},
}
# With a pinned certificate KeyInfo is never used to find the key, so anything but X509Data there is noise at
# best and a parser differential at worst (an empty Modulus made signxml raise TypeError).
_FORBIDDEN = ("Object", "Manifest", "RetrievalMethod", "KeyInfoReference", "HMACOutputLength", "KeyValue")
_DSIG11 = "http://www.w3.org/2009/xmldsig11#"


def precheck_signature(element: etree._Element, id_attribute: str) -> etree._Element:
    """Check the structure and algorithm URIs of the element's one enveloped signature; return it."""
    signatures = element.findall(ns.qn(ns.DS, "Signature"))
    if len(signatures) != 1 or sum(1 for _ in element.iter(ns.qn(ns.DS, "Signature"))) != 1:
        raise SignatureRejected("exactly one enveloped signature expected")
    signature = signatures[0]
    for local in _FORBIDDEN:
        if signature.find(".//" + ns.qn(ns.DS, local)) is not None:
            raise SignatureRejected(f"ds:{local} not allowed")
    if signature.find(f".//{{{_DSIG11}}}DEREncodedKeyValue") is not None:
        raise SignatureRejected("dsig11:DEREncodedKeyValue not allowed")
    value = signature.findtext(ns.qn(ns.DS, "SignatureValue"))
    if value is None or not value.strip():
        raise SignatureRejected("empty SignatureValue")
    for local, allowed in _ALLOWED.items():
        for algorithm_element in signature.iter(ns.qn(ns.DS, local)):
            if algorithm_element.get("Algorithm") not in allowed:
                raise SignatureRejected(f"{local} algorithm not allowed")
    references = signature.findall(f"{ns.qn(ns.DS, 'SignedInfo')}/{ns.qn(ns.DS, 'Reference')}")
    if len(references) != 1 or references[0].get("URI") != "#" + (element.get(id_attribute) or "\0"):
        raise SignatureRejected("the single Reference must name the signed element")
    transforms = references[0].findall(f"{ns.qn(ns.DS, 'Transforms')}/{ns.qn(ns.DS, 'Transform')}")
    if len(transforms) > 2:
        raise SignatureRejected("too many transforms")
    return signature


def verify_enveloped(
    element: etree._Element, id_attribute: str, trusted: tuple[x509.Certificate, ...]
) -> etree._Element:
    """Verify ``element``'s enveloped signature against one of ``trusted``; return the signed element only."""
    precheck_signature(element, id_attribute)
    standalone = etree.fromstring(etree.tostring(element))
    for cert in trusted:
        try:
            result = XMLVerifier().verify(
                standalone, x509_cert=cert, id_attribute=id_attribute, expect_config=_EXPECT
            )
        except (
            InvalidSignature,
            InvalidDigest,
            InvalidCertificate,
            InvalidInput,
            etree.DocumentInvalid,
            ValueError,
            TypeError,  # signxml decodes element text that may be absent
        ):
            continue
        signed = result.signed_xml  # type: ignore[union-attr]
        if signed is None or signed.get(id_attribute) != element.get(id_attribute):
            continue
        return signed
    raise SignatureRejected("no trusted certificate verifies the signature")
