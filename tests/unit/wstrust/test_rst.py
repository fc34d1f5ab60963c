"""RST parsing: every child typed or faulted (wstrust-protocol.md §4)."""

from __future__ import annotations

import pytest
from lxml import etree

from sts import errors, ns
from sts.wstrust.actions import Operation
from sts.wstrust.model import AppliesTo, ClaimRequest, Renewing
from sts.wstrust.rst import parse_rst
from sts.wstrust.version import TrustVersion

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
    trust = TrustVersion.of_namespace(trust_ns)
    assert trust is not None
    return parse_rst(element, trust, Operation.ISSUE)


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
        (f'<a:ActAs xmlns:a="{ns.WST14}"/>', errors.InvalidRequest),
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
        "empty_act_as",
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
    assert parsed.trust is TrustVersion.FEB2005 and parsed.token_type == "urn:x"


def test_elements_of_the_other_trust_version_are_unknown() -> None:
    with pytest.raises(errors.BadRequest):
        parse(rst(f'<t:TokenType xmlns:t="{ns.WST05}">x</t:TokenType>'))


# --- wst:SecondaryParameters (WS-Trust 1.3 §4.1): the RP's RequestSecurityTokenTemplate, as WCF sends it -------

SAML11 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
SAML20 = "urn:oasis:names:tc:SAML:2.0:assertion"
TEMPLATE = (
    f"<wst:TokenType>{SAML11}</wst:TokenType>"
    f"<wst:KeyType>{WST}/SymmetricKey</wst:KeyType>"
    "<wst:KeySize>256</wst:KeySize>"
    '<wst:Claims Dialect="http://schemas.xmlsoap.org/ws/2005/05/identity">'
    '<wsid:ClaimType Uri="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"/></wst:Claims>'
    f"<wst:ComputedKeyAlgorithm>{WST}/CK/PSHA1</wst:ComputedKeyAlgorithm>"
    "<wst:KeyWrapAlgorithm>http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p</wst:KeyWrapAlgorithm>"
    "<wst:EncryptWith>http://www.w3.org/2001/04/xmlenc#aes256-cbc</wst:EncryptWith>"
    "<wst:SignWith>http://www.w3.org/2000/09/xmldsig#hmac-sha1</wst:SignWith>"
    "<wst:CanonicalizationAlgorithm>http://www.w3.org/2001/10/xml-exc-c14n#</wst:CanonicalizationAlgorithm>"
    "<wst:EncryptionAlgorithm>http://www.w3.org/2001/04/xmlenc#aes256-cbc</wst:EncryptionAlgorithm>"
    "<wst:SignatureAlgorithm>http://www.w3.org/2000/09/xmldsig#hmac-sha1</wst:SignatureAlgorithm>"
)


def secondary(children: str) -> str:
    return f"<wst:SecondaryParameters>{children}</wst:SecondaryParameters>"


def test_secondary_parameters_fill_what_the_top_level_lacks() -> None:
    parsed = parse(rst(APPLIES + secondary(TEMPLATE)))
    assert parsed.token_type == SAML11
    assert (parsed.key_type, parsed.key_size) == (f"{WST}/SymmetricKey", 256)
    assert parsed.computed_key_algorithm == f"{WST}/CK/PSHA1"
    assert parsed.claims is not None
    assert parsed.claims.claims == (ClaimRequest("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"),)


def test_top_level_values_win_over_secondary_parameters() -> None:
    top = (
        f"<wst:TokenType>{SAML20}</wst:TokenType><wst:KeyType>{WST}/Bearer</wst:KeyType>"
        '<wst:Claims Dialect="http://wso2.org/claims"><wsid:ClaimType Uri="http://wso2.org/claims/givenname"/>'
        "</wst:Claims>"
    )
    for order in (top + secondary(TEMPLATE), secondary(TEMPLATE) + top):  # wherever the element sits
        parsed = parse(rst(order))
        assert (parsed.token_type, parsed.key_type) == (SAML20, f"{WST}/Bearer")
        assert parsed.claims is not None and parsed.claims.dialect == "http://wso2.org/claims"
        assert parsed.key_size == 256  # not at the top level: the template's


def test_an_unused_secondary_value_is_not_resolved() -> None:
    """Token types are resolved after parsing, for the value used: a template's unknown one under a top-level
    TokenType is never looked at (the same value used is ``wst:BadRequest``, tested over HTTP)."""
    parsed = parse(rst(f"<wst:TokenType>{SAML20}</wst:TokenType>" + secondary("<wst:TokenType>urn:x</wst:TokenType>")))
    assert parsed.token_type == SAML20
    assert parse(rst(secondary("<wst:TokenType>urn:x</wst:TokenType>"))).token_type == "urn:x"


def test_empty_secondary_parameters_change_nothing() -> None:
    parsed = parse(rst(secondary("")))
    assert (parsed.token_type, parsed.key_type, parsed.key_size, parsed.claims) == (None, None, None, None)


def test_secondary_parameters_in_the_feb_2005_namespace_are_read_alike() -> None:
    parsed = parse(rst(secondary("<wst:TokenType>urn:x</wst:TokenType>"), ns.WST05), ns.WST05)
    assert parsed.token_type == "urn:x"


