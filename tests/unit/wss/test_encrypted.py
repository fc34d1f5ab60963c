"""Structure of encrypted requests (sts.wss.encrypted): the Security header inventory, EncryptedKey and
EncryptedData shapes, the two places that may be encrypted, and decrypted plaintext put back in place."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from sts import ns
from sts.errors import FailedAuthentication, InvalidSecurity
from sts.wss import encrypted as e
from sts.xmlutil import ParserLimits

S = "http://schemas.xmlsoap.org/soap/envelope/"
LIMITS = ParserLimits(max_depth=40, max_elements=2000, max_attributes=50, max_namespaces=50, max_text_bytes=65536)
CIPHER = base64.b64encode(b"x" * 48).decode()
KEY = f"""<xenc:EncryptedKey Id="EK-1"><xenc:EncryptionMethod Algorithm="{e.ns.XENC}rsa-oaep-mgf1p"/>
<ds:KeyInfo><wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="x">AAAA</wsse:KeyIdentifier>
</wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{CIPHER}</xenc:CipherValue>
</xenc:CipherData>{{inner}}</xenc:EncryptedKey>"""
DATA = f"""<xenc:EncryptedData Id="{{id}}" Type="{e.ns.XENC}{{kind}}"><xenc:EncryptionMethod
Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/><ds:KeyInfo><wsse:SecurityTokenReference>
<wsse:Reference URI="#EK-1"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData>
<xenc:CipherValue>{CIPHER}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>"""


def envelope(header: str, body: str | None = None, *, inner: bool = True, extra_header: str = "") -> etree._Element:
    listed = '<xenc:ReferenceList><xenc:DataReference URI="#ED-B"/></xenc:ReferenceList>' if inner else ""
    body = DATA.format(id="ED-B", kind="Content") if body is None else body
    return etree.fromstring(
        f'<s:Envelope xmlns:s="{S}" xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}" xmlns:xenc="{ns.XENC}" '
        f'xmlns:ds="{ns.DS}" xmlns:wst="{ns.WST}"><s:Header>{extra_header}<wsse:Security>'
        f'<ds:Signature/><wsu:Timestamp wsu:Id="TS"/>{KEY.format(inner=listed)}{header}</wsse:Security>'
        f'</s:Header><s:Body wsu:Id="B">{body}</s:Body></s:Envelope>'
    )


def parts(root: etree._Element, *, symmetric: bool = False) -> tuple[e.ProtectedHeader, e.EncryptedKeyFacts]:
    header = e.read_protected_header(root[0][-1], symmetric=symmetric)
    return header, e.read_encrypted_key(header.encrypted_key)


def test_an_asymmetric_request_names_its_body_ciphertext() -> None:
    root = envelope('<wsse:BinarySecurityToken wsu:Id="X"/>')
    header, key = parts(root)
    assert key.identifier == "EK-1" and key.data_ids == ("ED-B",) and key.wrapped == b"x" * 48
    (target,) = e.encryption_targets(header, key, root[1])
    assert target.kind == e.CONTENT and target.algorithm.endswith("aes256-gcm")


@pytest.mark.parametrize(
    ("extra", "symmetric", "reason"),
    [
        ("<wsse:UsernameToken/>", False, "header_extra"),  # a UT is no part of the asymmetric binding
        ('<wsse:BinarySecurityToken wsu:Id="X"/><wsse:UsernameToken/>', True, "header_extra"),
        ('<wsu:Timestamp wsu:Id="T2"/>', False, "header_duplicate"),
        ('<wsse11:SignatureConfirmation xmlns:wsse11="' + ns.WSSE11 + '"/>', False, "header_extra"),
    ],
)
def test_the_inventory_refuses_anything_else(extra: str, symmetric: bool, reason: str) -> None:
    with pytest.raises(InvalidSecurity) as refused:
        e.read_protected_header(envelope(extra)[0][-1], symmetric=symmetric)
    assert refused.value.reason == reason


def test_a_symmetric_request_needs_a_username_token() -> None:
    with pytest.raises(FailedAuthentication):
        e.read_protected_header(envelope("")[0][-1], symmetric=True)
    header = e.read_protected_header(envelope("<wsse:UsernameToken/>")[0][-1], symmetric=True)
    assert header.username_token is not None and header.encrypted_token is None


def test_encrypted_key_shape() -> None:
    root = envelope("")
    root.find(f".//{{{ns.XENC}}}EncryptedKey").set("Type", "x")  # type: ignore[union-attr]
    with pytest.raises(InvalidSecurity):
        parts(root)
    root = envelope("")
    method = root.find(f".//{{{ns.XENC}}}EncryptedKey/{{{ns.XENC}}}EncryptionMethod")
    etree.SubElement(method, f"{{{ns.XENC}}}OAEPparams").text = "AAAA"  # type: ignore[arg-type]
    assert parts(root)[1].digest == "-"  # an OAEP label: refused by the key transport allow-list


@pytest.mark.parametrize(
    ("body", "extra_header", "reason"),
    [
        ("<wst:RequestSecurityToken/>", "", "body_not_encrypted"),
        (DATA.format(id="ED-B", kind="Element"), "", "encrypted_data_type"),
        (None, '<x:H xmlns:x="urn:x">' + DATA.format(id="ED-H", kind="Content") + "</x:H>", "encryption_target"),
        (DATA.format(id="ED-OTHER", kind="Content"), "", "encryption_reference"),
    ],
)
def test_only_the_body_content_may_be_encrypted(body: str | None, extra_header: str, reason: str) -> None:
    root = envelope("", body, extra_header=extra_header)
    header, key = parts(root)
    with pytest.raises(InvalidSecurity) as refused:
        e.encryption_targets(header, key, root[1])
    assert refused.value.reason == reason


def test_the_encrypted_username_token_is_listed_by_the_header_reference_list() -> None:
    listed = ('<xenc:ReferenceList><xenc:DataReference URI="#ED-B"/><xenc:DataReference URI="#ED-U"/>'
              "</xenc:ReferenceList>")
    root = envelope(listed + DATA.format(id="ED-U", kind="Element"), inner=False)
    header, key = parts(root, symmetric=True)
    body, token = e.encryption_targets(header, key, root[1])
    assert (body.kind, token.kind) == (e.CONTENT, e.ELEMENT)


def _target(root: etree._Element) -> e.EncryptedDataFacts:
    header, key = parts(root)
    return e.encryption_targets(header, key, root[1])[0]


def test_plaintext_is_parsed_with_the_namespaces_in_scope_and_put_in_place() -> None:
    root = envelope("")
    target = _target(root)
    plaintext = e.parse_plaintext(target, b"<wst:RequestSecurityToken><s:x/></wst:RequestSecurityToken>", LIMITS)
    rst = e.splice(target, plaintext)
    assert rst.getparent() is root[1] and rst.tag == f"{{{ns.WST}}}RequestSecurityToken" and rst[0].tag == f"{{{S}}}x"


@pytest.mark.parametrize(
    "plaintext",
    [
        b'<!DOCTYPE x [<!ENTITY e "y">]><wst:RequestSecurityToken/>',
        b"<?pi x?><wst:RequestSecurityToken/>",
        b"<wst:RequestSecurityToken/><wst:RequestSecurityToken/>",
        b"text<wst:RequestSecurityToken/>",
        b"<wst:RequestSecurityToken><xenc:EncryptedData/></wst:RequestSecurityToken>",
        b"<undeclared:x/>",
        b"\xff\xfe not utf-8",
        b"<a>" * 50 + b"</a>" * 50,
    ],
    ids=["doctype", "pi", "two-elements", "text", "nested-encryption", "undeclared-prefix", "bytes", "deep"],
)
def test_hostile_plaintext_is_refused(plaintext: bytes) -> None:
    with pytest.raises(e.PlaintextRefused):
        e.parse_plaintext(_target(envelope("")), plaintext, LIMITS)


def test_an_encrypted_header_element_must_be_a_username_token() -> None:
    listed = '<xenc:ReferenceList><xenc:DataReference URI="#ED-B"/><xenc:DataReference URI="#ED-U"/>' \
             "</xenc:ReferenceList>"
    root = envelope(listed + DATA.format(id="ED-U", kind="Element"), inner=False)
    header, key = parts(root, symmetric=True)
    token = e.encryption_targets(header, key, root[1])[1]
    with pytest.raises(e.PlaintextRefused):
        e.parse_plaintext(token, b"<wsu:Timestamp/>", LIMITS)
    assert e.parse_plaintext(token, b"<wsse:UsernameToken/>", LIMITS)[0].tag == f"{{{ns.WSSE}}}UsernameToken"
