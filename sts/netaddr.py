"""Client addresses and the configured address lists (trusted proxies, throttling exemptions).

Entries are parsed with :mod:`ipaddress` when the configuration is loaded, so a typo or a ``*`` fails the boot
instead of silently trusting (or collapsing) every client; matching is by network membership, never by string.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"  # a forwarded hop that is no IP address ("unknown", an RFC 7239 obfuscated name)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


# A host name of RFC 1123 §2.1 labels (letters, digits, hyphens; an IPv4 address is one too).
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def is_host_port(text: str) -> bool:
    """Whether ``text`` is ``HOST:PORT`` as ``[server] bind`` takes it: a host name, an IPv4 address or a bracketed
    IPv6 literal (``[::1]:9443``, RFC 3986 §3.2.2), and a port from 1 to 65535 (RFC 6335 §6; 0 would be a random
    one). gunicorn's other forms (``unix:PATH``, ``fd://N``) are not served: the endpoint URL is derived from it."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None


def parse_network(entry: str) -> Network:
    """One list entry: an IP address (a /32 or /128 network) or a CIDR network with no host bits set.

    ``*`` is refused: trusting every peer lets any client claim HTTPS or any address.
    """
    text = entry.strip()
    if "*" in text:
        raise ValueError(f"{entry!r}: '*' is not accepted; list the proxies' addresses or networks")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise ValueError(f"{entry!r} is not an IP address or a network such as 10.0.0.0/24") from None


def are_networks(entries: Iterable[str]) -> bool:
    """Whether every entry parses with :func:`parse_network` (the settings validator)."""
    try:
        for entry in entries:
            parse_network(entry)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)  # three times per request, for the same few peers
def parse_address(text: str) -> Address | None:
    """An IP address as a peer or a proxy writes it (``[v6]:port`` and ``v4:port`` too), IPv4-mapped IPv6
    addresses as IPv4; None when it is no address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class AddressSet:
    """A parsed list of addresses and networks."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressSet:
        """Parse configuration entries; :class:`ValueError` names the first bad one."""
        return cls(tuple(parse_network(entry) for entry in entries))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        """Whether an address (text or :mod:`ipaddress` object) lies in one of the networks."""
        parsed = parse_address(address) if isinstance(address, str) else address
        if not isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return any(parsed in network for network in self.networks if network.version == parsed.version)

    def covers_loopback(self) -> bool:
        """Whether any loopback address is in the set."""
        return any(network.overlaps(loop) for network in self.networks for loop in LOOPBACK
                   if network.version == loop.version)


def canonical_address(text: str) -> str:
    """The canonical text of an address (one throttle key per client however it is written), or
    :data:`UNKNOWN_CLIENT`."""
    address = parse_address(text)
    return UNKNOWN_CLIENT if address is None else str(address)


def forwarded_client(remote: str, forwarded_for: str | None, proxies: AddressSet) -> str:
    """The client address of a request (canonical text).

    The peer itself, unless the peer is a trusted proxy and sent ``X-Forwarded-For``: then the right-most hop
    that is not a trusted proxy. Hops to its left were written by the client and prove nothing; every proxy of
    ours appends the address it saw, so the right-most untrusted hop is the first one no proxy of ours vouches
    for.
    """
    if forwarded_for is None or not proxies or remote not in proxies:
        return canonical_address(remote) if remote else ""
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in proxies:
            return canonical_address(hop)
    return canonical_address(remote)
