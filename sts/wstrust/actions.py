"""RequestType and action URIs per WS-Trust version (wstrust-protocol.md §3)."""

from __future__ import annotations

from enum import Enum

from sts import ns


class Operation(Enum):
    """The four WS-Trust bindings."""

    ISSUE = "Issue"
    RENEW = "Renew"
    VALIDATE = "Validate"
    CANCEL = "Cancel"


TRUST_NAMESPACES = (ns.WST, ns.WST05)


def request_type_uri(trust_ns: str, operation: Operation) -> str:
    """``{ns}/Issue`` etc."""
    return f"{trust_ns}/{operation.value}"


def request_action(trust_ns: str, operation: Operation) -> str:
    """The action a request for ``operation`` carries: ``{ns}/RST/Issue`` etc."""
    return f"{trust_ns}/RST/{operation.value}"


def response_action(trust_ns: str, operation: Operation) -> str:
    """The action of the answer: ``{wst}/RSTRC/IssueFinal``, ``{wst}/RSTR/RenewFinal``, ``{wst05}/RSTR/Issue``."""
    if trust_ns == ns.WST05:
        return f"{trust_ns}/RSTR/{operation.value}"
    if operation is Operation.ISSUE:
        return f"{trust_ns}/RSTRC/IssueFinal"
    return f"{trust_ns}/RSTR/{operation.value}Final"


def operation_for_request_type(trust_ns: str, uri: str) -> Operation | None:
    """The operation a RequestType URI names in this trust namespace, or None."""
    for operation in Operation:
        if uri == request_type_uri(trust_ns, operation):
            return operation
    return None


def operation_for_action(trust_ns: str, action: str) -> Operation | None:
    """The operation a request action names in this trust namespace, or None."""
    for operation in Operation:
        if action == request_action(trust_ns, operation):
            return operation
    return None
