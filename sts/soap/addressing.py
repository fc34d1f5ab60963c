"""WS-Addressing in (1.0 and the 2004/08 submission namespace) and out (WS-Addressing 1.0 Core and SOAP Binding).

Requests carrying WS-Addressing get ``Action`` (the response action of the binding, or the fault action) and
``RelatesTo`` (their ``MessageID``) back, in the namespace they used; requests without it get none (Rahas then
falls back on the AppliesTo namespace). Replies always go back on the HTTP connection: the STS never opens a
connection to a ``ReplyTo`` or ``FaultTo`` address, so a request cannot make it reach other hosts (SSRF).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.xmlutil import element_children, text_of

FAULT_ACTION = {ns.WSA: f"{ns.WSA}/soap/fault", ns.WSA04: f"{ns.WSA04}/fault"}
ANONYMOUS = {ns.WSA: f"{ns.WSA}/anonymous", ns.WSA04: f"{ns.WSA04}/role/anonymous"}


@dataclass(frozen=True, slots=True)
class Addressing:
    """The WS-Addressing headers of a request."""

    namespace: str
    action: str = ""
    message_id: str = ""


# Clark name → (namespace, local name) of every header read_addressing looks at: one dictionary look-up per header
# instead of parsing each tag into a QName once per namespace.
_READ = {
    ns.qn(namespace, local): (namespace, local)
    for namespace in (ns.WSA, ns.WSA04)
    for local in ("Action", "MessageID", "To", "ReplyTo", "FaultTo")
}


def read_addressing(headers: tuple[etree._Element, ...]) -> Addressing | None:
    """Action and MessageID, from the first WS-Addressing namespace present (one namespace per message).

    Only simple-content headers count (a ``ReplyTo`` with its ``Address`` child does not); the last ``Action`` and
    ``MessageID`` of the namespace win.
    """
    seen: dict[str, tuple[str, str]] = {}  # namespace → (action, message id)
    for header in headers:
        name = _READ.get(header.tag)
        if name is None or element_children(header):
            continue
        namespace, local = name
        action, message_id = seen.get(namespace, ("", ""))
        if local == "Action":
            action = " ".join(text_of(header).split())
        elif local == "MessageID":
            message_id = text_of(header).strip()
        seen[namespace] = (action, message_id)
    for namespace in (ns.WSA, ns.WSA04):
        if namespace in seen:
            action, message_id = seen[namespace]
            return Addressing(namespace, action, message_id[:1024])
    return None


def reply_headers(addressing: Addressing | None, action: str | None) -> list[etree._Element]:
    """``Action``, ``MessageID``, ``RelatesTo`` and ``To`` (anonymous) for the answer; ``action=None``: a fault."""
    if addressing is None:
        return []
    namespace = addressing.namespace
    nsmap = {"wsa": namespace}
    headers: list[etree._Element] = []
    action_el = etree.Element(ns.qn(namespace, "Action"), nsmap=nsmap)
    action_el.text = action if action is not None else FAULT_ACTION[namespace]
    headers.append(action_el)
    message_id = etree.Element(ns.qn(namespace, "MessageID"), nsmap=nsmap)
    message_id.text = f"urn:uuid:{uuid.uuid4()}"
    headers.append(message_id)
    if addressing.message_id:
        relates_to = etree.Element(ns.qn(namespace, "RelatesTo"), nsmap=nsmap)
        relates_to.text = addressing.message_id
        headers.append(relates_to)
    to = etree.Element(ns.qn(namespace, "To"), nsmap=nsmap)
    to.text = ANONYMOUS[namespace]
    headers.append(to)
    return headers
