"""What a caller asks the client for, as frozen values checked when they are made.

One options type per kind of call: :class:`IssueOptions` (Issue), :class:`TargetOptions` (Validate, Renew and
Cancel name a token), :class:`InspectOptions` (reading a token file); each request carries a :class:`Connection`.
The password is never part of an options value: it is passed to the call, so no options ``repr`` can show it.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from lxml import etree

from sts import ns
from sts.client.errors import ClientError
from sts.crypto.wss_sign import SigningKey
from sts.wstrust.model import Renewing
from sts.wstrust.tokentypes import SamlVersion
from sts.wstrust.version import TrustVersion

DEFAULT_TIMEOUT = 30.0
SOAP_NAMESPACES = (ns.S11, ns.S12)
MAX_PROOF_KEY_BITS = 4096
ASSERTIONS = frozenset({ns.qn(ns.SAML2, "Assertion"), ns.qn(ns.SAML1, "Assertion")})
# What Validate, Renew and Cancel may carry inline: the token elements an Issue answer holds (WS-Trust 1.3 §5-§7).
TARGET_TOKENS = frozenset(
    {
        ns.qn(ns.SAML2, "Assertion"),
        ns.qn(ns.SAML1, "Assertion"),
        ns.qn(ns.SAML2, "EncryptedAssertion"),
        ns.qn(ns.XENC, "EncryptedData"),
    }
)


def check_url(url: str) -> None:
    """Accept https URLs, and plain http only to a loopback host: the request carries a password."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientError(f"not an http(s) URL: {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ClientError("refusing to send a password over plain http to a non-loopback host: use https")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SigningCredential:
    """An X.509 client: requests are signed with ``key`` and carry ``certificate`` as a BinarySecurityToken, with no
    UsernameToken (WSO2 scenario 2 ``SigOnly``, AD FS ``certificatemixed``). ``sign_to`` also signs ``wsa:To``."""

    certificate: x509.Certificate
    key: SigningKey = field(repr=False)
    sign_to: bool = False


@dataclass(frozen=True, slots=True)
class Connection:
    """Where a request goes and how: endpoint, user, password form, SOAP and WS-Trust namespaces, TLS trust.

    ``cafile`` holds the CA certificates to verify the server with (default: the system trust store); TLS is
    always verified. ``timeout`` bounds connecting and each read, in seconds.
    """

    url: str
    username: str
    digest: bool = False  # PasswordDigest instead of PasswordText (UsernameToken Profile 1.1 §3.1)
    soap_ns: str = ns.S11
    trust_ns: str = ns.WST
    cafile: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    signing: SigningCredential | None = None  # sign with an X.509 key instead of sending a UsernameToken
    # Issued-token authentication: this signed SAML assertion goes into wsse:Security instead of a
    # UsernameToken (bearer over TLS); the password is then not used.
    token: etree._Element | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_url(self.url)
        if self.token is not None and self.token.tag not in ASSERTIONS:
            raise ClientError("the authentication token must be a SAML 1.1 or 2.0 Assertion")
        if self.soap_ns not in SOAP_NAMESPACES:
            raise ValueError(f"not a SOAP envelope namespace: {self.soap_ns}")
        if TrustVersion.of_namespace(self.trust_ns) is None:
            raise ValueError(f"not a WS-Trust namespace: {self.trust_ns}")


@dataclass(frozen=True, slots=True)
class SymmetricKey:
    """A SymmetricKey token (WS-Trust 1.3 §9.2): ``bits`` asked for (None: the STS's default), and client entropy,
    sent to get a key computed with PSHA1 from both parties' entropy (§4.4.3) instead of one the STS chose."""

    bits: int | None = None
    entropy: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.bits is not None and (not 0 < self.bits <= MAX_PROOF_KEY_BITS or self.bits % 8):
            raise ValueError(f"a key size is a multiple of 8 between 8 and {MAX_PROOF_KEY_BITS}")
        if self.entropy is not None and not self.entropy:
            raise ValueError("empty client entropy")


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A PublicKey token bound to this certificate's key (WS-Trust 1.3 §9.2, ``wst:UseKey``)."""

    certificate: x509.Certificate


@dataclass(frozen=True, slots=True)
class IssueOptions:
    """An Issue request: the relying party, the token type (None: the RP's own), claims, the key, renewal."""

    connection: Connection
    applies_to: str
    token_type: SamlVersion | None = None
    claims: tuple[str, ...] = ()
    claims_dialect: str = ns.WSO2_CLAIMS
    key: SymmetricKey | PublicKey | None = None  # None: a bearer token
    renewing: Renewing | None = None  # wst:Renewing (WS-Trust 1.3 §5): Allow, and OK after expiry
    # Delegation: the user's token, sent as it is in wst:OnBehalfOf (WS-Trust 1.3 §9.1) or wst14:ActAs (1.4).
    on_behalf_of: etree._Element | None = field(default=None, repr=False)
    act_as: etree._Element | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.applies_to.strip():
            raise ClientError("the AppliesTo address must not be empty")
        if self.on_behalf_of is not None and self.act_as is not None:
            raise ClientError("give either an OnBehalfOf or an ActAs token, not both")


@dataclass(frozen=True, slots=True)
class TargetOptions:
    """The token a Validate, Renew or Cancel request names: inline (``token``, sent as it is) or by its ID
    (``token_id``: a ``wsse:SecurityTokenReference`` to a token of version ``id_version``)."""

    connection: Connection
    token: etree._Element | None = None
    token_id: str | None = None
    id_version: SamlVersion = SamlVersion.SAML20
    # Validate with transformation (WS-Trust 1.3 §7): ask for a new token of this version for this AppliesTo.
    transform_to: SamlVersion | None = None
    applies_to: str | None = None

    def __post_init__(self) -> None:
        if (self.token is None) == (self.token_id is None):
            raise ClientError("name the token either inline or by its ID")
        if (self.transform_to is None) != (self.applies_to is None):
            raise ClientError("a new token needs both its token type and its AppliesTo address")
        if self.applies_to is not None and not self.applies_to.strip():
            raise ClientError("the AppliesTo address must not be empty")
        if self.applies_to is not None and (self.token is None or self.token.tag not in ASSERTIONS):
            raise ClientError("a new token is given for the token itself (a decrypted Assertion), not an ID")
        if self.token is not None and self.token.tag not in TARGET_TOKENS:
            raise ClientError("the token must be an Assertion, EncryptedAssertion or EncryptedData")
        if self.token_id is not None:
            _check_token_id(self.token_id)


def _check_token_id(token_id: str) -> None:
    if not token_id.strip() or token_id != token_id.strip():
        raise ClientError("the token ID must not be empty or have surrounding white space")
    try:
        etree.Element("probe").text = token_id
    except ValueError:  # lxml refuses NUL and other characters XML cannot carry
        raise ClientError("the token ID contains characters that XML cannot carry") from None


@dataclass(frozen=True, slots=True)
class InspectOptions:
    """A token (or whole response) file to decrypt, verify and read.

    ``sts_certificate`` is the pinned STS signing certificate, or a function giving its path, called only once
    the file holds a token (finding the certificate may need a configuration the file's problems do not).
    ``passphrase`` is asked for the RP key's passphrase when that PEM is encrypted.
    """

    token_file: Path
    sts_certificate: Path | Callable[[], Path]
    rp_key: Path | None = None
    passphrase: Callable[[Path], str] | None = None


__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_PROOF_KEY_BITS",
    "SOAP_NAMESPACES",
    "TARGET_TOKENS",
    "Connection",
    "InspectOptions",
    "IssueOptions",
    "PublicKey",
    "SymmetricKey",
    "TargetOptions",
    "check_url",
]
