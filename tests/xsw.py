"""Hostile SAML assertion fixtures for the Validate path (security-catalogue §3 E, F, J).

Every generator takes a SIGNED assertion (SAML 2.0 ``saml2:Assertion``/``ID`` or SAML 1.1
``saml:Assertion``/``AssertionID``, standalone, as :class:`sts.crypto.signer.AssertionSigner` returns it) and
never modifies it. Every generator returns **the single element child of a fresh** ``wst:ValidateTarget``:
the element the Validate binding hands to ``verify_assertion`` (``result.getparent()`` is the container).
Where a recipe needs a document root above the assertion (XSW3, XSW5, XSW7) that child is a
``samlp:Response`` wrapper, as in SAMLRaider; :func:`assertions_in` lists the assertions a naive reader could
pick from it.

XSW1-XSW8 port ``CompassSecurity/SAMLRaider`` ``XSWHelpers.applyXSW1..8`` (Somorovsky et al., USENIX Security
2012) to lxml. SAMLRaider's XSW1/XSW2 act on a signed Response; here the signed element is the assertion, so
the assertion plays the Response's role (which makes XSW1 and XSW6 the same shape). The evil element carries
NameID ``admin@corp`` (the legitimate one is ``alice@example.com``) and, where the recipe says so,
``ID``/``AssertionID`` ``_evil_assertion_ID``.

The SignedInfo edits (G05-G10, G13, V13) are RE-SIGNED with the key given (:func:`resign`), so the
signature is cryptographically valid and only the verifier's structural checks and allow-lists can object.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from sts import ns
from sts.crypto.signer import AssertionSigner
from sts.tokens.base import NAMEID_EMAIL, AssertionContent, Attribute
from sts.tokens.saml2 import build_saml2
from sts.tokens.saml11 import build_saml11
from sts.wstrust.tokentypes import SamlVersion

LEGIT_NAME = "alice@example.com"
EVIL_NAME = "admin@corp"
COMMENT_NAME = "admin@corp.evil.test"  # signed whole; served as admin@corp<!---->.evil.test (G19/V12)
EVIL_ID = "_evil_assertion_ID"
AUDIENCE = "https://rp.example/"
SAMLP2 = "urn:oasis:names:tc:SAML:2.0:protocol"
SAMLP1 = "urn:oasis:names:tc:SAML:1.0:protocol"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
INCLUSIVE_C14N_COMMENTS = INCLUSIVE_C14N + "#WithComments"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#dsa-sha1"
HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
MD5 = "http://www.w3.org/2001/04/xmldsig-more#md5"
_DIGESTS = {
    SHA1: "sha1",
    MD5: "md5",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_RSA_HASHES = {RSA_SHA1: hashes.SHA1, RSA_SHA256: hashes.SHA256}


def ds(local: str) -> str:
    return ns.qn(ns.DS, local)


def saml_ns(assertion: etree._Element) -> str:
    return etree.QName(assertion).namespace or ""


def id_attribute(assertion: etree._Element) -> str:
    return "ID" if saml_ns(assertion) == ns.SAML2 else "AssertionID"


# --- building and signing ------------------------------------------------------------------------------------


def make_content(*, name_id: str = LEGIT_NAME, assertion_id: str = "_a" + "1" * 40, now: dt.datetime | None = None,
                 not_before: dt.datetime | None = None, not_on_or_after: dt.datetime | None = None) -> AssertionContent:
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return AssertionContent(
        assertion_id=assertion_id, issuer="https://sts.example/", issue_instant=now,
        not_before=not_before or now - dt.timedelta(seconds=60),
        not_on_or_after=not_on_or_after or now + dt.timedelta(minutes=5),
        audience=AUDIENCE, recipient=AUDIENCE, name_id=name_id, name_id_format=NAMEID_EMAIL, authn_instant=now,
        attributes=(Attribute("http://wso2.org/claims/role", ("user",)),),
    )


def build(version: SamlVersion, content: AssertionContent) -> etree._Element:
    return build_saml2(content) if version is SamlVersion.SAML20 else build_saml11(content)


def sign(signer: AssertionSigner, assertion: etree._Element) -> etree._Element:
    return signer.sign_saml2(assertion) if saml_ns(assertion) == ns.SAML2 else signer.sign_saml11(assertion)


def build_signed(signer: AssertionSigner, version: SamlVersion, content: AssertionContent) -> etree._Element:
    return sign(signer, build(version, content))


# --- helpers -------------------------------------------------------------------------------------------------


def target(child: etree._Element) -> etree._Element:
    """Put ``child`` in a fresh ``wst:ValidateTarget`` and return it (still the child)."""
    container = etree.Element(ns.qn(ns.WST, "ValidateTarget"), nsmap={"wst": ns.WST})
    container.append(child)
    return child


def signature(element: etree._Element) -> etree._Element:
    found = element.find(ds("Signature"))
    assert found is not None, "fixture expects a signed assertion"
    return found


def names(element: etree._Element) -> list[etree._Element]:
    """Every NameID (2.0) / NameIdentifier (1.1) at or below ``element``, document order."""
    return list(element.iter(ns.qn(ns.SAML2, "NameID"), ns.qn(ns.SAML1, "NameIdentifier")))


def make_evil(element: etree._Element, new_id: str | None = None) -> etree._Element:
    """SAMLRaider's applyMatchAndReplaceValues: the subject becomes admin@corp (in place; returned)."""
    for name in names(element):
        name.text = EVIL_NAME
    if new_id is not None:
        element.set(id_attribute(element), new_id)
    return element


