"""Which IP addresses are someone's public server, and which are anyone's own network.

Links people store (resolvers/common/links.py) and the addresses the partner webhook
sender connects to (integrations/partner_webhooks.py) follow the same rule: only
globally reachable unicast, never a private, loopback, link-local, shared, multicast,
reserved or unspecified address, also not one wrapped in IPv6 (IPv4-mapped, 6to4,
Teredo, NAT64).
"""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def globally_reachable(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return globally_reachable(embedded)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
