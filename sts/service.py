"""SecurityTokenService: the framework-free use cases behind the SOAP edge (architecture.md §1, step 5).

The SOAP layer hands over the header blocks and the one Body child; this module finds the WS-Trust version and
the operation, cross-checks the HTTP action, authenticates the caller and dispatches to the operation's handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lxml import etree

from sts import ns
from sts.errors import BadRequest, InvalidRequest
from sts.soapenv import SoapVersion
from sts.wstrust.actions import (
    TRUST_NAMESPACES,
    Operation,
    operation_for_action,
    operation_for_request_type,
)
from sts.xmlutil import element_children, text_of


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Transport facts about one request."""

    correlation_id: str
    client_address: str
    secure_transport: bool
    http_action: str = ""
    wsa_action: str = ""


@dataclass(frozen=True, slots=True)
class TrustCall:
    """One WS-Trust request, as the operations see it."""

    soap_version: SoapVersion
    headers: tuple[etree._Element, ...]
    rst: etree._Element
    trust_ns: str
    operation: Operation
    info: RequestInfo
    caller: object | None = None


@dataclass(frozen=True, slots=True)
class TrustReply:
    """The Body child of the answer and the operation it answers."""

    body: etree._Element
    operation: Operation
    trust_ns: str
    audit: Mapping[str, str] = field(default_factory=dict)


OperationHandler = Callable[[TrustCall], TrustReply]
Authenticator = Callable[[TrustCall], object]


def trust_namespace(body_child: etree._Element) -> str:
    """The WS-Trust version of a request, from the namespace of its Body child (wstrust-protocol.md §2)."""
    namespace = etree.QName(body_child).namespace or ""
    if namespace not in TRUST_NAMESPACES or etree.QName(body_child).localname != "RequestSecurityToken":
        raise InvalidRequest("Body child is not a RequestSecurityToken", reason="not_rst")
    return namespace


def read_operation(rst: etree._Element, trust_ns: str) -> Operation:
    """The operation named by the RST's one RequestType."""
    request_types = [c for c in element_children(rst) if c.tag == ns.qn(trust_ns, "RequestType")]
    if len(request_types) != 1:
        raise InvalidRequest("exactly one RequestType required", reason="request_type_count")
    operation = operation_for_request_type(trust_ns, text_of(request_types[0]).strip())
    if operation is None:
        raise BadRequest("unsupported RequestType", reason="request_type_unsupported")
    return operation


class SecurityTokenService:
    """Dispatches WS-Trust calls to the registered operation handlers after authenticating the caller."""

    def __init__(self, handlers: Mapping[Operation, OperationHandler], authenticate: Authenticator | None) -> None:
        self._handlers = dict(handlers)
        self._authenticate = authenticate

    def handle(
        self, soap_version: SoapVersion, headers: tuple[etree._Element, ...], body_child: etree._Element,
        info: RequestInfo,
    ) -> TrustReply:
        """Run one request to its reply; raises :class:`~sts.errors.STSError` subclasses for faults."""
        trust_ns = trust_namespace(body_child)
        operation = read_operation(body_child, trust_ns)
        for action in (info.http_action, info.wsa_action):
            if action and operation_for_action(trust_ns, action) is not operation:
                raise InvalidRequest("action does not match RequestType", reason="action_mismatch")
        call = TrustCall(soap_version, headers, body_child, trust_ns, operation, info)
        if self._authenticate is not None:
            call = TrustCall(soap_version, headers, body_child, trust_ns, operation, info, self._authenticate(call))
        handler = self._handlers.get(operation)
        if handler is None:
            raise BadRequest(f"{operation.value} binding not enabled", reason="binding_not_enabled")
        return handler(call)
