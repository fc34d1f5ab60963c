"""Enveloped XML signatures over issued assertions with signxml (SAML 2.0 core §5.4; SAML 1.1 core §5).

One :class:`AssertionSigner` per worker: keys are ``cryptography`` objects parsed once (passing PEM bytes to
signxml re-parses the key per call, ~50 ms), and signxml is configured once per SAML version. signxml does all the
signing (exclusive c14n, digest, ``SignedInfo``, RSA); :class:`_TreeSigner` only spares it work around that on the
trees this module hands it, with a byte-identical result.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import SignatureReference, XMLSigner
from signxml.util import strip_pem_header

from sts import ns
from sts.crypto.wss_signature import EXC_C14N, INCLUSIVE_NAMESPACES

_PLACEHOLDER = etree.QName(ns.DS, "Signature")
_XSI_TYPE = ns.qn(ns.XSI, "type")
_TYPED = etree.XPath("descendant-or-self::*[@xsi:type]", namespaces={"xsi": ns.XSI})


class SamlSigner(Protocol):
    """What signs issued assertions: :class:`AssertionSigner`, or the key ring's signer that follows rotation."""

    def sign_saml2(self, assertion: etree._Element) -> etree._Element:
        """Sign a SAML 2.0 assertion."""
        ...

    def sign_saml11(self, assertion: etree._Element) -> etree._Element:
        """Sign a SAML 1.1 assertion."""
        ...


class AssertionSigner:
    """Signs SAML assertions: exclusive c14n, RSA-SHA256, SHA-256, certificate in KeyInfo, one Reference."""

    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self._key_info = _certificate_key_info(cert)
        self._signers = {name: _TreeSigner() for name in ("ID", "AssertionID")}

    def sign_saml2(self, assertion: etree._Element) -> etree._Element:
        """Sign a SAML 2.0 assertion; the signature goes right after ``saml2:Issuer`` (SAML 2.0 core §2.3.3)."""
        issuer = assertion.find(ns.qn(ns.SAML2, "Issuer"))
        if issuer is None:
            raise ValueError("SAML 2.0 assertion without Issuer")
        placeholder = etree.Element(_PLACEHOLDER, Id="placeholder", nsmap={"ds": ns.DS})
        issuer.addnext(placeholder)
        return self._sign(assertion, "ID")

    def sign_saml11(self, assertion: etree._Element) -> etree._Element:
        """Sign a SAML 1.1 assertion; signxml appends the signature as the last child, where 1.1 wants it."""
        return self._sign(assertion, "AssertionID")

    def _sign(self, assertion: etree._Element, id_attribute: str) -> etree._Element:
        prefixes = type_prefixes_not_visibly_used(assertion)
        if prefixes:
            # libxml2 applies a PrefixList reliably to parsed trees only: on a tree built in memory (and its deep
            # copies) it was seen to leave a listed declaration out, so the digest disagreed with every verifier's.
            assertion = etree.fromstring(etree.tostring(assertion))
        uri = "#" + assertion.get(id_attribute, "")
        reference = SignatureReference(URI=uri, inclusive_ns_prefixes=prefixes or None)
        signed: etree._Element = self._signers[id_attribute].sign(
            assertion,
            key=self._key,
            key_info=copy.deepcopy(self._key_info),  # signxml moves it into the signature
            reference_uri=[reference],
            id_attribute=id_attribute,
        )
        return signed


def type_prefixes_not_visibly_used(assertion: etree._Element) -> list[str]:
    """The prefixes ``xsi:type`` values name a type with where their element does not visibly use them.

    Exclusive c14n outputs a namespace declaration only on an element whose name or attribute names use its
    prefix (Exclusive XML Canonicalization 1.0 §3); a prefix used only inside an attribute value, as the ``del`` of
    ``<saml2:Condition xsi:type="del:DelegationRestrictionType">``, would be left out of the signed content, its
    binding unsigned and the signed XML a verifier hands on unable to resolve the type. Listing such prefixes in the
    reference's ``InclusiveNamespaces PrefixList`` (Exc-C14N §4; what SAML signers do for ``xsi:type="xs:string"``)
    keeps their declarations in. Sorted, for a stable signature; empty for tokens without such a type.
    """
    prefixes: set[str] = set()
    typed = cast(list[etree._Element], _TYPED(assertion))  # found in C: most tokens have one typed element or none
    for element in typed:
        value = element.get(_XSI_TYPE, "")
        if ":" not in value:
            continue
        prefix = value.strip().split(":", 1)[0]
        used: set[str | None] = {element.prefix}
        for name in element.attrib:
            namespace = etree.QName(name).namespace
            if namespace is not None:
                used.update(bound for bound, uri in element.nsmap.items() if uri == namespace)
        if prefix not in used:
            prefixes.add(prefix)
    return sorted(prefixes)


