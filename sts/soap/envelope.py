"""SOAP envelope structure checks (SOAP 1.1 §4, SOAP 1.2 part 1 §5, WS-I BP R1011; security rows S01-S14).

The envelope is read from the tree :func:`sts.xmlutil.parse_untrusted` produced; nothing here parses bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lxml import etree

from sts import ns
from sts.errors import InvalidRequest, MalformedMessage, MustUnderstand, VersionMismatch
from sts.xmlutil import element_children


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


@dataclass(frozen=True, slots=True)
class Envelope:
    """A structurally valid SOAP envelope: its version, header blocks and the one Body child."""

    version: SoapVersion
    root: etree._Element
    headers: tuple[etree._Element, ...]
    body_child: etree._Element


_MU_TRUE = {SoapVersion.SOAP11: {"1"}, SoapVersion.SOAP12: {"1", "true"}}
_MU_FALSE = {SoapVersion.SOAP11: {"0"}, SoapVersion.SOAP12: {"0", "false"}}


def read_envelope(root: etree._Element, version: SoapVersion) -> Envelope:
    """Check the envelope's shape against the version the media type announced."""
    if root.tag != ns.qn(version.namespace, "Envelope"):
        if etree.QName(root).localname == "Envelope" and etree.QName(root).namespace in (ns.S11, ns.S12):
            raise VersionMismatch("envelope namespace does not match the content type")
        if etree.QName(root).localname == "Envelope":
            raise VersionMismatch("unknown envelope namespace")
        raise MalformedMessage("root is not a SOAP Envelope", reason="envelope_root")
    children = element_children(root)
    header_tag, body_tag = ns.qn(version.namespace, "Header"), ns.qn(version.namespace, "Body")
    tags = [child.tag for child in children]
    if tags not in ([body_tag], [header_tag, body_tag]):
        raise MalformedMessage("envelope must be an optional Header then one Body", reason="envelope_structure")
    headers = tuple(element_children(children[0])) if len(children) == 2 else ()
    body_children = element_children(children[-1])
    if len(body_children) != 1:
        raise InvalidRequest("Body must hold exactly one element", reason="body_children")
    return Envelope(version, root, headers, body_children[0])


def must_understand(header: etree._Element, version: SoapVersion) -> bool:
    """The header's mustUnderstand value; an invalid value is a malformed message (row S07)."""
    value = header.get(ns.qn(version.namespace, "mustUnderstand"))
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
        actor = header.get(ns.qn(ns.S11, "actor"))
        return actor in (None, "", "http://schemas.xmlsoap.org/soap/actor/next")
    role = header.get(ns.qn(ns.S12, "role"))
    return role in (
        None,
        "",
        "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver",
        "http://www.w3.org/2003/05/soap-envelope/role/next",
    )


def check_must_understand(envelope: Envelope, understood: frozenset[str]) -> None:
    """Fault on the first header targeted at us, marked mustUnderstand, whose QName we do not process."""
    for header in envelope.headers:
        if must_understand(header, envelope.version) and targets_us(header, envelope.version):
            if header.tag not in understood:
                qname = etree.QName(header)
                raise MustUnderstand("header not understood", not_understood=(qname.namespace or "", qname.localname))
