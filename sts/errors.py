"""The one exception hierarchy of the STS.

The fault tree (class, fault QName, fixed fault string; SOAP 1.2 ``Receiver`` where marked, ``Sender`` otherwise)::

  STSError
    SoapFault
      MalformedMessage          soap:Client "Invalid request"
      VersionMismatch           soap:VersionMismatch "Invalid request"
      MustUnderstand            soap:MustUnderstand "A mandatory header was not understood"
      ServiceUnavailable        soap:Server "Service unavailable"  (Receiver)
    WSSecurityError
      UnsupportedSecurityToken  wsse:UnsupportedSecurityToken "An unsupported token was provided"
      UnsupportedAlgorithm      wsse:UnsupportedAlgorithm "An unsupported signature or encryption algorithm was used"
      InvalidSecurity           wsse:InvalidSecurity "An error was discovered processing the <wsse:Security> header"
      InvalidSecurityToken      wsse:InvalidSecurityToken "An invalid security token was provided"
      FailedAuthentication      wsse:FailedAuthentication "The security token could not be authenticated or authorized"
      FailedCheck               wsse:FailedCheck "The signature or decryption was invalid"
      SecurityTokenUnavailable  wsse:SecurityTokenUnavailable "Referenced security token could not be retrieved"
      MessageExpired            wsse:MessageExpired "The message has expired"
    TrustError
      InvalidRequest            wst:InvalidRequest "The request was invalid or malformed"
      TrustFailedAuthentication wst:FailedAuthentication "Authentication failed"
      RequestFailed             wst:RequestFailed "The specified request failed"  (Receiver)
      InvalidTrustToken         wst:InvalidSecurityToken "Security token has been revoked"
      AuthenticationBadElements wst:AuthenticationBadElements "Insufficient Digest Elements"
      BadRequest                wst:BadRequest "The specified RequestSecurityToken is not understood"
      ExpiredData               wst:ExpiredData "The request data is out-of-date"
      InvalidTimeRange          wst:InvalidTimeRange "The requested time range is invalid or unsupported"
      InvalidScope              wst:InvalidScope "The request scope is invalid or unsupported"
      RenewNeeded               wst:RenewNeeded "A renewable security token has expired"
      UnableToRenew             wst:UnableToRenew "The requested renewal failed"

``soap:`` is the request's SOAP envelope namespace (SOAP 1.1 §4.4.1 fault codes; the renderer maps ``Client`` and
``Server`` to SOAP 1.2 ``Sender`` and ``Receiver``), ``wsse:`` the WSS 1.1 secext namespace (WSS 1.1 SOAP Message
Security §12, "Error Handling") and ``wst:`` the request's trust namespace (WS-Trust 1.3 §11, "Error Handling").
``tests/unit/test_errors.py`` checks this drawing against the classes below. :class:`ConfigError` stands apart: it is
a start-up error, never answered with a fault.

Every :class:`STSError` subclass carries, at class level, the fault QName it is answered with, a fixed fault
string safe to show to anyone (the strings of WS-Trust 1.3 §11 and WSS 1.1 §12) and whether SOAP 1.2
reports it as ``Sender`` or ``Receiver``. The message given to the constructor is *detail for the logs only*: it
never reaches the wire. :mod:`sts.soap.faults` renders every subclass; nothing else writes faults.

WS-Trust fault QNames are written in the trust namespace of the request being answered (1.3 or Feb 2005): a
``TrustError`` keeps the 1.3 namespace here and the renderer swaps it when the request was Feb 2005.
"""

from __future__ import annotations

from typing import ClassVar

from sts import ns


class ConfigError(Exception):
    """Start-up configuration problems; carries every problem found, never raised on the request path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class STSError(Exception):
    """Base of every error answered with a SOAP fault."""

    fault_ns: ClassVar[str] = ns.S11
    fault_local: ClassVar[str] = "Server"
    fault_string: ClassVar[str] = "The specified request failed"
    sender: ClassVar[bool] = True
    # Operator-facing reason code for audit events; subclasses or raisers may refine it.
    reason: str = "error"
    # The trust namespace of the request, once known (the service sets it: an encrypted Body reveals it late).
    trust_ns: str | None = None

    def __init__(self, detail: str = "", *, reason: str | None = None) -> None:
        super().__init__(detail or self.fault_local)
        self.detail = detail
        if reason is not None:
            self.reason = reason

    @classmethod
    def fault_qname(cls) -> tuple[str, str]:
        """The fault code as ``(namespace, local name)``."""
        return cls.fault_ns, cls.fault_local


# --- SOAP-level faults ------------------------------------------------------------------------------------


class SoapFault(STSError):
    """Faults in the SOAP envelope namespace; the renderer maps them to the request's SOAP version."""


class MalformedMessage(SoapFault):
    """Not an acceptable SOAP envelope: syntax, DTD, PI, caps, structure (SOAP 1.1 §3 forbids DTDs and PIs)."""

    fault_local = "Client"
    fault_string = "Invalid request"
    reason = "malformed_message"


class VersionMismatch(SoapFault):
    """Wrong envelope namespace, or a content type that disagrees with it.

    ``soap11_envelope``: the message was a SOAP 1.1 envelope (under a SOAP 1.2 media type): the fault is then a
    SOAP 1.1 message, the only version its sender is known to understand (SOAP 1.2 Part 1, Appendix A)."""

    fault_local = "VersionMismatch"
    fault_string = "Invalid request"
    reason = "version_mismatch"

    def __init__(self, detail: str = "", *, reason: str | None = None, soap11_envelope: bool = False) -> None:
        super().__init__(detail, reason=reason)
        self.soap11_envelope = soap11_envelope