def unsigned_copy(signed: etree._Element) -> etree._Element:
    clone = copy.deepcopy(signed)
    clone.remove(signature(clone))
    return clone


def response(version_of: etree._Element, *children: etree._Element) -> etree._Element:
    """A ``samlp:Response``-like document root for the recipes that need a parent."""
    protocol = SAMLP2 if saml_ns(version_of) == ns.SAML2 else SAMLP1
    root = etree.Element(ns.qn(protocol, "Response"), ID="_response", nsmap={"samlp": protocol})
    root.extend(children)
    return root


def assertions_in(element: etree._Element) -> list[etree._Element]:
    """Every SAML assertion at or below ``element``, document order (what a naive ``.//Assertion`` would pick)."""
    return list(element.iter(ns.qn(ns.SAML2, "Assertion"), ns.qn(ns.SAML1, "Assertion")))


# --- XSW1-XSW8 (SAMLRaider XSWHelpers.applyXSW1..8) --------------------------------------------------------------


def xsw1(signed: etree._Element) -> etree._Element:
    """Evil assertion (evil ID) keeps the Signature; the unsigned original sits INSIDE ds:Signature."""
    evil = make_evil(copy.deepcopy(signed), EVIL_ID)
    signature(evil).append(unsigned_copy(signed))
    return target(evil)


def xsw2(signed: etree._Element) -> etree._Element:
    """As XSW1 but the unsigned original goes right BEFORE ds:Signature."""
    evil = make_evil(copy.deepcopy(signed), EVIL_ID)
    signature(evil).addprevious(unsigned_copy(signed))
    return target(evil)


def xsw3(signed: etree._Element) -> etree._Element:
    """Response wrapper: unsigned evil assertion (evil ID) inserted before the signed original."""
    return target(response(signed, make_evil(unsigned_copy(signed), EVIL_ID), copy.deepcopy(signed)))


def xsw4(signed: etree._Element) -> etree._Element:
    """Unsigned evil assertion (evil ID) WRAPS the signed original (appended as its last child)."""
    evil = make_evil(unsigned_copy(signed), EVIL_ID)
    evil.append(copy.deepcopy(signed))
    return target(evil)