@pytest.mark.parametrize(
    ("children", "error"),
    [
        ("<wst:TokenType>a</wst:TokenType><wst:TokenType>b</wst:TokenType>", errors.InvalidRequest),
        ("<wst:KeySize>abc</wst:KeySize>", errors.InvalidRequest),
        ('<wst:Claims><other xmlns="urn:x"/></wst:Claims>', errors.BadRequest),
        ('<foo:Bar xmlns:foo="urn:x"/>', errors.BadRequest),
        ("<wst:Unknown/>", errors.BadRequest),
        (f'<a:ActAs xmlns:a="{ns.WST14}"/>', errors.InvalidRequest),
        (f'<t:TokenType xmlns:t="{ns.WST05}">x</t:TokenType>', errors.BadRequest),
        ("<wst:TokenType><x/></wst:TokenType>", errors.InvalidRequest),
        (secondary(""), errors.InvalidRequest),
        (APPLIES, errors.InvalidRequest),
        (f"<wst:RequestType>{WST}/Issue</wst:RequestType>", errors.InvalidRequest),
        (f'<wst:Entropy><wst:BinarySecret Type="{WST}/Nonce">{"A" * 43}=</wst:BinarySecret></wst:Entropy>',
         errors.InvalidRequest),
        ("<wst:UseKey><x/></wst:UseKey>", errors.InvalidRequest),
        ("<wst:RenewTarget><x/></wst:RenewTarget>", errors.InvalidRequest),
        ('<wst:Renewing Allow="true"/>', errors.InvalidRequest),
        ("<wst:Lifetime/>", errors.InvalidRequest),
    ],
    ids=[
        "two_token_types",
        "key_size_text",
        "claim_expression",
        "foreign_element",
        "unknown_wst",
        "empty_act_as",
        "other_trust_version",
        "token_type_element",
        "nested",
        "applies_to",
        "request_type",
        "entropy",
        "use_key",
        "renew_target",
        "renewing",
        "lifetime",
    ],
)
def test_malformed_secondary_parameters(children: str, error: type[errors.STSError]) -> None:
    with pytest.raises(error):
        parse(rst(secondary(children)))


def test_two_secondary_parameters_are_invalid() -> None:
    with pytest.raises(errors.InvalidRequest):
        parse(rst(secondary("") + secondary("")))


# --- OnBehalfOf (WS-Trust 1.3 §9.1) and ActAs (WS-Trust 1.4) --------------------------------------------------


def test_on_behalf_of_and_act_as_hold_their_one_token() -> None:
    parsed = parse(rst(f'<wst:OnBehalfOf><x:T xmlns:x="urn:x"/></wst:OnBehalfOf><a:ActAs xmlns:a="{ns.WST14}">'
                       '<y:U xmlns:y="urn:y"/></a:ActAs>'))
    assert parsed.on_behalf_of is not None and parsed.on_behalf_of.tag == "{urn:x}T"
    assert parsed.act_as is not None and parsed.act_as.tag == "{urn:y}U"


@pytest.mark.parametrize(
    "children",
    [
        "<wst:OnBehalfOf/>",
        '<wst:OnBehalfOf><x:T xmlns:x="urn:x"/><x:T xmlns:x="urn:x"/></wst:OnBehalfOf>',
        '<wst:OnBehalfOf><x:T xmlns:x="urn:x"/></wst:OnBehalfOf>' * 2,
        f'<a:ActAs xmlns:a="{ns.WST14}"><x:T xmlns:x="urn:x"/><x:T xmlns:x="urn:x"/></a:ActAs>',
    ],
    ids=["empty", "two_tokens", "two_elements", "act_as_two_tokens"],
)
def test_malformed_delegation_elements_are_invalid_requests(children: str) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        parse(rst(children))
    assert raised.value.reason in ("malformed_delegation_element", "duplicate_element")


def test_act_as_is_unknown_in_feb_2005_requests() -> None:
    with pytest.raises(errors.BadRequest):
        parse(rst(f'<a:ActAs xmlns:a="{ns.WST14}"><x:T xmlns:x="urn:x"/></a:ActAs>', ns.WST05), ns.WST05)


@pytest.mark.parametrize("trust", list(TrustVersion))
def test_the_known_tag_table_names_each_tag_as_the_naming_rules_do(trust: TrustVersion) -> None:
    from sts.wstrust import rst as rst_module

    table = rst_module._KNOWN_TAGS[trust]
    assert len(table) >= 30  # every singleton and ignored parameter, AppliesTo in both policy namespaces
    for tag, name in table.items():
        assert rst_module._known_name(etree.Element(tag), trust) == name


def test_a_uri_split_by_comments_is_read_whole() -> None:
    parsed = parse(
        rst(
            "<wst:TokenType> urn:oasis:names:tc:<!--a-->SAML:2.0:assertion<?pi x?> </wst:TokenType>"
            "<wsp:AppliesTo><wsa:EndpointReference><wsa:Address><!--b-->https://rp.example/</wsa:Address>"
            "</wsa:EndpointReference></wsp:AppliesTo>"
        )
    )
    assert parsed.token_type == "urn:oasis:names:tc:SAML:2.0:assertion"
    assert parsed.applies_to == AppliesTo("https://rp.example/", ns.WSP, ns.WSA)


