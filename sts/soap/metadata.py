"""Federation metadata: the STS's signing certificates for relying parties, current and next.

Served on ``GET /FederationMetadata/2007-06/FederationMetadata.xml`` (where AD FS serves it, so WIF and ADFS-aware
relying parties find it) and ``GET /metadata``: a SAML 2.0 metadata ``md:EntityDescriptor`` (SAML 2.0 metadata
§2.3.2) whose ``md:RoleDescriptor`` of type ``fed:SecurityTokenServiceType`` (WS-Federation 1.2 §3.1.2.2) holds one
``md:KeyDescriptor use="signing"`` per certificate whose signatures are valid: the current one first, then the
next one (published before it signs, so relying parties that refresh metadata trust it in time), then previous
ones still accepted. Each ``ds:KeyInfo`` names its role in ``ds:KeyName`` (current, next, previous).

The document is rebuilt only when the published certificates change (key rotation; :mod:`sts.crypto.keyring`).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from typing import Final

from lxml import etree

from sts import ns
from sts.crypto.keygen import certificate_der
from sts.crypto.keyring import PublishedCert

MD: Final = "urn:oasis:names:tc:SAML:2.0:metadata"
FED: Final = "http://docs.oasis-open.org/wsfed/federation/200706"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
WSA10: Final = "http://www.w3.org/2005/08/addressing"
_PROTOCOLS: Final = "http://docs.oasis-open.org/ws-sx/ws-trust/200512 http://schemas.xmlsoap.org/ws/2005/02/trust"


class FederationMetadata:
    """The metadata document of the certificates published now, rebuilt when they change."""

    def __init__(self, entity_id: str, endpoint: str, published: Callable[[], Sequence[PublishedCert]]) -> None:
        self._entity_id = entity_id
        self._endpoint = endpoint
        self._published = published
        self._lock = threading.Lock()
        self._cached: tuple[tuple[PublishedCert, ...], bytes] | None = None

    def document(self) -> bytes:
        """The serialized document."""
        published = tuple(self._published())
        cached = self._cached
        if cached is not None and cached[0] == published:
            return cached[1]
        body = render(self._entity_id, self._endpoint, published)
        with self._lock:
            self._cached = (published, body)
        return body


def render(entity_id: str, endpoint: str, published: Sequence[PublishedCert]) -> bytes:
    """An ``md:EntityDescriptor`` listing ``published`` as signing keys."""
    nsmap = {"md": MD, "fed": FED, "xsi": XSI, "ds": ns.DS, "wsa": WSA10}
    root = etree.Element(etree.QName(MD, "EntityDescriptor"), nsmap=nsmap, entityID=entity_id)
    role = etree.SubElement(root, etree.QName(MD, "RoleDescriptor"))
    role.set(etree.QName(XSI, "type"), "fed:SecurityTokenServiceType")
    role.set("protocolSupportEnumeration", _PROTOCOLS)
    for entry in published:
        descriptor = etree.SubElement(role, etree.QName(MD, "KeyDescriptor"), use="signing")
        key_info = etree.SubElement(descriptor, etree.QName(ns.DS, "KeyInfo"))
        etree.SubElement(key_info, etree.QName(ns.DS, "KeyName")).text = entry.role
        data = etree.SubElement(key_info, etree.QName(ns.DS, "X509Data"))
        der = certificate_der(entry.cert)
        etree.SubElement(data, etree.QName(ns.DS, "X509Certificate")).text = base64.b64encode(der).decode("ascii")
    service = etree.SubElement(role, etree.QName(FED, "SecurityTokenServiceEndpoint"))
    reference = etree.SubElement(service, etree.QName(WSA10, "EndpointReference"))
    etree.SubElement(reference, etree.QName(WSA10, "Address")).text = endpoint
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