def xsw5(signed: etree._Element) -> etree._Element:
    """Response wrapper: evil assertion (evil ID, keeps the Signature), then an unsigned copy of the original."""
    return target(response(signed, make_evil(copy.deepcopy(signed), EVIL_ID), unsigned_copy(signed)))


def xsw6(signed: etree._Element) -> etree._Element:
    """As XSW5 but the unsigned copy goes INSIDE the evil assertion's ds:Signature."""
    evil = make_evil(copy.deepcopy(signed), EVIL_ID)
    signature(evil).append(unsigned_copy(signed))
    return target(evil)


def xsw7(signed: etree._Element) -> etree._Element:
    """Response wrapper: ``Extensions`` holding an unsigned evil copy with the SAME ID, before the original."""
    protocol = SAMLP2 if saml_ns(signed) == ns.SAML2 else SAMLP1
    extensions = etree.Element(ns.qn(protocol, "Extensions"))
    extensions.append(make_evil(unsigned_copy(signed)))
    return target(response(signed, extensions, copy.deepcopy(signed)))


def xsw8(signed: etree._Element) -> etree._Element:
    """Evil assertion (same ID) keeps the Signature; the unsigned original sits in a ds:Object inside it."""
    evil = make_evil(copy.deepcopy(signed))
    etree.SubElement(signature(evil), ds("Object")).append(unsigned_copy(signed))
    return target(evil)


XSW = {"V01": xsw1, "V02": xsw2, "V03": xsw3, "V04": xsw4, "V05": xsw5, "V06": xsw6, "V07": xsw7, "V08": xsw8}


# --- other §F / §E shapes --------------------------------------------------------------------------------------


def signature_exclusion(signed: etree._Element) -> etree._Element:
    """G01: the same assertion with its ds:Signature removed."""
    return target(unsigned_copy(signed))


def signature_root_binding(signed_b: etree._Element, unsigned_a: etree._Element) -> etree._Element:
    """V09: assertion A (another ID, evil subject) carries B's signature, whose single Reference names B."""
    a = make_evil(copy.deepcopy(unsigned_a))
    moved = copy.deepcopy(signature(signed_b))
    issuer = a.find(ns.qn(ns.SAML2, "Issuer"))
    if issuer is not None:
        issuer.addnext(moved)
    else:
        a.append(moved)
    return target(a)


def comment_injection(signed: etree._Element) -> etree._Element:
    """G19/V12: ``signed`` names COMMENT_NAME; every NameID becomes ``admin@corp<!---->.evil.test`` (still valid)."""
    element = copy.deepcopy(signed)
    for name in names(element):
        assert name.text == COMMENT_NAME, "sign an assertion for COMMENT_NAME first"
        name.text = EVIL_NAME
        comment = etree.Comment("")
        comment.tail = COMMENT_NAME[len(EVIL_NAME):]
        name.append(comment)
    return target(element)


def _c14n(element: etree._Element, algorithm: str) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=algorithm.startswith(EXC_C14N),
                          with_comments=algorithm.endswith("WithComments"))


