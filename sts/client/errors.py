"""What the client reports when it gets no usable answer: a :class:`ClientError` (bad input, transport or
protocol trouble), or a :class:`FaultReceived` when the STS answered with a SOAP fault.

Messages are meant for a person and may quote the server's answer, which is untrusted: every quoted value goes
through :func:`clean` first, so a message is always safe to print on a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass


def clean(text: str) -> str:
    """Untrusted text made safe for a terminal: control and format characters are escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


class ClientError(Exception):
    """The request could not be made, or its answer could not be used; the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP fault (SOAP 1.1 §4.4, SOAP 1.2 §5.4): the code as written (``prefix:local``), its namespace and the
    fault string, all as the server sent them; and the correlation id this STS puts in the fault's detail (the key
    of the refusal's audit record, which names the reason), empty when the server sent none."""

    code: str
    namespace: str
    reason: str
    correlation_id: str = ""

    def describe(self) -> str:
        """``code (namespace): reason``, and ``[correlation id …]`` when there is one; safe for a terminal."""
        text = f"{clean(self.code)} ({clean(self.namespace) or 'no namespace'}): {clean(self.reason)}"
        return f"{text} [correlation id {clean(self.correlation_id)}]" if self.correlation_id else text


class FaultReceived(ClientError):
    """The STS answered with a SOAP fault: a refusal, not a transport problem."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.describe())
        self.fault = fault


__all__ = ["ClientError", "Fault", "FaultReceived", "clean"]
