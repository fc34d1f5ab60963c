"""Enveloped XML signatures over issued assertions with signxml (SAML 2.0 core §5.4; SAML 1.1 core §5).

One :class:`AssertionSigner` per worker: keys are ``cryptography`` objects parsed once (passing PEM bytes to
signxml re-parses the key per call, ~50 ms), and signxml is configured once per SAML version.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from sts import ns

_PLACEHOLDER = etree.QName(ns.DS, "Signature")


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
        self._certs = [cert]
        self._signers = {name: self._make_signer() for name in ("ID", "AssertionID")}

    @staticmethod
    def _make_signer() -> XMLSigner:
        return XMLSigner(
            method=methods.enveloped,
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )

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
        signed: etree._Element = self._signers[id_attribute].sign(
            assertion,
            key=self._key,
            cert=self._certs,
            reference_uri="#" + assertion.get(id_attribute, ""),
            id_attribute=id_attribute,
        )
        return signed