def resign(element: etree._Element, key: rsa.RSAPrivateKey) -> etree._Element:
    """Recompute the DigestValues naming the element (ID or AssertionID) and the SignatureValue for what
    SignedInfo now says.

    Works on the verifier's view (the element serialized alone), enveloped + the first c14n transform (signxml
    skips unknown transforms and defaults to inclusive c14n); RSA-SHA1 if SignedInfo says so, else RSA-SHA256.
    """
    sig = signature(element)
    own = {"#" + value for name in ("ID", "AssertionID") if (value := element.get(name))}
    for reference in sig.iterfind(f"{ds('SignedInfo')}/{ds('Reference')}"):
        algorithm = reference.find(ds("DigestMethod")).get("Algorithm")
        if reference.get("URI") not in own or algorithm not in _DIGESTS:
            continue
        body = etree.fromstring(etree.tostring(element))
        body.remove(body.find(ds("Signature")))
        transforms = [t.get("Algorithm") or "" for t in reference.iterfind(f"{ds('Transforms')}/{ds('Transform')}")]
        c14n = next((t for t in transforms if "c14n" in t), C14N_11)
        digest = hashlib.new(_DIGESTS[algorithm], _c14n(body, c14n)).digest()
        reference.find(ds("DigestValue")).text = base64.b64encode(digest).decode()
    standalone = etree.fromstring(etree.tostring(sig)).find(ds("SignedInfo"))
    method = standalone.find(ds("CanonicalizationMethod")).get("Algorithm") or EXC_C14N
    hash_class = _RSA_HASHES.get(standalone.find(ds("SignatureMethod")).get("Algorithm"), hashes.SHA256)
    value = key.sign(_c14n(standalone, method), padding.PKCS1v15(), hash_class())
    sig.find(ds("SignatureValue")).text = base64.b64encode(value).decode()
    return element


def edited(signed: etree._Element, edit: Callable[[etree._Element], object],
           key: rsa.RSAPrivateKey | None) -> etree._Element:
    """Copy, put in a ValidateTarget, apply ``edit`` to the ds:Signature, re-sign with ``key`` (unless None)."""
    element = target(copy.deepcopy(signed))
    edit(signature(element))
    return resign(element, key) if key is not None else element


def _si(sig: etree._Element, local: str) -> etree._Element:
    return sig.find(f".//{ds(local)}")


def _set(local: str, algorithm: str) -> Callable[[etree._Element], None]:
    return lambda sig: _si(sig, local).set("Algorithm", algorithm)


def _transforms(*algorithms: str) -> Callable[[etree._Element], None]:
    def edit(sig: etree._Element) -> None:
        holder = _si(sig, "Transforms")
        for old in list(holder):
            holder.remove(old)
        for algorithm in algorithms:
            transform = etree.SubElement(holder, ds("Transform"), Algorithm=algorithm)
            if algorithm == XSLT:
                sheet = etree.SubElement(transform, "{http://www.w3.org/1999/XSL/Transform}stylesheet", version="1.0")
                etree.SubElement(sheet, "{http://www.w3.org/1999/XSL/Transform}copy-of",
                                 select="document('file:///etc/passwd')")
            elif algorithm == XPATH:
                etree.SubElement(transform, ds("XPath")).text = "true()"
    return edit


def _uri(uri: str) -> Callable[[etree._Element], None]:
    return lambda sig: _si(sig, "Reference").set("URI", uri)


def _extra_references(count: int) -> Callable[[etree._Element], None]:
    def edit(sig: etree._Element) -> None:
        reference = _si(sig, "Reference")
        for _ in range(count):
            reference.addnext(copy.deepcopy(reference))
    return edit


def _hmac_truncated(sig: etree._Element) -> None:
    method = _si(sig, "SignatureMethod")
    method.set("Algorithm", HMAC_SHA1)
    etree.SubElement(method, ds("HMACOutputLength")).text = "8"
    mac = hmac.new(b"attacker", _c14n(etree.fromstring(etree.tostring(_si(sig, "SignedInfo"))), EXC_C14N), "sha1")
    _si(sig, "SignatureValue").text = base64.b64encode(mac.digest()[:1]).decode()


def _object_manifest(sig: etree._Element) -> None:
    manifest = etree.SubElement(etree.SubElement(sig, ds("Object")), ds("Manifest"))
    manifest.append(copy.deepcopy(_si(sig, "Reference")))


def _add_to_key_info(local: str, **attrs: str) -> Callable[[etree._Element], None]:
    return lambda sig: etree.SubElement(_si(sig, "KeyInfo"), ds(local), attrs)


def _text(local: str, text: str, *, child: str | None = None) -> Callable[[etree._Element], None]:
    """Set the text of the ds:``local`` element (or of a new ds:``child`` appended to it)."""
    def edit(sig: etree._Element) -> None:
        element = _si(sig, local)
        (etree.SubElement(element, ds(child)) if child else element).text = text
    return edit


