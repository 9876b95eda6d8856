"""The client's IP address: the TCP peer, or the right hop of X-Forwarded-For behind proxies.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only as far
as it was appended by proxies we trust: starting from the peer, while the address at hand
is a trusted proxy, step to the hop it reported (the right-most one not yet used). The
first address that is not a trusted proxy is the client. A request whose peer is not a
trusted proxy gets the peer, whatever its headers say.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: str | None) -> IPAddress | None:
    """An address from a peer or a forwarded hop (IPv4 with a port, ``[v6]:port`` too)."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # 203.0.113.7:443
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` hop is believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"trusted proxy {entry!r} is not an address or CIDR") from exc
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in net for net in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> IPAddress | None:
        """The client's address; None when the peer or a believed hop is not an address."""
        current = parse_ip(peer)
        if current is None or not self._networks or not forwarded_for:
            return current
        hops = [h for h in forwarded_for.split(",") if h.strip()]
        while hops and self.trusts(current):
            hop = parse_ip(hops.pop())
            if hop is None:
                return None  # a trusted proxy forwarded garbage: no address we can believe
            current = hop
        return current
