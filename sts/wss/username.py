"""``wsse:UsernameToken`` parsing and PasswordDigest (UsernameToken Profile 1.1 §3.1).

:func:`parse_username_token` only reads and validates the token's shape (UsernameToken Profile 1.1; BSP 1.1
R4201, R4220-R4225); it never looks a user up or checks a password. Fault classes follow WSS4J: a malformed
token is ``InvalidSecurityToken``; anything that would otherwise be "no check" or a user-controlled oracle
(no password, empty password, custom type, oversized password, odd username) is ``FailedAuthentication``, the
same fault as a wrong password, so no answer tells a caller more than "not authenticated".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from lxml import etree

from sts import ns
from sts.clock import Clock
from sts.errors import FailedAuthentication, InvalidSecurityToken, UnsupportedSecurityToken
from sts.wss.timestamp import XML_WHITESPACE, FreshnessPolicy, check_freshness, parse_xsd_datetime
from sts.xmlutil import element_children, text_of

PasswordType = Literal["text", "digest"]

MAX_USERNAME_CHARS = 256

_USERNAME = ns.qn(ns.WSSE, "Username")
_PASSWORD = ns.qn(ns.WSSE, "Password")
_NONCE = ns.qn(ns.WSSE, "Nonce")
_CREATED = ns.qn(ns.WSU, "Created")
_DERIVED_KEY_PARTS = (ns.qn(ns.WSSE11, "Salt"), ns.qn(ns.WSSE11, "Iteration"))
_PASSWORD_TYPES: dict[str, PasswordType] = {ns.PASSWORD_TEXT: "text", ns.PASSWORD_DIGEST: "digest"}


@dataclass(frozen=True, slots=True)
class UsernameCredential:
    """What a UsernameToken claims, validated for shape only (UsernameToken Profile 1.1 §3.1).

    ``password`` is the password text exactly as sent (not trimmed: spaces may be part of a password) or, for
    ``digest``, the Base64 PasswordDigest as sent. ``nonce`` is the decoded Nonce; replay caches must key on it
    rather than on ``nonce_text``, because Base64 has several spellings of the same bytes. ``created_text`` is the
    ``wsu:Created`` text exactly as sent (the digest hashes the text, not the instant); ``created`` is its
    parsed UTC instant. Secrets are kept out of ``repr`` so a logged credential leaks nothing.
    """

    username: str
    password: str | None = field(repr=False)
    password_type: PasswordType
    nonce: bytes | None = field(repr=False)
    nonce_text: str | None = field(repr=False)
    created_text: str | None
    created: datetime | None

    @property
    def is_digest(self) -> bool:
        """Whether the token carries a PasswordDigest rather than the password text."""
        return self.password_type == "digest"  # noqa: S105 - a type name, not a secret

    @property
    def plain_password(self) -> str | None:
        """The password text of a PasswordText token, else None."""
        return None if self.is_digest else self.password


def parse_username_token(
    ut_element: etree._Element, *, bsp_strict: bool, min_nonce_bytes: int, max_password_bytes: int
) -> UsernameCredential:
    """Read a ``wsse:UsernameToken`` (UT Profile 1.1 §3.1; BSP 1.1 R4201, R4220-R4225).

    Raises :class:`UnsupportedSecurityToken` for derived-key tokens (UT Profile 1.1 §4, "Key Derivation"),
    :class:`InvalidSecurityToken` for a malformed token and :class:`FailedAuthentication` where the token cannot
    authenticate anyone. ``bsp_strict`` makes a Password without ``Type`` an error instead of PasswordText
    (BSP 1.1 R4201).
    """
    parts = _group_children(ut_element)
    if any(tag in parts for tag in _DERIVED_KEY_PARTS):
        # Never run a PBKDF with an attacker-chosen iteration count: refuse before reading anything else.
        raise UnsupportedSecurityToken("derived-key UsernameToken (Salt/Iteration)", reason="ut_derived_key")
    username = normalize_username(_simple_text(_required_one(parts, _USERNAME, "Username")))
    password_el = _optional_one(parts, _PASSWORD, "Password")
    if password_el is None:
        # WSS4J allowUsernameTokenNoPassword=false: "no password" must never mean "no check".
        raise FailedAuthentication("UsernameToken without Password", reason="no_password")
    password_type = _password_type(password_el, bsp_strict=bsp_strict)
    password = _password_value(password_el, max_password_bytes)
    nonce_text, nonce = _nonce(_optional_one(parts, _NONCE, "Nonce"), min_nonce_bytes)
    created_el = _optional_one(parts, _CREATED, "Created")
    created_text = None if created_el is None else _simple_text(created_el)
    created = None if created_text is None else parse_xsd_datetime(created_text, reason="bad_created")
    if password_type == "digest" and (nonce is None or created_text is None):  # noqa: S105 - a type name, not a secret
        raise InvalidSecurityToken("PasswordDigest needs Nonce and Created", reason="ut_digest_incomplete")
    return UsernameCredential(username, password, password_type, nonce, nonce_text, created_text, created)


def normalize_username(raw: str) -> str:
    """Trim a Username and refuse empty, over-long or control-character names (no injection into a directory).

    Raises :class:`FailedAuthentication`: such names can never match an account, and answering them like a wrong
    password keeps the fault from being an oracle. Control characters (Unicode ``Cc``, NUL included) are refused
    so they never reach an LDAP filter, SQL query or log line.
    """
    username = raw.strip(XML_WHITESPACE)
    if not username:
        raise FailedAuthentication("empty Username", reason="empty_username")
    if len(username) > MAX_USERNAME_CHARS:
        raise FailedAuthentication("Username too long", reason="bad_username")
    # Every Cc character is non-printable, so a printable name (nearly all) skips the per-character look-up.
    if not username.isprintable() and any(unicodedata.category(char) == "Cc" for char in username):
        raise FailedAuthentication("control character in Username", reason="bad_username")
    return username


def compute_password_digest(nonce: bytes, created_text: str, password: str) -> str:
    """``Base64(SHA-1(nonce + created + password))`` (UT Profile 1.1 §3.1).

    ``nonce`` is the *decoded* Nonce and ``created_text`` the ``wsu:Created`` text exactly as sent, both as
    UTF-8 like the password: re-formatting Created (``+00:00`` to ``Z``) changes the digest.
    """
    # SHA-1 is what the profile mandates; it is an interop formula, not our choice of hash.
    sha1 = hashlib.sha1(nonce + created_text.encode("utf-8") + password.encode("utf-8"))  # noqa: S324
    return base64.b64encode(sha1.digest()).decode("ascii")


def digest_matches(credential: UsernameCredential, password: str) -> bool:
    """Whether a PasswordDigest credential was made from ``password`` (UT Profile 1.1 §3.1).

    Compared with :func:`hmac.compare_digest`. Anything that is not a complete digest credential is ``False``
    (fail closed). Surrounding XML whitespace around the sent Base64 value is ignored: it cannot be part of a
    SHA-1 digest, and wrapped values occur in pretty-printed requests.
    """
    if credential.password_type != "digest" or credential.password is None:  # noqa: S105 - a type name
        return False
    if credential.nonce is None or credential.created_text is None:
        return False
    expected = compute_password_digest(credential.nonce, credential.created_text, password)
    # Bytes, not str: compare_digest raises TypeError on non-ASCII str, and the sent value is attacker text.
    sent = credential.password.strip(XML_WHITESPACE).encode("utf-8")
    return hmac.compare_digest(expected.encode("ascii"), sent)


def check_created(credential: UsernameCredential, clock: Clock, policy: FreshnessPolicy) -> None:
    """Apply the freshness window to the token's own ``wsu:Created`` (WSS4J utTTL/utFutureTTL; UT Profile 1.1 §3.1).

    Applies whether or not the message also has a ``wsu:Timestamp``; a token without Created is left alone.
    Raises :class:`MessageExpired`.
    """
    if credential.created is not None:
        check_freshness(credential.created, clock, policy)


def _group_children(ut_element: etree._Element) -> dict[str, list[etree._Element]]:
    """The token's element children by Clark name; unknown extension children are kept but never read."""
    parts: dict[str, list[etree._Element]] = {}
    for child in element_children(ut_element):
        parts.setdefault(str(child.tag), []).append(child)
    return parts


