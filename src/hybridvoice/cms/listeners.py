"""Every address the appliance settings make this host listen on, and their clashes.

``hybridvoice up`` checks these before it starts anything (RFC 3261 §18.2.1 listeners, the
HTTP services of the online service, management and the media bypass service); the settings
cross-check (:func:`hybridvoice.cms.settings.cross_check`) reports two listeners on one
address as a problem naming both keys.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .settings_edge import relay_addresses

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["PRIVILEGED_PORTS", "Listener", "listener_clashes", "listeners"]

#: Ports below this need privilege to bind (root, or CAP_NET_BIND_SERVICE on Linux).
PRIVILEGED_PORTS: Final = 1024


@dataclass(frozen=True, slots=True)
class Listener:
    """One address a role listens on, and the settings key that puts it there.

    ``transport`` is UDP, TCP, TLS or HTTP; TCP, TLS and HTTP share the TCP port space."""

    key: str  # dotted, as in Problem: "MediationServer.TCPPort"
    transport: str
    host: str
    port: int

    @property
    def setting(self) -> str:
        """The key as an admin finds it in the file: ``[MediationServer] TCPPort``."""
        section, _, key = self.key.partition(".")
        return f"[{section}] {key}"

    @property
    def socket_kind(self) -> str:
        """The port space: ``udp`` or ``tcp`` (TLS and HTTP run on TCP)."""
        return "udp" if self.transport == "UDP" else "tcp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()} {host}:{self.port}"


def _url_listener(url: str) -> tuple[str, int] | None:
    """The (IP, port) an ``http(s)://`` URL names, or None when the host is a name."""
    parts = urllib.parse.urlsplit(url)
    try:
        host = str(ipaddress.ip_address(parts.hostname or ""))
    except ValueError:
        return None
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def listeners(settings: Settings) -> tuple[Listener, ...]:
    """Every listen address of the roles ``hybridvoice up`` runs on one host, in a fixed
    order (the edge's public side first: earlier listeners keep their port when an import
    separates clashing ones). Listeners switched off (``false``) are left out."""
    edge, ms, online = settings.edge_server, settings.mediation_server, settings.online
    found = [
        Listener("EdgeServer.ExternalSIPPort", edge.external_protocol,
                 edge.external_sip_ips[0], edge.external_sip_port),
        Listener("EdgeServer.InternalPort", edge.internal_protocol,
                 edge.internal_server_ips[0], edge.internal_port),
        Listener("MediationServer.InternalPort", ms.internal_protocol, ms.ip, ms.internal_port),
    ]  # fmt: skip
    for key, kind, port in (("TCPPort", "TCP", ms.tcp_port), ("TLSPort", "TLS", ms.tls_port),
                            ("UDPPort", "UDP", ms.udp_port)):  # fmt: skip
        if port is not None:
            found.append(Listener(f"MediationServer.{key}", kind, ms.ip, port))
    # the online service listens for clients on UDP and on TCP (TLS when asked for)
    stream = "TLS" if online.sip_protocol == "TLS" else "TCP"
    for kind in ("UDP", stream):
        found.append(Listener("Online.SIPPort", kind, online.sip_addresses[0], online.sip_port))
    api = _url_listener(online.service_url)
    if api is not None:
        found.append(Listener("Online.ServiceURL", "HTTP", *api))
    found.append(Listener("Management.Port", "HTTP", settings.management.ip,
                          settings.management.port))  # fmt: skip
    host, port = ms.bypass_bind
    found.append(Listener("MediationServer.BypassServicePort", "HTTP", host, port))
    found += _relay_listeners(settings)
    return tuple(found)


def _relay_listeners(settings: Settings) -> list[Listener]:
    """The edge's media relay (``[MediaRelay]``, when it runs): TURN on UDP and TCP, MRAS."""
    edge, mr = settings.edge_server, settings.media_relay
    on, host, _, mras_host = relay_addresses(mr, edge)
    if not on:
        return []
    found = [Listener("MediaRelay.UDPPort", "UDP", host, mr.udp_port)]
    if mr.tcp_port is not None:
        found.append(Listener("MediaRelay.TCPPort", "TCP", host, mr.tcp_port))
    found.append(Listener("MediaRelay.MRASPort", "HTTP", mras_host, mr.mras_port))
    return found


def _same_address(a: Listener, b: Listener) -> bool:
    """Whether ``a`` and ``b`` would bind the same socket: same port space and port (0 picks
    a free one, never a clash), same IP or a wildcard of the same family."""
    if a.socket_kind != b.socket_kind or a.port != b.port or a.port == 0:
        return False
    ip_a, ip_b = ipaddress.ip_address(a.host), ipaddress.ip_address(b.host)
    if ip_a == ip_b:
        return True
    return ip_a.version == ip_b.version and (ip_a.is_unspecified or ip_b.is_unspecified)


def listener_clashes(found: tuple[Listener, ...]) -> list[tuple[Listener, Listener]]:
    """Pairs (earlier, later) of listeners on the same address; they cannot both start."""
    return [
        (first, later)
        for i, later in enumerate(found)
        for first in found[:i]
        if _same_address(first, later) and first.key != later.key
    ]
