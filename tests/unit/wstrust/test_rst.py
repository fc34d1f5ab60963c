"""RST parsing: every child typed or faulted (wstrust-protocol.md §4)."""

from __future__ import annotations

import pytest
from lxml import etree

from sts import errors, ns
from sts.wstrust.actions import Operation
from sts.wstrust.model import AppliesTo, ClaimRequest, Renewing
from sts.wstrust.rst import parse_rst

WST = ns.WST


def rst(children: str, trust_ns: str = WST, attrs: str = "") -> etree._Element:
    return etree.fromstring(
        f'<wst:RequestSecurityToken xmlns:wst="{trust_ns}" xmlns:wsp="{ns.WSP}" xmlns:wsa="{ns.WSA}" '
        f'xmlns:wsu="{ns.WSU}" xmlns:wsid="{ns.WSID}" {attrs}>'
        f"<wst:RequestType>{trust_ns}/Issue</wst:RequestType>{children}</wst:RequestSecurityToken>"
    )


APPLIES = (
    "<wsp:AppliesTo><wsa:EndpointReference><wsa:Address> https://rp.example/ </wsa:Address>"
    "</wsa:EndpointReference></wsp:AppliesTo>"
)


def parse(element: etree._Element, trust_ns: str = WST):  # type: ignore[no-untyped-def]
    return parse_rst(element, trust_ns, Operation.ISSUE)


def test_full_request_is_typed() -> None:
    parsed = parse(
        rst(
            "<wst:TokenType> urn:oasis:names:tc:SAML:2.0:assertion </wst:TokenType>"
            + APPLIES
            + f"<wst:KeyType>{WST}/Bearer</wst:KeyType>"
            + '<wst:Claims Dialect="http://wso2.org/claims"><wsid:ClaimType Uri="http://wso2.org/claims/emailaddress"/>'
            '<wsid:ClaimType Uri="http://wso2.org/claims/role" Optional="false"/></wst:Claims>'
            '<wst:Renewing Allow="false" OK="true"/>',
            attrs='Context="ctx-1"',
        )
    )
    assert parsed.context == "ctx-1"
    assert parsed.token_type == "urn:oasis:names:tc:SAML:2.0:assertion"
    assert parsed.applies_to == AppliesTo("https://rp.example/", ns.WSP, ns.WSA)
    assert parsed.key_type == f"{WST}/Bearer"
    assert parsed.claims is not None and parsed.claims.dialect == "http://wso2.org/claims"
    assert parsed.claims.claims == (
        ClaimRequest("http://wso2.org/claims/emailaddress", True),
        ClaimRequest("http://wso2.org/claims/role", False),
    )
    assert parsed.renewing == Renewing(allow=False, ok=True)


def test_qualified_dialect_attribute_is_read() -> None:
    parsed = parse(rst('<wst:Claims wst:Dialect="http://wso2.org/claims"/>'))
    assert parsed.claims is not None and parsed.claims.dialect == "http://wso2.org/claims"


def test_w3c_policy_and_submission_addressing_accepted() -> None:
    element = rst(
        f'<p:AppliesTo xmlns:p="{ns.WSP15}"><a:EndpointReference xmlns:a="{ns.WSA04}"><a:Address>urn:rp</a:Address>'
        "</a:EndpointReference></p:AppliesTo>"
    )
    assert parse(element).applies_to == AppliesTo("urn:rp", ns.WSP15, ns.WSA04)


@pytest.mark.parametrize(
    ("children", "error"),
    [
        ("<wst:TokenType>a</wst:TokenType><wst:TokenType>b</wst:TokenType>", errors.InvalidRequest),
        (APPLIES + APPLIES, errors.InvalidRequest),
        (
            "<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>a</wsa:Address><wsa:Address>b</wsa:Address>"
            "</wsa:EndpointReference></wsp:AppliesTo>",
            errors.InvalidRequest,
        ),
        ("<wsp:AppliesTo><wsa:EndpointReference/></wsp:AppliesTo>", errors.InvalidRequest),
        ('<foo:Bar xmlns:foo="urn:x"/>', errors.BadRequest),
        ("<wst:Unknown/>", errors.BadRequest),
        ("<wst:KeySize>abc</wst:KeySize>", errors.InvalidRequest),
        ("<wst:KeySize>-1</wst:KeySize>", errors.InvalidRequest),
        ("<wst:Lifetime><wsu:Created>yesterday</wsu:Created></wst:Lifetime>", errors.InvalidTimeRange),
        ('<wst:Claims><wsid:ClaimType Uri="x" Optional="maybe"/></wst:Claims>', errors.InvalidRequest),
        ('<wst:Claims><other xmlns="urn:x"/></wst:Claims>', errors.BadRequest),
        ("<wst:Entropy><wst:BinarySecret>AAAA</wst:BinarySecret></wst:Entropy>", errors.InvalidRequest),
        ("<wst:Entropy><wst:BinarySecret>!!!</wst:BinarySecret></wst:Entropy>", errors.InvalidRequest),
        (f'<a:ActAs xmlns:a="{ns.WST14}"/>', errors.BadRequest),
        ("<wst:TokenType><x/></wst:TokenType>", errors.InvalidRequest),
        ("<wst:TokenType>  </wst:TokenType>", errors.InvalidRequest),
    ],
    ids=[
        "two_token_types",
        "two_applies_to",
        "two_addresses",
        "no_address",
        "foreign_element",
        "unknown_wst",
        "key_size_text",
        "key_size_negative",
        "bad_lifetime",
        "bad_optional",
        "claim_expression",
        "short_entropy",
        "bad_entropy",
        "act_as",
        "token_type_element",
        "empty_token_type",
    ],
)
def test_malformed_requests(children: str, error: type[errors.STSError]) -> None:
    with pytest.raises(error):
        parse(rst(children))


def test_context_over_256_chars_is_invalid() -> None:
    with pytest.raises(errors.InvalidRequest):
        parse(rst("", attrs=f'Context="{"x" * 257}"'))


def test_entropy_is_decoded() -> None:
    parsed = parse(
        rst(f'<wst:Entropy><wst:BinarySecret Type="{WST}/Nonce">{"A" * 43}=</wst:BinarySecret></wst:Entropy>')
    )
    assert parsed.entropy == bytes(32)


def test_algorithm_wishes_are_ignored() -> None:
    parsed = parse(rst("<wst:SignatureAlgorithm>http://www.w3.org/2000/09/xmldsig#rsa-sha1</wst:SignatureAlgorithm>"))
    assert parsed.token_type is None


def test_feb_2005_namespace() -> None:
    parsed = parse(rst("<wst:TokenType>urn:x</wst:TokenType>", ns.WST05), ns.WST05)
    assert parsed.trust_ns == ns.WST05 and parsed.token_type == "urn:x"


def test_elements_of_the_other_trust_version_are_unknown() -> None:
    with pytest.raises(errors.BadRequest):
        parse(rst(f'<t:TokenType xmlns:t="{ns.WST05}">x</t:TokenType>'))
