"""The four WS-Trust bindings as seen from the requestor (WS-Trust 1.3 §4 Issue, §5 Renew, §6 Cancel, §7
Validate): build the request, POST it, read the answer. One call each.

Every call raises :class:`~sts.client.errors.FaultReceived` when the STS answers with a SOAP fault and
:class:`~sts.client.errors.ClientError` for anything else that gives no usable answer.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from lxml import etree

from sts.client.options import Connection, IssueOptions, SymmetricKey, TargetOptions
from sts.client.response import (
    IssuedToken,
    ValidationStatus,
    check_cancelled,
    find_rstr,
    read_answer,
    read_issued_token,
    read_status,
)
from sts.client.rst import BuiltRequest, build_issue_request, build_target_request
from sts.client.transport import post
from sts.wstrust.actions import Operation

CLIENT_ENTROPY_BYTES = 32


def new_client_entropy() -> bytes:
    """Fresh client entropy for a computed key (WS-Trust 1.3 §4.4.3): 256 random bits."""
    return secrets.token_bytes(CLIENT_ENTROPY_BYTES)


def request_token(options: IssueOptions, password: str) -> IssuedToken:
    """Issue: ask for a token for ``options.applies_to``; the token, and its proof key for a SymmetricKey one."""
    root = _exchange(options.connection, build_issue_request(options, password))
    key = options.key if isinstance(options.key, SymmetricKey) else None
    return read_issued_token(
        root,
        client_entropy=key.entropy if key is not None else None,
        requested_bits=key.bits if key is not None else None,
    )


def validate_token(options: TargetOptions, password: str) -> ValidationStatus:
    """Validate: whether the STS holds the token valid, and its reason; with ``options.transform_to``, the new
    token of a valid one (WS-Trust 1.3 §7)."""
    root = _exchange_target(Operation.VALIDATE, options, password)
    status = read_status(find_rstr(root, options.connection.trust_ns), options.connection.trust_ns)
    if options.transform_to is None or not status.valid:
        return status
    return replace(status, issued=read_issued_token(root))


def renew_token(options: TargetOptions, password: str) -> IssuedToken:
    """Renew: the new token (with a new validity window) and its proof key."""
    root = _exchange_target(Operation.RENEW, options, password)
    find_rstr(root, options.connection.trust_ns)
    return read_issued_token(root)


def cancel_token(options: TargetOptions, password: str) -> None:
    """Cancel: returns once the STS confirmed the cancellation."""
    root = _exchange_target(Operation.CANCEL, options, password)
    check_cancelled(find_rstr(root, options.connection.trust_ns), options.connection.trust_ns)


def _exchange_target(operation: Operation, options: TargetOptions, password: str) -> etree._Element:
    return _exchange(options.connection, build_target_request(operation, options, password))


def _exchange(connection: Connection, request: BuiltRequest) -> etree._Element:
    """POST the request; the parsed answer of a 200."""
    return read_answer(post(connection, request), connection.url)


__all__ = [
    "CLIENT_ENTROPY_BYTES",
    "cancel_token",
    "new_client_entropy",
    "renew_token",
    "request_token",
    "validate_token",
]