def _both(*edits: Callable[[etree._Element], object]) -> Callable[[etree._Element], None]:
    def edit(sig: etree._Element) -> None:
        for one in edits:
            one(sig)
    return edit


def _key_value(modulus: str | None) -> Callable[[etree._Element], None]:
    def edit(sig: etree._Element) -> None:
        rsa_key = etree.SubElement(etree.SubElement(_si(sig, "KeyInfo"), ds("KeyValue")), ds("RSAKeyValue"))
        etree.SubElement(rsa_key, ds("Modulus")).text = modulus
        etree.SubElement(rsa_key, ds("Exponent")).text = "AQAB"
    return edit


_FAKE_MODULUS = base64.b64encode(b"\xc3" * 256).decode()
_DER_KEY_VALUE = "{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue"

# label ("row-what") -> (edit of the ds:Signature, re-sign with the STS key afterwards?)
SIGNATURE_ATTACKS: dict[str, tuple[Callable[[etree._Element], object], bool]] = {
    "G03-attacker-KeyValue": (_key_value(_FAKE_MODULUS), False),
    "G03-empty-Modulus": (_key_value(None), False),
    "G03-empty-DEREncodedKeyValue": (lambda sig: etree.SubElement(_si(sig, "KeyInfo"), _DER_KEY_VALUE), False),
    "G05-hmac-sha1-8-bits": (_hmac_truncated, False),
    "G05-HMACOutputLength-on-rsa": (_text("SignatureMethod", "160", child="HMACOutputLength"), True),
    "G06-rsa-sha1+sha1": (_both(_set("SignatureMethod", RSA_SHA1), _set("DigestMethod", SHA1)), True),
    "G06-md5-digest": (_set("DigestMethod", MD5), True),
    "G06-dsa-sha1": (_set("SignatureMethod", DSA_SHA1), False),
    "G07-inclusive-c14n": (_set("CanonicalizationMethod", INCLUSIVE_C14N), True),
    "G07-inclusive-c14n-WithComments": (_set("CanonicalizationMethod", INCLUSIVE_C14N_COMMENTS), True),
    "G07-exc-c14n-WithComments": (_set("CanonicalizationMethod", EXC_C14N_COMMENTS), True),
    "G07-c14n11": (_set("CanonicalizationMethod", C14N_11), True),
    "G08-xslt-transform": (_transforms(ENVELOPED, XSLT), True),
    "G08-xpath-transform": (_transforms(ENVELOPED, XPATH, EXC_C14N), True),
    "G08-base64-transform": (_transforms(ENVELOPED, BASE64), True),
    "G08-inclusive-c14n-transform": (_transforms(ENVELOPED, INCLUSIVE_C14N), True),
    "G08-xpointer-uri": (_uri("#xpointer(/)"), True),
    "G09-6-transforms": (_transforms(*[ENVELOPED] * 5, EXC_C14N), True),
    "G09-2-references": (_extra_references(1), True),
    "G09-31-references": (_extra_references(30), True),
    "G10-external-http": (_uri("http://127.0.0.1:1/x"), True),
    "G10-external-file": (_uri("file:///etc/passwd"), True),
    "G10-external-cid": (_uri("cid:x"), True),
    "G11-whole-document": (_uri(""), True),
    "G16-two-signatures": (lambda sig: sig.addnext(copy.deepcopy(sig)), False),
    "G17-invalid-base64": (_text("SignatureValue", "!!!*"), False),
    "G17-1MiB-value": (_text("SignatureValue", base64.b64encode(bytes(3 << 18)).decode()), False),
    "G17-empty-SignatureValue": (_text("SignatureValue", ""), False),
    "G20-schema-invalid-signature": (lambda sig: etree.SubElement(sig, ds("Bogus")), True),
    "E-object-manifest": (_object_manifest, True),
    "E-retrieval-method": (_add_to_key_info("RetrievalMethod", URI="http://127.0.0.1:1/k"), True),
}