def _certificate_key_info(cert: x509.Certificate) -> etree._Element:
    """The ``ds:KeyInfo/ds:X509Data/ds:X509Certificate`` signxml writes for ``cert=[cert]``, built once.

    signxml would serialize the certificate to PEM and cut its armour off on every call; its own
    ``strip_pem_header`` keeps the text (line breaks included) what it was.
    """
    key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    x509_data = etree.SubElement(key_info, ns.qn(ns.DS, "X509Data"))
    certificate = etree.SubElement(x509_data, ns.qn(ns.DS, "X509Certificate"))
    certificate.text = strip_pem_header(cert.public_bytes(serialization.Encoding.PEM))  # type: ignore[no-untyped-call]
    return key_info


class _TreeSigner(XMLSigner):
    """signxml's enveloped RSA-SHA256 signer, copying trees with ``copy.deepcopy`` where that is exact.

    signxml copies what it signs by serializing and re-parsing it, with a walk for entities, three times per
    signature (``XMLProcessor.get_root``): that costs more than the c14n and the digest. A parentless lxml element
    without tail, DTD or entity references (every assertion this module signs, and signxml's copies of it)
    deep-copies to the same tree, so the same exclusive c14n (XML Exclusive Canonicalization 1.0) and signature;
    anything else takes signxml's own path.
    """

    _DS_TAGS: dict[str, etree.QName] = {}

    def __init__(self) -> None:
        super().__init__(
            method=methods.enveloped,
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )

    def get_root(self, data: Any) -> Any:
        """A private copy of ``data`` for signxml to edit (see the class docstring)."""
        if _copies_exactly(data):
            return copy.deepcopy(data)
        return super().get_root(data)  # type: ignore[no-untyped-call]

    def _build_transforms_for_reference(self, *, transforms_node: Any, reference: Any, **kwargs: Any) -> None:
        """signxml's transforms, plus the reference's ``ec:InclusiveNamespaces`` under the exclusive c14n transform:
        signxml 5 digests an enveloped reference with its PrefixList but writes the list only for the other
        signature methods, which would leave a signature no verifier can check."""
        super()._build_transforms_for_reference(
            transforms_node=transforms_node, reference=reference, **kwargs
        )
        if not reference.inclusive_ns_prefixes or not len(transforms_node):
            return
        c14n = transforms_node[-1]
        if c14n.get("Algorithm") == EXC_C14N and c14n.find(INCLUSIVE_NAMESPACES) is None:
            prefix_list = " ".join(reference.inclusive_ns_prefixes)
            etree.SubElement(c14n, INCLUSIVE_NAMESPACES, PrefixList=prefix_list, nsmap={"ec": EXC_C14N})

    def _ds_tag(self, tag: str) -> etree.QName:
        # signxml builds each ds: QName anew (14 per signature, ~1.5 µs each); the prefix map never changes here.
        qname = self._DS_TAGS.get(tag)
        if qname is None:
            qname = self._DS_TAGS.setdefault(tag, super()._ds_tag(tag))  # type: ignore[no-untyped-call]
        return qname


def _copies_exactly(data: object) -> bool:
    """True when ``copy.deepcopy(data)`` is the tree signxml's serialize-and-parse copy would be."""
    return (
        isinstance(data, etree._Element)
        and data.getparent() is None
        and data.tail is None
        and data.getroottree().docinfo.internalDTD is None
        and data.getroottree().docinfo.externalDTD is None
        and next(data.iter(etree.Entity), None) is None
    )
