"""SOAP envelope structure checks (SOAP 1.1 §4, SOAP 1.2 part 1 §5, WS-I Basic Profile R1011).

The envelope is read from the tree :func:`sts.xmlutil.parse_untrusted` produced; nothing here parses bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.errors import InvalidRequest, MalformedMessage, MustUnderstand, VersionMismatch
from sts.soapenv import SoapVersion, must_understand, targets_us
from sts.xmlutil import element_children

__all__ = ["Envelope", "SoapVersion", "check_must_understand", "must_understand", "read_envelope", "targets_us"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A structurally valid SOAP envelope: its version, header blocks and the one Body child."""

    version: SoapVersion
    root: etree._Element
    headers: tuple[etree._Element, ...]
    body_child: etree._Element


# (Envelope, Header, Body) Clark names per version, built once rather than per request.
_TAGS = {
    version: tuple(ns.qn(version.namespace, local) for local in ("Envelope", "Header", "Body"))
    for version in SoapVersion
}


def read_envelope(root: etree._Element, version: SoapVersion) -> Envelope:
    """Check the envelope's shape against the version the media type announced."""
    envelope_tag, header_tag, body_tag = _TAGS[version]
    if root.tag != envelope_tag:
        if etree.QName(root).localname == "Envelope" and etree.QName(root).namespace in (ns.S11, ns.S12):
            soap11 = root.tag == _TAGS[SoapVersion.SOAP11][0]
            raise VersionMismatch("envelope namespace does not match the content type", soap11_envelope=soap11)
        if etree.QName(root).localname == "Envelope":
            raise VersionMismatch("unknown envelope namespace")
        raise MalformedMessage("root is not a SOAP Envelope", reason="envelope_root")
    children = element_children(root)
    tags = [child.tag for child in children]
    if tags not in ([body_tag], [header_tag, body_tag]):
        raise MalformedMessage("envelope must be an optional Header then one Body", reason="envelope_structure")
    headers = tuple(element_children(children[0])) if len(children) == 2 else ()
    body_children = element_children(children[-1])
    if len(body_children) != 1:
        raise InvalidRequest("Body must hold exactly one element", reason="body_children")
    return Envelope(version, root, headers, body_children[0])


def check_must_understand(envelope: Envelope, understood: frozenset[str]) -> None:
    """Fault on the first header targeted at us, marked mustUnderstand, whose QName we do not process."""
    for header in envelope.headers:
        if must_understand(header, envelope.version) and targets_us(header, envelope.version):
            if header.tag not in understood:
                qname = etree.QName(header)
                raise MustUnderstand("header not understood", not_understood=(qname.namespace or "", qname.localname))