@pytest.mark.parametrize(
    "children",
    [
        "<wst:TokenType>urn:a<wst:x/></wst:TokenType>",
        "<wst:TokenType><!--only a comment--></wst:TokenType>",
        "<wst:TokenType/>",
        f"<wst:KeyType>{'k' * 2049}</wst:KeyType>",
    ],
)
def test_a_uri_with_an_element_child_or_no_text_is_invalid(children: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        parse(rst(children))
    assert caught.value.reason == "bad_value"


_TARGET_OF = {Operation.VALIDATE: "ValidateTarget", Operation.RENEW: "RenewTarget", Operation.CANCEL: "CancelTarget"}
_STR = f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"/>'


@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize("target", sorted(_TARGET_OF.values()))
def test_a_target_of_another_binding_is_refused(operation: Operation, target: str) -> None:
    """WS-Trust 1.3 §5, §6.1, §7: Renew has a RenewTarget, Validate a ValidateTarget, Cancel a CancelTarget; a Cancel
    holding only a ValidateTarget must not cancel, and an Issue holds none."""
    element = rst(f"<wst:{target}>{_STR}</wst:{target}>")
    if _TARGET_OF.get(operation) == target:
        assert parse_rst(element, TrustVersion.TRUST13, operation).target is not None
        return
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_rst(element, TrustVersion.TRUST13, operation)
    assert caught.value.reason == "foreign_target"


def test_a_second_target_of_another_kind_does_not_replace_the_first() -> None:
    element = rst(f"<wst:ValidateTarget>{_STR}</wst:ValidateTarget><wst:CancelTarget><x/></wst:CancelTarget>")
    with pytest.raises(errors.InvalidRequest) as caught:
        parse_rst(element, TrustVersion.TRUST13, Operation.VALIDATE)
    assert caught.value.reason == "foreign_target"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T00:00:00.1234567Z", (2030, 1, 1, 0, 0, 0, 123456)),  # .NET's "o" format
        ("2030-01-01T00:00:00.1234567890123Z", (2030, 1, 1, 0, 0, 0, 123456)),  # 13 digits (was: InvalidTimeRange)
        ("2030-01-01T00:00:00.999999999999999999+14:00", (2029, 12, 31, 10, 0, 0, 999999)),
        ("2030-01-01T00:00:00-12:00", (2030, 1, 1, 12, 0, 0, 0)),
    ],
)
def test_lifetime_instants_of_any_precision_and_offset_read_as_utc(text: str, expected: tuple[int, ...]) -> None:
    """README ("lenient input"): a Lifetime's instants take any precision and any zone offset, read as UTC."""
    import datetime as dt

    parsed = parse(rst(f"<wst:Lifetime><wsu:Created>{text}</wsu:Created></wst:Lifetime>"))
    assert parsed.lifetime is not None and parsed.lifetime.created == dt.datetime(*expected, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text", ["2030-01-01T00:00:00", "2030-01-01T24:00:00Z", "2016-12-31T23:59:60Z", "-0001-01-01T00:00:00Z",
             "10000-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00", "2030-01-01T00:00:00+14:01",
             "2030-01-01T00:00:00." + "1" * 50 + "Z"],
)
def test_lifetime_instants_without_a_zone_or_out_of_range_are_invalid_time_ranges(text: str) -> None:
    with pytest.raises(errors.InvalidTimeRange) as caught:
        parse(rst(f"<wst:Lifetime><wsu:Expires>{text}</wsu:Expires></wst:Lifetime>"))
    assert caught.value.reason == "bad_lifetime"


@pytest.mark.parametrize(
    "value",
    ["\u00b2", "\u2082", "\u0662\u0665\u0666", "\uff12\uff15\uff16", "\u09e8\u09eb\u09ec"],
    ids=["superscript_two", "subscript_two", "arabic_indic_256", "fullwidth_256", "bengali_256"],
)
@pytest.mark.parametrize("secondary_parameters", [False, True], ids=["rst", "secondary_parameters"])
def test_a_key_size_of_non_ascii_digits_is_an_invalid_request(value: str, secondary_parameters: bool) -> None:
    """Found by tests/test_fuzz.py: ``str.isdigit`` is true of ``²`` (which ``int`` then refuses: an unexpected
    ValueError answered as wst:RequestFailed and logged with a traceback) and of other scripts' digits (which
    ``int`` converts). xsd:unsignedInt is ASCII digits only: every one of them is wst:InvalidRequest."""
    children = f"<wst:KeySize>{value}</wst:KeySize>"
    element = rst(secondary(children) if secondary_parameters else children)
    with pytest.raises(errors.InvalidRequest) as caught:
        parse(element)
    assert caught.value.fault_qname() == (ns.WST, "InvalidRequest")
    assert caught.value.reason == "bad_key_size"