def signature_attack(signed: etree._Element, key: rsa.RSAPrivateKey, label: str) -> etree._Element:
    """The SIGNATURE_ATTACKS[label] variant of ``signed``, re-signed with ``key`` where the table says so."""
    edit, resigned = SIGNATURE_ATTACKS[label]
    return edited(signed, edit, key if resigned else None)


def hmac_signed(unsigned: etree._Element, secret: bytes = b"attacker") -> etree._Element:
    """G04: the assertion signed with HMAC-SHA256 under an attacker-chosen secret (key-type confusion)."""
    signer = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.HMAC_SHA256,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    attribute = id_attribute(unsigned)
    signed: etree._Element = signer.sign(copy.deepcopy(unsigned), key=secret,
                                         reference_uri="#" + (unsigned.get(attribute) or ""), id_attribute=attribute)
    return target(signed)


def saml11_signed_over_id_attribute(signed: etree._Element, key: rsa.RSAPrivateKey) -> etree._Element:
    """V13: a SAML 1.1 assertion also carrying ``ID="_other"``, its one Reference re-pointed at ``#_other`` and
    re-signed: valid for a verifier that resolves ``ID``, but SAML 1.1 identifies assertions by AssertionID only."""
    element = target(copy.deepcopy(signed))
    element.set("ID", "_other")
    _si(signature(element), "Reference").set("URI", "#_other")
    return resign(element, key)


def c14n_bomb(signed: etree._Element, *, algorithm: str = INCLUSIVE_C14N, declarations: int = 1000,
              references: int = 300) -> etree._Element:
    """G07/J06: ``declarations`` xmlns:pN on the assertion, SignedInfo in ``algorithm``, ``references`` bogus
    References (invalid signature); ~80 KB. Built as text: the namespace flood is spliced into the start tag."""
    element = copy.deepcopy(signed)
    signed_info = signature(element).find(ds("SignedInfo"))
    signed_info.find(ds("CanonicalizationMethod")).set("Algorithm", algorithm)
    for old in signed_info.findall(ds("Reference")):
        signed_info.remove(old)
    for i in range(references):
        signed_info.append(etree.fromstring(
            f'<ds:Reference xmlns:ds="{ns.DS}" URI="#bogus{i}"><ds:DigestMethod Algorithm='
            f'"http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>{"A" * 43}=</ds:DigestValue></ds:Reference>'))
    text = etree.tostring(element).decode()
    cut = text.index(" ")  # right after the assertion's tag name
    flood = "".join(f' xmlns:p{i}="urn:bomb:{i}"' for i in range(declarations))
    return target(etree.fromstring(text[:cut] + flood + text[cut:]))


def duplicate_ids(signed: etree._Element, key: rsa.RSAPrivateKey) -> dict[str, etree._Element]:
    """G13: the assertion's own ID value repeated on an inner element after signing (ID, Id, xml:id, wsu:Id), and
    once (``same-name-resigned``) inside re-signed content, so that only the ambiguity check can object."""
    own = signed.get(id_attribute(signed)) or ""
    saml = saml_ns(signed)
    inner = ns.qn(saml, "Subject") if saml == ns.SAML2 else ns.qn(saml, "Conditions")
    variants: dict[str, etree._Element] = {}
    for label, attribute, resigned in (("same-name", id_attribute(signed), False), ("Id", "Id", False),
                                       ("xml:id", ns.qn(ns.XML, "id"), False), ("wsu:Id", ns.qn(ns.WSU, "Id"), False),
                                       ("same-name-resigned", id_attribute(signed), True)):
        element = target(copy.deepcopy(signed))
        next(element.iter(inner)).set(attribute, own)
        variants[label] = resign(element, key) if resigned else element
    return variants
