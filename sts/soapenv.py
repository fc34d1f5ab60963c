"""SOAP envelope vocabulary shared by every layer: the two versions, header targeting and mustUnderstand.

Framework-free and free of parsing, so that WS-Security processing can use it without depending on the
SOAP edge (``sts.soap``).
"""

from __future__ import annotations

from enum import Enum

from lxml import etree

from sts import ns
from sts.errors import MalformedMessage


class SoapVersion(Enum):
    """SOAP 1.1 or 1.2, with the envelope namespace and media type of each."""

    SOAP11 = (ns.S11, "text/xml")
    SOAP12 = (ns.S12, "application/soap+xml")

    @property
    def namespace(self) -> str:
        """The envelope namespace URI."""
        return self.value[0]

    @property
    def media_type(self) -> str:
        """The HTTP media type of messages in this version."""
        return self.value[1]

    @classmethod
    def from_media_type(cls, media_type: str) -> SoapVersion | None:
        """The version a request's media type announces, or None for anything else."""
        for version in cls:
            if version.media_type == media_type:
                return version
        return None


_MU_TRUE = {SoapVersion.SOAP11: {"1"}, SoapVersion.SOAP12: {"1", "true"}}
_MU_FALSE = {SoapVersion.SOAP11: {"0"}, SoapVersion.SOAP12: {"0", "false"}}
# Attribute names per version, built once: every header block of every request is asked for them.
_MUST_UNDERSTAND = {version: ns.qn(version.namespace, "mustUnderstand") for version in SoapVersion}
_ACTOR = ns.qn(ns.S11, "actor")
_ROLE = ns.qn(ns.S12, "role")
_S11_ACTORS = frozenset({"", "http://schemas.xmlsoap.org/soap/actor/next"})
_S12_ROLES = frozenset({
    "",
    "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver",
    "http://www.w3.org/2003/05/soap-envelope/role/next",
})


def must_understand(header: etree._Element, version: SoapVersion) -> bool:
    """The header's mustUnderstand value; an invalid value is a malformed message (SOAP 1.1 §4.2.3)."""
    value = header.get(_MUST_UNDERSTAND[version])
    if value is None:
        return False
    value = value.strip() if version is SoapVersion.SOAP12 else value
    if value in _MU_TRUE[version]:
        return True
    if value in _MU_FALSE[version]:
        return False
    raise MalformedMessage("invalid mustUnderstand value", reason="must_understand_value")


def targets_us(header: etree._Element, version: SoapVersion) -> bool:
    """Whether a header block is addressed to the ultimate receiver (no actor/role, or the standard ones)."""
    if version is SoapVersion.SOAP11:
        actor = header.get(_ACTOR)
        return actor is None or actor in _S11_ACTORS
    role = header.get(_ROLE)
    return role is None or role in _S12_ROLES
