"""The values a WS-Trust request and its answer travel in between the service and the four operations.

They live with the operations (the service and the SOAP edge above import them; nothing here imports upwards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from sts.auth.encrypted_requests import OpenedRequest
from sts.auth.validators import AuthenticatedCaller
from sts.soapenv import SoapVersion
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Transport facts about one request."""

    correlation_id: str
    client_address: str
    secure_transport: bool
    http_action: str = ""
    wsa_action: str = ""
    scenario: str = "UTOverTransport"  # the security scenario of the endpoint the request came to
    path: str = ""  # that endpoint's path
    client_certificate: bytes | None = field(default=None, repr=False)  # TLS client certificate (certificatetransport)


@dataclass(frozen=True, slots=True)
class TrustRequest:
    """One WS-Trust request before its caller is known: what the authenticator reads."""

    soap: SoapVersion
    headers: tuple[etree._Element, ...]
    rst: etree._Element
    trust: TrustVersion
    operation: Operation
    info: RequestInfo
    opened: OpenedRequest | None = None  # verified and decrypted before the RST could be read (scenarios 5, 8)


@dataclass(frozen=True, slots=True)
class TrustCall:
    """A request with its authenticated caller: what the operations receive."""

    request: TrustRequest
    caller: AuthenticatedCaller


@dataclass(frozen=True, slots=True)
class TrustReply:
    """The Body child of the answer, the operation it answers and the version it is written in."""

    body: etree._Element
    operation: Operation
    trust: TrustVersion
    # This request's own response security (keys of an encrypted request), else the endpoint's.
    protect: Callable[[etree._Element, SoapVersion], None] | None = None


def confidential_answer(request: TrustRequest, allow_insecure_transport: bool = False) -> bool:
    """Whether the answer to ``request`` reaches the caller unread by others: over TLS (or a trusted proxy saying
    so), or encrypted for the caller (an opened SigEncr / SgnEncrUsername request), or plain HTTP the operator
    allowed (``[server] allow_insecure_transport``, loopback tests). A symmetric proof key goes out in clear in
    the RSTR (``BinarySecret``, or the issuer entropy of a computed key whose requestor entropy came in clear):
    on any other channel it is refused (WS-Trust 1.3 §4.4.3)."""
    return request.info.secure_transport or request.opened is not None or allow_insecure_transport
