"""SecurityTokenService dispatch: trust version, RequestType, action cross-checks, authentication first."""

from __future__ import annotations

import pytest
from lxml import etree

from sts import errors, ns
from sts.auth.users import Principal
from sts.auth.validators import AuthenticatedCaller
from sts.operations.call import RequestInfo, TrustCall, TrustReply, TrustRequest
from sts.service import SecurityTokenService
from sts.soapenv import SoapVersion
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion

S11 = SoapVersion.SOAP11
CALLER = AuthenticatedCaller(Principal("PRIMARY", "alice", frozenset({"admin"})), "password-text")


def rst(trust_ns: str = ns.WST, request_type: str = "Issue") -> etree._Element:
    return etree.fromstring(
        f'<t:RequestSecurityToken xmlns:t="{trust_ns}"><t:RequestType>{trust_ns}/{request_type}</t:RequestType>'
        "</t:RequestSecurityToken>"
    )


def issue(call: TrustCall) -> TrustReply:
    return TrustReply(etree.Element("ok"), call.request.operation, call.request.trust)


def allow(request: TrustRequest) -> AuthenticatedCaller:
    return CALLER


def info(http: str = "", wsa: str = "") -> RequestInfo:
    return RequestInfo("c", "127.0.0.1", True, http, wsa)


def test_dispatches_on_request_type_in_either_trust_version() -> None:
    service = SecurityTokenService({Operation.ISSUE: issue}, authenticate=allow)
    for trust in TrustVersion:
        reply = service.handle(S11, (), rst(trust.namespace), info())
        assert (reply.operation, reply.trust) == (Operation.ISSUE, trust)


def test_the_operation_gets_the_request_and_the_authenticated_caller() -> None:
    seen: list[TrustRequest] = []
    calls: list[TrustCall] = []

    def authenticate(request: TrustRequest) -> AuthenticatedCaller:
        seen.append(request)
        return CALLER

    def handler(call: TrustCall) -> TrustReply:
        calls.append(call)
        return issue(call)

    body = rst(ns.WST05)
    service = SecurityTokenService({Operation.ISSUE: handler}, authenticate=authenticate)
    service.handle(SoapVersion.SOAP12, (), body, info(wsa=f"{ns.WST05}/RST/Issue"))
    assert seen == [TrustRequest(SoapVersion.SOAP12, (), body, TrustVersion.FEB2005, Operation.ISSUE, seen[0].info)]
    assert calls == [TrustCall(seen[0], CALLER)]


@pytest.mark.parametrize(
    "request_info",
    [info(http=f"{ns.WST}/RST/Validate"), info(wsa=f"{ns.WST}/RST/Renew"), info(http=f"{ns.WST05}/RST/Issue")],
)
def test_action_must_agree_with_request_type(request_info: RequestInfo) -> None:
    service = SecurityTokenService({Operation.ISSUE: issue}, authenticate=allow)
    with pytest.raises(errors.InvalidRequest) as caught:
        service.handle(S11, (), rst(), request_info)
    assert caught.value.reason == "action_mismatch"


def test_unknown_request_type_and_disabled_binding() -> None:
    service = SecurityTokenService({Operation.ISSUE: issue}, authenticate=allow)
    with pytest.raises(errors.BadRequest) as caught:
        service.handle(S11, (), rst(request_type="KET"), info())
    assert caught.value.reason == "request_type_unsupported"
    with pytest.raises(errors.BadRequest) as caught:
        service.handle(S11, (), rst(request_type="Cancel"), info())
    assert caught.value.reason == "binding_not_enabled"


def test_authentication_runs_before_dispatch() -> None:
    def deny(request: TrustRequest) -> AuthenticatedCaller:
        raise errors.FailedAuthentication("no")

    service = SecurityTokenService({}, authenticate=deny)
    with pytest.raises(errors.FailedAuthentication):
        service.handle(S11, (), rst(request_type="Cancel"), info())


def test_body_must_be_an_rst() -> None:
    service = SecurityTokenService({}, authenticate=allow)
    with pytest.raises(errors.InvalidRequest):
        service.handle(S11, (), etree.fromstring(f'<t:RequestSecurityTokenResponse xmlns:t="{ns.WST}"/>'), info())
    with pytest.raises(errors.InvalidRequest):
        service.handle(S11, (), etree.fromstring(f'<t:RequestSecurityToken xmlns:t="{ns.WST}"/>'), info())
    with pytest.raises(errors.InvalidRequest):  # a WS-Trust 1.4 namespace is no version of its own
        service.handle(S11, (), etree.fromstring(f'<t:RequestSecurityToken xmlns:t="{ns.WST14}"/>'), info())
