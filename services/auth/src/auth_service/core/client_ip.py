"""The client address a rate limit counts against.

`X-Forwarded-For` is anyone's to write, so it is believed only when the direct peer is a
configured trusted proxy (the gateway), and then only up to the right-most address that no
trusted proxy vouches for: everything left of it may be the client's own invention.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_XFF = b"x-forwarded-for"
UNKNOWN = "unknown"


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs or single addresses; raises ValueError on anything else (a config error)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _address(text: str) -> IpAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def bucket_key(address: IpAddress) -> str:
    """One IPv6 client usually owns a whole /64, so that is what it is counted as."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ClientIp:
    """Resolves the client address of a request, given the trusted proxies."""

    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        self.trusted = parse_networks(trusted_proxies)

    def _is_trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self.trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = _address(client[0]) if client else None
        if peer is None:
            return UNKNOWN
        if not self.trusted or not self._is_trusted(peer):
            return bucket_key(peer)
        hops = [
            part
            for name, value in scope.get("headers", ())
            if name == _XFF
            for part in value.decode("latin-1").split(",")
        ]
        candidate = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage where an address should be: trust stops at the last good hop
            candidate = address
            if not self._is_trusted(address):
                break
        return bucket_key(candidate)