def _optional_one(parts: dict[str, list[etree._Element]], tag: str, what: str) -> etree._Element | None:
    """At most one child of a kind (BSP 1.1 R4222 Password, R4223 Created, R4225 Nonce)."""
    found = parts.get(tag, [])
    if len(found) > 1:
        raise InvalidSecurityToken(f"more than one {what}", reason=f"ut_{what.lower()}_count")
    return found[0] if found else None


def _required_one(parts: dict[str, list[etree._Element]], tag: str, what: str) -> etree._Element:
    """Exactly one child of a kind (UT Profile 1.1 §3.1: Username is required)."""
    element = _optional_one(parts, tag, what)
    if element is None:
        raise InvalidSecurityToken(f"UsernameToken without {what}", reason=f"ut_no_{what.lower()}")
    return element


def _simple_text(element: etree._Element) -> str:
    """Full text of a simple-content element, comments skipped (CVE-2017-11427); element content is malformed."""
    if element_children(element):
        raise InvalidSecurityToken("UsernameToken value has element content", reason="ut_structure")
    return text_of(element)


def _password_type(password_el: etree._Element, *, bsp_strict: bool) -> PasswordType:
    """Map ``Password/@Type`` (UT Profile 1.1 §3.1; BSP 1.1 R4201)."""
    # Only a name in Clark notation ("{ns}local") can be namespace-qualified; plain "Type" skips the QName parse.
    if any(_is_qualified_type(name) for name in password_el.keys() if str(name).startswith("{")):
        # WSS4J allowNamespaceQualifiedPasswordTypes=false: only the unqualified attribute is the Type.
        raise InvalidSecurityToken("namespace-qualified Password Type", reason="ut_qualified_password_type")
    type_uri = password_el.get("Type")
    if type_uri is None:
        if bsp_strict:
            raise InvalidSecurityToken("Password without Type (BSP R4201)", reason="ut_no_password_type")
        return "text"  # UT Profile default; Microsoft's client code sends no Type
    password_type = _PASSWORD_TYPES.get(type_uri.strip(XML_WHITESPACE))
    if password_type is None:
        # WSS4J handleCustomPasswordTypes=false: same fault as a wrong password.
        raise FailedAuthentication("unsupported Password Type", reason="unknown_password_type")
    return password_type