class MustUnderstand(SoapFault):
    """A header marked mustUnderstand that the STS does not process."""

    fault_local = "MustUnderstand"
    fault_string = "A mandatory header was not understood"
    reason = "must_understand"

    def __init__(self, detail: str = "", *, not_understood: tuple[str, str] | None = None) -> None:
        super().__init__(detail)
        self.not_understood = not_understood


class ServiceUnavailable(SoapFault):
    """A dependency (store, user directory) is down: fail closed."""

    fault_local = "Server"
    fault_string = "Service unavailable"
    sender = False
    reason = "service_unavailable"


# --- WS-Security faults (WSS 1.1 §12) ---------------------------------------------------------------------


class WSSecurityError(STSError):
    """Faults in the ``wsse`` namespace."""

    fault_ns = ns.WSSE


class UnsupportedSecurityToken(WSSecurityError):
    """A token type that is not supported or not allowed by policy."""

    fault_local = "UnsupportedSecurityToken"
    fault_string = "An unsupported token was provided"
    reason = "unsupported_token"


class UnsupportedAlgorithm(WSSecurityError):
    """An algorithm outside the allow-list."""

    fault_local = "UnsupportedAlgorithm"
    fault_string = "An unsupported signature or encryption algorithm was used"
    reason = "unsupported_algorithm"


class InvalidSecurity(WSSecurityError):
    """Missing or duplicate security header or token, duplicate ids, replay, policy not met."""

    fault_local = "InvalidSecurity"
    fault_string = "An error was discovered processing the <wsse:Security> header"
    reason = "invalid_security"


class InvalidSecurityToken(WSSecurityError):
    """A malformed UsernameToken or BinarySecurityToken."""

    fault_local = "InvalidSecurityToken"
    fault_string = "An invalid security token was provided"
    reason = "invalid_token"


class FailedAuthentication(WSSecurityError):
    """Wrong password, unknown, locked or disabled user, missing role: one identical fault.

    The same bytes for every cause, so the answer never tells a caller which accounts exist.
    """

    fault_local = "FailedAuthentication"
    fault_string = "The security token could not be authenticated or authorized"
    reason = "failed_authentication"


class FailedCheck(WSSecurityError):
    """Signature or digest invalid, a required part unsigned."""

    fault_local = "FailedCheck"
    fault_string = "The signature or decryption was invalid"
    reason = "failed_check"


class SecurityTokenUnavailable(WSSecurityError):
    """A SecurityTokenReference that points nowhere."""

    fault_local = "SecurityTokenUnavailable"
    fault_string = "Referenced security token could not be retrieved"
    reason = "token_unavailable"


class MessageExpired(WSSecurityError):
    """Timestamp or UsernameToken Created outside the accepted window."""

    fault_local = "MessageExpired"
    fault_string = "The message has expired"
    reason = "message_expired"


# --- WS-Trust faults (WS-Trust 1.3 §11) -------------------------------------------------------------------


class TrustError(STSError):
    """Faults in the trust namespace of the request (1.3 by default)."""

    fault_ns = ns.WST


class InvalidRequest(TrustError):
    """Malformed RST, action mismatch, bad KeySize, Entropy or Context."""

    fault_local = "InvalidRequest"
    fault_string = "The request was invalid or malformed"
    reason = "invalid_request"


class TrustFailedAuthentication(TrustError):
    """Acting on a token that is not the caller's (Renew, Cancel)."""

    fault_local = "FailedAuthentication"
    fault_string = "Authentication failed"
    reason = "not_token_owner"


class RequestFailed(TrustError):
    """The catch-all for unexpected errors; also a required claim that cannot be supplied."""

    fault_local = "RequestFailed"
    fault_string = "The specified request failed"
    sender = False
    reason = "request_failed"


class InvalidTrustToken(TrustError):
    """An OnBehalfOf/ActAs token that is invalid or revoked."""

    fault_local = "InvalidSecurityToken"
    fault_string = "Security token has been revoked"
    reason = "invalid_trust_token"


class AuthenticationBadElements(TrustError):
    """Insufficient digest elements."""

    fault_local = "AuthenticationBadElements"
    fault_string = "Insufficient Digest Elements"


class BadRequest(TrustError):
    """Unknown element, token type or RequestType."""

    fault_local = "BadRequest"
    fault_string = "The specified RequestSecurityToken is not understood"
    reason = "bad_request"


class ExpiredData(TrustError):
    """Stale request data."""

    fault_local = "ExpiredData"
    fault_string = "The request data is out-of-date"
    reason = "expired_data"


class InvalidTimeRange(TrustError):
    """A requested Lifetime out of bounds."""

    fault_local = "InvalidTimeRange"
    fault_string = "The requested time range is invalid or unsupported"
    reason = "invalid_time_range"


class InvalidScope(TrustError):
    """AppliesTo names no registered relying party."""

    fault_local = "InvalidScope"
    fault_string = "The request scope is invalid or unsupported"
    reason = "invalid_scope"


class RenewNeeded(TrustError):
    """A renewable security token has expired."""

    fault_local = "RenewNeeded"
    fault_string = "A renewable security token has expired"
    reason = "renew_needed"


class UnableToRenew(TrustError):
    """Renewal refused."""

    fault_local = "UnableToRenew"
    fault_string = "The requested renewal failed"
    reason = "unable_to_renew"
