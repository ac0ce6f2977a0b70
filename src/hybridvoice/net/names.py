"""Names of peers we know without DNS: where a Route or Contact naming an FQDN goes.

Over TLS our peers put the FQDN of their certificate in Via, Record-Route and Contact, never a
bare IP (RFC 5922 §7, RFC 5630 §3); an in-dialog request routed by such a URI must still
reach them. RFC 3263 would ask DNS (§4.2: A/AAAA when the URI has a port); a site's own hops
(the edge's Record-Route seen by the online service and by the mediation role) are known to
the assembly, which maps them to the configured addresses, so that a loopback lab works
without DNS, as the mediation role's gateways (``FQDN`` checked, ``IP`` dialled) do.

:func:`named_destination` is the synchronous lookup a proxy uses (a name not mapped stays
unresolved); :class:`NameResolver` is the UA's RFC 3263 hook (:data:`~.ua.Resolver`): the
map first, else the system resolver (A/AAAA), the name kept as the TLS server name.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping

from hybridvoice.sip.uri import SipUri, Uri

from .transport import DEFAULT_PORTS, Destination, TransportError

__all__ = ["NameLookup", "NameResolver", "named_destination"]

#: a SIP URI whose host is a name -> the IP address it stands for, or None when unknown (the
#: user part may say which of several hosts sharing the name: an appliance of a pool)
NameLookup = Callable[[SipUri], str | None]


def _parts(uri: SipUri) -> tuple[str, str, int]:
    host = (uri.maddr or uri.host_bare).rstrip(".").lower()
    kind = (uri.transport or ("tls" if uri.secure else "udp")).upper()
    return host, kind, uri.port or DEFAULT_PORTS.get(kind, 5060)


def named_destination(uri: Uri, lookup: NameLookup | None) -> Destination | None:
    """The destination of a SIP URI whose host is a name ``lookup`` knows, with that name as
    the TLS server name; None otherwise."""
    if lookup is None or type(uri) is not SipUri:
        return None
    host, kind, port = _parts(uri)
    address = lookup(uri)
    return None if address is None else Destination(kind, address, port, host)


class NameResolver:
    """The UA's resolver: ``names`` (lowercase name -> IP) first, else A/AAAA through the
    system resolver; :class:`~.transport.TransportError` when neither knows the name."""

    __slots__ = ("names", "system")

    def __init__(self, names: Mapping[str, str], *, system: bool = True) -> None:
        self.names = {name.lower(): address for name, address in names.items()}
        self.system = system

    async def __call__(self, uri: SipUri) -> Destination:
        host, kind, port = _parts(uri)
        address = self.names.get(host)
        if address is None and self.system:
            kinds = socket.SOCK_DGRAM if kind == "UDP" else socket.SOCK_STREAM
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kinds)
            except OSError as exc:
                raise TransportError(f"{host} does not resolve: {exc}") from exc
            address = str(infos[0][4][0]) if infos else None
        if address is None:
            raise TransportError(f"{host} is not a name this role knows")
        return Destination(kind, address, port, host)
