"""SecurityTokenService dispatch: trust version, RequestType, action cross-checks, authentication first."""

from __future__ import annotations

import pytest
from lxml import etree

from sts import errors, ns
from sts.service import RequestInfo, SecurityTokenService, TrustCall, TrustReply
from sts.soapenv import SoapVersion
from sts.wstrust.actions import Operation

S11 = SoapVersion.SOAP11


def rst(trust_ns: str = ns.WST, request_type: str = "Issue") -> etree._Element:
    return etree.fromstring(
        f'<t:RequestSecurityToken xmlns:t="{trust_ns}"><t:RequestType>{trust_ns}/{request_type}</t:RequestType>'
        "</t:RequestSecurityToken>"
    )


def issue(call: TrustCall) -> TrustReply:
    return TrustReply(etree.Element("ok"), call.operation, call.trust_ns)


def info(http: str = "", wsa: str = "") -> RequestInfo:
    return RequestInfo("c", "127.0.0.1", True, http, wsa)


def test_dispatches_on_request_type_in_either_trust_version() -> None:
    service = SecurityTokenService({Operation.ISSUE: issue}, authenticate=None)
    for trust_ns in (ns.WST, ns.WST05):
        reply = service.handle(S11, (), rst(trust_ns), info())
        assert (reply.operation, reply.trust_ns) == (Operation.ISSUE, trust_ns)


@pytest.mark.parametrize(
    "request_info",
    [info(http=f"{ns.WST}/RST/Validate"), info(wsa=f"{ns.WST}/RST/Renew"), info(http=f"{ns.WST05}/RST/Issue")],
)
def test_action_must_agree_with_request_type(request_info: RequestInfo) -> None:
    service = SecurityTokenService({Operation.ISSUE: issue}, authenticate=None)
    with pytest.raises(errors.InvalidRequest):
        service.handle(S11, (), rst(), request_info)


def test_unknown_request_type_and_disabled_binding() -> None:
    service = SecurityTokenService({Operation.ISSUE: issue}, authenticate=None)
    with pytest.raises(errors.BadRequest):
        service.handle(S11, (), rst(request_type="KET"), info())
    with pytest.raises(errors.BadRequest):
        service.handle(S11, (), rst(request_type="Cancel"), info())


def test_authentication_runs_before_dispatch() -> None:
    def deny(call: TrustCall) -> object:
        raise errors.FailedAuthentication("no")

    service = SecurityTokenService({}, authenticate=deny)
    with pytest.raises(errors.FailedAuthentication):
        service.handle(S11, (), rst(request_type="Cancel"), info())


def test_body_must_be_an_rst() -> None:
    service = SecurityTokenService({}, authenticate=None)
    with pytest.raises(errors.InvalidRequest):
        service.handle(S11, (), etree.fromstring(f'<t:RequestSecurityTokenResponse xmlns:t="{ns.WST}"/>'), info())
    with pytest.raises(errors.InvalidRequest):
        service.handle(S11, (), etree.fromstring(f'<t:RequestSecurityToken xmlns:t="{ns.WST}"/>'), info())
