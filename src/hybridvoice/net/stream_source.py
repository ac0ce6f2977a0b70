"""The source address of an outgoing SIP stream connection (RFC 3261 §18.1.1: a client
transport sends from an address the server can answer, and a peer may accept only known
addresses, RFC 5922 §7.2 and the edge's ``[Online] SIPAddresses``)."""

from __future__ import annotations

import ipaddress

__all__ = ["outgoing_source"]


def outgoing_source(bound: str, target: str) -> tuple[str, int] | None:
    """Where a connection to ``target`` leaves from: the listener's own ``bound`` address (any
    port) when it is a specific address that can reach ``target`` (same family, both
    loopback or both not); else None, the kernel's pick. A host with several addresses (a lab
    on 127.0.0.0/8, a multi-homed server) otherwise sends from whichever address its route
    prefers, and a peer that accepts only our address (the edge, ``[Online] SIPAddresses``)
    refuses us."""
    try:
        ours, theirs = ipaddress.ip_address(bound), ipaddress.ip_address(target)
    except ValueError:  # never listened, or a name: the kernel picks
        return None
    if ours.is_unspecified or ours.version != theirs.version:
        return None
    return (bound, 0) if ours.is_loopback == theirs.is_loopback else None
