"""The client address a request comes from, for the rate limits per address.

Without trusted proxies (``JPKI_TRUSTED_PROXIES`` empty, the default) it is the TCP peer, full stop: a client can
write any ``X-Forwarded-For`` it likes, so the header is ignored. With trusted proxies (comma-separated IPs or
CIDRs, e.g. ``10.0.0.0/8,127.0.0.1``) and a peer among them, the header is read from the right: each proxy appends
the address it received the request from, so the first address from the right that is *not* a trusted proxy is
the client. Garbage in the header stops the walk at the last trusted hop (never a crash, never a forged address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_trusted(value: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` → networks; raises ``ValueError`` naming a bad entry."""
    networks: list[Network] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"JPKI_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: str) -> str | None:
    """The client's address (normalised text), or ``None`` when the peer is unknown (e.g. an in-process client)."""
    if not peer:
        return None
    peer_address = _address(peer)
    if peer_address is None:
        return peer[:64]  # not an IP (a test client, a Unix socket): still a stable subject for the limits
    networks = parse_trusted(trusted_proxies)
    if not networks or not forwarded_for or not _trusted(peer_address, networks):
        return str(peer_address)
    client = peer_address
    for hop in reversed(forwarded_for.split(",")[-32:]):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, networks):
            break
    return str(client)
