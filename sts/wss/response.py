"""Response security of the X.509 scenarios (WSS 1.1 §5, §8, §10).

SigOnly (WSO2 scenario 2, asymmetric binding): a ``wsse:Security`` header with a Timestamp, and a signature by the
STS's key over the Timestamp and the Body, its KeyInfo naming the STS certificate by ThumbprintSHA1 (the policy's
RecipientToken is ``Never`` + ``RequireThumbprintReference``). certificatemixed (TLS protects the answer): a
Timestamp only, as AD FS answers. Both run on the finished answer envelope; faults get neither.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from lxml import etree

from sts import ns
from sts.clock import Clock
from sts.crypto.message_keys import MessageKeys
from sts.crypto.wss_sign import thumbprint_reference
from sts.soapenv import SoapVersion

RESPONSE_TTL = 300


def add_security_header(envelope: etree._Element, version: SoapVersion, clock: Clock) -> tuple[
    etree._Element, etree._Element
]:
    """Append ``wsse:Security`` (mustUnderstand) with a fresh Timestamp to the envelope's Header; return both."""
    header = envelope.find(ns.qn(version.namespace, "Header"))
    if header is None:
        header = etree.Element(ns.qn(version.namespace, "Header"))
        envelope.insert(0, header)
    security = etree.SubElement(header, ns.qn(ns.WSSE, "Security"), nsmap={"wsse": ns.WSSE, "wsu": ns.WSU})
    security.set(ns.qn(version.namespace, "mustUnderstand"), "1" if version is SoapVersion.SOAP11 else "true")
    now = clock.now()
    timestamp = etree.SubElement(security, ns.qn(ns.WSU, "Timestamp"))
    timestamp.set(ns.qn(ns.WSU, "Id"), f"_ts{uuid.uuid4().hex}")
    etree.SubElement(timestamp, ns.qn(ns.WSU, "Created")).text = _instant(now)
    etree.SubElement(timestamp, ns.qn(ns.WSU, "Expires")).text = _instant(now + timedelta(seconds=RESPONSE_TTL))
    return security, timestamp


def _instant(value: datetime) -> str:
    return f"{value:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"


class SignedResponder:
    """Signs answers with the STS's key in force (SigOnly)."""

    def __init__(self, keys: MessageKeys, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock

    def __call__(self, envelope: etree._Element, version: SoapVersion) -> None:
        """Add the Security header and sign its Timestamp and the Body."""
        security, timestamp = add_security_header(envelope, version, self._clock)
        body = envelope.find(ns.qn(version.namespace, "Body"))
        if body is None:
            raise ValueError("answer envelope without Body")
        body.set(ns.qn(ns.WSU, "Id"), f"_body{uuid.uuid4().hex}")
        key = self._keys.signing()
        key.signer.sign(security, [timestamp, body], thumbprint_reference(key.certificate))


class TimestampResponder:
    """Adds an unsigned Timestamp to answers (certificatemixed: TLS protects them)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(self, envelope: etree._Element, version: SoapVersion) -> None:
        """Add the Security header with its Timestamp."""
        add_security_header(envelope, version, self._clock)