def _is_qualified_type(attribute_name: str | bytes) -> bool:
    """Whether an attribute is ``{any namespace}Type`` (only the unqualified one counts)."""
    qname = etree.QName(attribute_name)
    return qname.namespace is not None and qname.localname == "Type"


def _password_value(password_el: etree._Element, max_password_bytes: int) -> str:
    """The Password text, untrimmed; empty or over-long (hashing-cost DoS) is a failed login."""
    password = _simple_text(password_el)
    # Length in characters is a lower bound on UTF-8 bytes: refuse megabyte values before encoding them.
    if len(password) > max_password_bytes or len(password.encode("utf-8")) > max_password_bytes:
        raise FailedAuthentication("Password too long", reason="password_too_long")
    if not password:
        raise FailedAuthentication("empty Password", reason="empty_password")
    return password


def _nonce(nonce_el: etree._Element | None, min_nonce_bytes: int) -> tuple[str | None, bytes | None]:
    """Decode a Nonce (BSP 1.1 R4220 EncodingType present, R4221 Base64Binary) as (text as sent, bytes)."""
    if nonce_el is None:
        return None, None
    encoding = nonce_el.get("EncodingType")
    if encoding is None or encoding.strip(XML_WHITESPACE) != ns.BASE64_BINARY:
        raise InvalidSecurityToken("Nonce EncodingType must be Base64Binary", reason="ut_nonce_encoding")
    text = _simple_text(nonce_el)
    # Base64 may be line-wrapped: drop XML whitespace only, so validate=True still refuses NBSP and other bytes.
    compact = _drop_xml_whitespace(text)
    try:
        nonce = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecurityToken("Nonce is not valid Base64", reason="ut_bad_nonce") from None
    if len(nonce) < min_nonce_bytes:
        raise InvalidSecurityToken("Nonce too short", reason="ut_short_nonce")
    return text, nonce


def _drop_xml_whitespace(text: str) -> str:
    """``text`` without XML whitespace (space, tab, CR, LF) and nothing else removed.

    Four ``str.replace`` calls: ``str.translate`` with a deletion table costs ten times more on a nonce.
    """
    for char in XML_WHITESPACE:
        text = text.replace(char, "")
    return text
