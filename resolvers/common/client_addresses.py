"""Whose budget a client address counts against: one rule for every per-IP limit (rate
limits, secret checks), so that no limit is looser than another for the same client."""

from __future__ import annotations

import ipaddress


def address_key(ip: str | None) -> str:
    """IPv6 by its /64 (one subscriber's block, which they may rotate through freely),
    IPv4 and IPv4-mapped IPv6 as they are."""
    if ip is None:
        return "unknown"
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
