"""RST parameters read by sts.wstrust.rst: Lifetime, AppliesTo, Renewing, Entropy and the target elements.

Accepted forms are checked for their typed value, refused ones for the exact fault class and reason
(WS-Trust 1.3 §4.1, §4.4.1, §7-§9; wstrust-protocol.md §4, §11; rows I04, I12).
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from lxml import etree

from sts import errors, ns
from sts.wstrust.actions import Operation
from sts.wstrust.model import Lifetime, Renewing
from sts.wstrust.rst import parse_rst
from sts.wstrust.version import TrustVersion

WST = ns.WST


def _rst(children: str, trust_ns: str = WST) -> etree._Element:
    return etree.fromstring(
        f'<wst:RequestSecurityToken xmlns:wst="{trust_ns}" xmlns:wsp="{ns.WSP}" xmlns:wsa="{ns.WSA}" '
        f'xmlns:wsu="{ns.WSU}" xmlns:wsse="{ns.WSSE}">'
        f"<wst:RequestType>{trust_ns}/Issue</wst:RequestType>{children}</wst:RequestSecurityToken>"
    )


def _parse(children: str, operation: Operation = Operation.ISSUE, trust_ns: str = WST):  # type: ignore[no-untyped-def]
    return parse_rst(_rst(children, trust_ns), TrustVersion(trust_ns), operation)


def _refused(children: str, error: type[errors.STSError], reason: str, operation: Operation = Operation.ISSUE) -> None:
    with pytest.raises(errors.STSError) as raised:
        _parse(children, operation)
    assert type(raised.value) is error
    assert raised.value.reason == reason


# --- Lifetime (WS-Trust 1.3 §4.4.1) ---------------------------------------------------------------------------------


def test_lifetime_with_both_instants() -> None:
    parsed = _parse(
        "<wst:Lifetime>\n  <wsu:Created>\n    2030-01-01T12:00:00Z\n  </wsu:Created>\n"
        "  <wsu:Expires>2030-01-01T13:00:00.5+00:00</wsu:Expires>\n</wst:Lifetime>"
    )  # pretty-printed, as WSO2's samples send it (R17)
    assert parsed.lifetime == Lifetime(
        dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, 13, 0, 0, 500_000, tzinfo=dt.UTC)
    )


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2030-01-01T12:00:00.123456Z", dt.datetime(2030, 1, 1, 12, 0, 0, 123_456, tzinfo=dt.UTC)),  # isoformat()
        ("2030-01-01T12:00:00.1234567Z", dt.datetime(2030, 1, 1, 12, 0, 0, 123_456, tzinfo=dt.UTC)),  # .NET ticks
        ("2030-01-01T14:00:00+02:00", dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)),
        ("2030-01-01T07:30:00-04:30", dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)),
    ],
)
def test_lifetime_takes_any_precision_and_zone(text: str, instant: dt.datetime) -> None:
    """A Lifetime is an xsd:dateTime (WS-Trust 1.3 §4.4.1): the Timestamp profile's limits (BSP R3217, R3220:
    UTC, milliseconds) are for the security header, not here."""
    parsed = _parse(f"<wst:Lifetime><wsu:Created>{text}</wsu:Created></wst:Lifetime>")
    assert parsed.lifetime == Lifetime(instant, None)


def test_lifetime_with_expires_only() -> None:
    parsed = _parse("<wst:Lifetime><wsu:Expires>2030-06-01T00:00:00Z</wsu:Expires></wst:Lifetime>")
    assert parsed.lifetime == Lifetime(None, dt.datetime(2030, 6, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    "lifetime",
    [
        "<wsu:Created>2030-01-01T00:00:00Z</wsu:Created><wsu:Created>2030-01-01T00:00:00Z</wsu:Created>",
        "<wsu:Timestamp/>",
        "<wst:Expires>2030-01-01T00:00:00Z</wst:Expires>",
        '<x:Created xmlns:x="urn:other">2030-01-01T00:00:00Z</x:Created>',
        "<wsu:Expires>2030-02-30T00:00:00Z</wsu:Expires>",
        "<wsu:Expires><wsu:Created/></wsu:Expires>",
        "<wsu:Expires>2030-01-01T14:00:00+15:00</wsu:Expires>",
        "<wsu:Expires>2030-01-01T14:00:00</wsu:Expires>",
    ],
    ids=["duplicate_created", "unknown_child", "trust_namespace", "foreign_namespace", "no_such_day", "nested",
         "offset_out_of_range", "no_zone"],
)
def test_malformed_lifetime(lifetime: str) -> None:
    _refused(f"<wst:Lifetime>{lifetime}</wst:Lifetime>", errors.InvalidTimeRange, "bad_lifetime")


# --- AppliesTo (WS-Policy, WS-Addressing EPR; row I04) --------------------------------------------------------------


@pytest.mark.parametrize(
    "applies_to",
    [
        "<wsa:EndpointReference><wsa:Address>a</wsa:Address></wsa:EndpointReference>"
        "<wsa:EndpointReference><wsa:Address>b</wsa:Address></wsa:EndpointReference>",
        "<wsa:Address>https://rp.example/</wsa:Address>",
        "",
    ],
    ids=["two_eprs", "bare_address", "empty"],
)
def test_applies_to_needs_exactly_one_endpoint_reference(applies_to: str) -> None:
    _refused(f"<wsp:AppliesTo>{applies_to}</wsp:AppliesTo>", errors.InvalidRequest, "bad_applies_to")


def test_endpoint_reference_in_an_unknown_addressing_namespace() -> None:
    _refused(
        '<wsp:AppliesTo><a:EndpointReference xmlns:a="urn:not-addressing"><a:Address>urn:rp</a:Address>'
        "</a:EndpointReference></wsp:AppliesTo>",
        errors.InvalidRequest,
        "bad_applies_to",
    )


# --- Renewing (WS-Trust 1.3 §7) -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ("", Renewing(allow=True, ok=False)),
        ('Allow=" 0 " OK="1"', Renewing(allow=False, ok=True)),
        ('Allow="TRUE" OK="False"', Renewing(allow=True, ok=False)),
    ],
    ids=["defaults", "digits", "any_case"],
)
def test_renewing_flags(attributes: str, expected: Renewing) -> None:
    assert _parse(f"<wst:Renewing {attributes}/>").renewing == expected


@pytest.mark.parametrize("attributes", ['Allow="yes"', 'OK=""', 'OK="2"'])
def test_malformed_renewing_flag(attributes: str) -> None:
    _refused(f"<wst:Renewing {attributes}/>", errors.InvalidRequest, "bad_renewing")


# --- Entropy (WS-Trust 1.3 §4.4.3, row I12) -------------------------------------------------------------------------


def _secret(value: bytes, type_: str | None = f"{WST}/Nonce") -> str:
    attribute = "" if type_ is None else f' Type="{type_}"'
    return f"<wst:BinarySecret{attribute}>{base64.b64encode(value).decode()}</wst:BinarySecret>"


@pytest.mark.parametrize(
    ("size", "type_"),
    [(16, None), (64, f"{WST}/Nonce"), (32, f"{WST}/SymmetricKey")],
    ids=["16_untyped", "64_nonce", "32_symmetric_key"],
)
def test_entropy_accepted(size: int, type_: str | None) -> None:
    value = bytes(range(size))
    assert _parse(f"<wst:Entropy>{_secret(value, type_)}</wst:Entropy>").entropy == value


@pytest.mark.parametrize(
    "entropy",
    [
        "",
        _secret(bytes(32)) * 2,
        f'<xenc:EncryptedKey xmlns:xenc="{ns.XENC}"/>',
        f'<x:BinarySecret xmlns:x="{ns.WST05}">{base64.b64encode(bytes(32)).decode()}</x:BinarySecret>',
        _secret(bytes(32), f"{WST}/AsymmetricKey"),
        _secret(bytes(32), f"{ns.WST05}/Nonce"),
        _secret(bytes(15)),
        _secret(bytes(65)),
    ],
    ids=["empty", "two_secrets", "encrypted_key", "other_trust_version", "asymmetric_key", "foreign_nonce_type",
         "15_bytes", "65_bytes"],
)
def test_malformed_entropy(entropy: str) -> None:
    _refused(f"<wst:Entropy>{entropy}</wst:Entropy>", errors.InvalidRequest, "bad_entropy")


# --- UseKey and the Validate / Renew / Cancel targets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "operation"),
    [("ValidateTarget", Operation.VALIDATE), ("RenewTarget", Operation.RENEW), ("CancelTarget", Operation.CANCEL)],
)
def test_target_is_its_one_element(local: str, operation: Operation) -> None:
    reference = (
        '<wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="urn:id">_t1</wsse:KeyIdentifier>'
        "</wsse:SecurityTokenReference>"
    )
    parsed = _parse(f"<wst:{local}>{reference}</wst:{local}>", operation)
    assert parsed.target is not None
    assert parsed.target.tag == f"{{{ns.WSSE}}}SecurityTokenReference"
    assert parsed.target.findtext(f"{{{ns.WSSE}}}KeyIdentifier") == "_t1"


def test_use_key_is_its_one_element() -> None:
    parsed = _parse('<wst:UseKey><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></wst:UseKey>')
    assert parsed.use_key is not None and parsed.use_key.tag == f"{{{ns.DS}}}KeyInfo"


@pytest.mark.parametrize(
    ("local", "operation"),
    [("UseKey", Operation.ISSUE), ("ValidateTarget", Operation.VALIDATE), ("RenewTarget", Operation.RENEW),
     ("CancelTarget", Operation.CANCEL)],
)
@pytest.mark.parametrize("content", ["", "text only", "<a/><b/>"], ids=["empty", "text", "two"])
def test_target_needs_exactly_one_element(local: str, operation: Operation, content: str) -> None:
    _refused(f"<wst:{local}>{content}</wst:{local}>", errors.InvalidRequest, "bad_target", operation)
