"""SecurityTokenService: the framework-free use cases behind the SOAP edge.

The SOAP layer hands over the SOAP version, the header blocks and the one Body child; this module finds the
WS-Trust version and the operation, cross-checks the HTTP and WS-Addressing actions against the RequestType,
authenticates the caller and dispatches to the operation (:mod:`sts.operations`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from lxml import etree

from sts import telemetry
from sts.auth.encrypted_requests import OpenedRequest
from sts.auth.validators import AuthenticatedCaller
from sts.errors import BadRequest, InvalidRequest, STSError
from sts.operations.call import RequestInfo, TrustCall, TrustReply, TrustRequest
from sts.soapenv import SoapVersion
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion
from sts.xmlutil import element_children, text_of

OperationHandler = Callable[[TrustCall], TrustReply]
Authenticator = Callable[[TrustRequest], AuthenticatedCaller]
# Verifies and decrypts a request whose Body is ciphertext (scenarios 5, 8) before it can be read; None otherwise.
RequestOpener = Callable[[SoapVersion, tuple[etree._Element, ...], etree._Element, RequestInfo], OpenedRequest | None]


# Built once: a request's RST tag and RequestType tag are each one dictionary look-up.
_RST_TAGS = {version.qn("RequestSecurityToken"): version for version in TrustVersion}
_REQUEST_TYPE_TAGS = {version: version.qn("RequestType") for version in TrustVersion}


def trust_version(body_child: etree._Element) -> TrustVersion:
    """The WS-Trust version of a request, from the namespace of its Body child."""
    version = _RST_TAGS.get(body_child.tag)
    if version is None:
        raise InvalidRequest("Body child is not a RequestSecurityToken", reason="not_rst")
    return version


def read_operation(rst: etree._Element, trust: TrustVersion) -> Operation:
    """The operation named by the RST's one RequestType (WS-Trust 1.3 §3.1)."""
    tag = _REQUEST_TYPE_TAGS[trust]
    request_types = [c for c in element_children(rst) if c.tag == tag]
    if len(request_types) != 1:
        raise InvalidRequest("exactly one RequestType required", reason="request_type_count")
    operation = trust.operation_of_request_type(text_of(request_types[0]).strip())
    if operation is None:
        raise BadRequest("unsupported RequestType", reason="request_type_unsupported")
    return operation


class SecurityTokenService:
    """Dispatches WS-Trust calls to the registered operation handlers after authenticating the caller."""

    def __init__(
        self,
        handlers: Mapping[Operation, OperationHandler],
        authenticate: Authenticator,
        open_request: RequestOpener | None = None,
    ) -> None:
        self._handlers = dict(handlers)
        self._authenticate = authenticate
        self._open = open_request

    def handle(
        self, soap: SoapVersion, headers: tuple[etree._Element, ...], body_child: etree._Element, info: RequestInfo
    ) -> TrustReply:
        """Run one request to its reply; raises :class:`~sts.errors.STSError` subclasses for faults."""
        opened = None if self._open is None else self._open(soap, headers, body_child, info)
        if opened is not None:
            body_child = opened.body_child  # the RST of the verified, decrypted Body
        trust = trust_version(body_child)
        try:
            return self._dispatch(soap, headers, body_child, info, trust, opened)
        except STSError as error:
            # The endpoint guessed the trust namespace from the Body as it arrived; an encrypted Body (scenarios 5
            # and 8) hid it, so the fault is written in the version of the RST the request really carried.
            error.trust_ns = trust.namespace
            raise

    def _dispatch(
        self,
        soap: SoapVersion,
        headers: tuple[etree._Element, ...],
        body_child: etree._Element,
        info: RequestInfo,
        trust: TrustVersion,
        opened: OpenedRequest | None,
    ) -> TrustReply:
        operation = read_operation(body_child, trust)
        telemetry.describe(operation=operation.value.lower())
        for action in (info.http_action, info.wsa_action):
            if action and trust.operation_of_action(action) is not operation:
                raise InvalidRequest("action does not match RequestType", reason="action_mismatch")
        telemetry.passed("action")
        request = TrustRequest(soap, headers, body_child, trust, operation, info, opened)
        with telemetry.stage("authentication"):
            caller = self._authenticate(request)
        handler = self._handlers.get(operation)
        if handler is None:
            raise BadRequest(f"{operation.value} binding not enabled", reason="binding_not_enabled")
        reply = handler(TrustCall(request, caller))
        return reply if opened is None else replace(reply, protect=opened.protect)
