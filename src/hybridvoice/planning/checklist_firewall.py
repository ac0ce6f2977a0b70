"""The firewall rules of a deployment: the original's internal and external port tables, with
this deployment's addresses, ports and ranges (pure).

The original (Cloud Connector Edition, ``CCE-REFERENCE.md`` "Ports") opened, on the external
firewall, SIP over MTLS 5061 between the online service and the access edge and the media
relay (UDP 3478, TCP 443, TCP/UDP 50000-59999); on the internal firewall, SIP between the
mediation server and its gateways (to the gateway's port, TCP 5068 / TLS 5067 back), and media
UDP 49152-57500 between the mediation server, its gateways and the internal clients. Here
every port comes from the settings (:mod:`hybridvoice.cms.listeners` names where each role
listens; RFC 3261 §18 SIP transports, RFC 3550 §11 RTP/RTCP pairs, RFC 8656 TURN), every
address from the appliance it belongs to.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from hybridvoice.cms.settings import Gateway, Settings
from hybridvoice.cms.settings_edge import relay_addresses

from .checklist_source import ApplianceInput, Deployment

__all__ = ["Direction", "FirewallRule", "Side", "firewall_rules"]

Side = Literal["external", "internal"]
#: seen from the appliance: toward it, from it, both ways, or between its own roles
Direction = Literal["inbound", "outbound", "both", "between roles"]
_PORT_SPACE: Final = {"TLS": "TCP", "TCP": "TCP", "UDP": "UDP", "HTTP": "TCP"}


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """One rule: who talks to whom, on which protocol and destination ports, and why."""

    side: Side
    source: str
    destination: str
    protocol: str  # TCP, UDP or "UDP/TCP"
    ports: str  # destination ports: "5061", "49152-57500", "any"
    direction: Direction
    why: str
    key: str  # the setting that decides the ports


def _ips(addresses: Iterable[str]) -> str:
    return ", ".join(addresses)


def _url(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _gateway_listener(s: Settings, gw: Gateway) -> tuple[str, int | None]:
    """The mediation role's listener a gateway calls in on: its own transport's."""
    ms = s.mediation_server
    by_transport = {
        "TCP": ("MediationServer.TCPPort", ms.tcp_port),
        "TLS": ("MediationServer.TLSPort", ms.tls_port),
        "UDP": ("MediationServer.UDPPort", ms.udp_port),
    }
    return by_transport[gw.protocol]


def _external(a: ApplianceInput) -> list[FirewallRule]:
    s, n = a.settings, a.name
    edge, online = s.edge_server, s.online
    ext = f"{n} edge external {_ips(edge.external_sip_ips)}"
    cloud = f"online service SIP {_ips(online.sip_addresses)}"
    fed = s.common.online_sip_federation_fqdn or "the online service"
    api_host, api_port = _url(online.service_url)
    scheme = urllib.parse.urlsplit(online.service_url).scheme.upper()
    rules = [
        FirewallRule(
            "external",
            cloud,
            ext,
            _PORT_SPACE[edge.external_protocol],
            str(edge.external_sip_port),
            "inbound",
            f"SIP over {edge.external_protocol}: {fed} sends calls to the access edge "
            "(the original: MTLS 5061)",
            "EdgeServer.ExternalSIPPort",
        ),
        FirewallRule(
            "external",
            ext,
            cloud,
            _PORT_SPACE[online.sip_protocol],
            str(online.sip_port),
            "outbound",
            f"SIP over {online.sip_protocol}: the access edge sends calls to {fed}",
            "Online.SIPPort",
        ),
        FirewallRule(
            "external",
            f"{n} management {s.management.ip}",
            f"online service API {api_host}",
            "TCP",
            str(api_port),
            "outbound",
            f"{scheme}: registration, heartbeats and the replication feed",
            "Online.ServiceURL",
        ),
    ]
    on, host, public, mras = relay_addresses(s.media_relay, edge)
    if not on:
        return rules
    mr, relay = (
        s.media_relay,
        f"{n} media relay {host}" + (f" (public {public})" if public != host else ""),
    )
    rules.append(
        FirewallRule(
            "external",
            "any (external clients)",
            relay,
            "UDP",
            str(mr.udp_port),
            "inbound",
            "TURN (RFC 8656): external clients' media relay (the original: UDP 3478)",
            "MediaRelay.UDPPort",
        )
    )
    if mr.tcp_port is not None:
        rules.append(
            FirewallRule(
                "external",
                "any (external clients)",
                relay,
                "TCP",
                str(mr.tcp_port),
                "inbound",
                "TURN over TCP (the original: TCP 443)",
                "MediaRelay.TCPPort",
            )
        )
    rules += [
        FirewallRule(
            "external",
            "any (external clients)",
            relay,
            "UDP/TCP",
            edge.external_mr_port_range,
            "both",
            "relayed media, 2 ports per call (the original: TCP/UDP 50000-59999)",
            "EdgeServer.ExternalMRPortRange",
        ),
        FirewallRule(
            "external",
            cloud,
            f"{n} MRAS {mras}",
            "TCP",
            str(mr.mras_port),
            "inbound",
            "MRAS: the online service asks for TURN credentials (HTTPS, mutual TLS)",
            "MediaRelay.MRASPort",
        ),
    ]
    return rules


def _internal(a: ApplianceInput) -> list[FirewallRule]:
    s, n = a.settings, a.name
    edge, ms = s.edge_server, s.mediation_server
    intl = f"{n} edge internal {_ips(edge.internal_server_ips)}"
    med = f"{n} mediation {ms.ip}"
    media = f"{ms.media_port_start}-{ms.media_port_end}"
    clients = "internal clients" + (
        f" {_ips(str(x) for x in ms.internal_subnets)}" if ms.internal_subnets else ""
    )
    rules = [
        FirewallRule(
            "internal",
            intl,
            med,
            _PORT_SPACE[ms.internal_protocol],
            str(ms.internal_port),
            "between roles",
            f"SIP over {ms.internal_protocol}: "
            "the edge hands calls to the mediation role (the original: MTLS 5061)",
            "MediationServer.InternalPort",
        ),
        FirewallRule(
            "internal",
            med,
            intl,
            _PORT_SPACE[edge.internal_protocol],
            str(edge.internal_port),
            "between roles",
            f"SIP over {edge.internal_protocol}: the mediation role sends calls to its edge",
            "EdgeServer.InternalPort",
        ),
        FirewallRule(
            "internal",
            clients,
            med,
            "UDP",
            media,
            "both",
            "RTP/RTCP of internal clients without bypass, 4 ports per call (the "
            "original: UDP 49152-57500, clients 50000-50019)",
            "MediationServer.MediaPortStart",
        ),
        FirewallRule(
            "internal",
            clients,
            f"{n} bypass service {ms.bypass_bind[0]}",
            "TCP",
            str(ms.bypass_bind[1]),
            "inbound",
            "HTTP: the media bypass web service; a client that reaches it counts as internal",
            "MediationServer.BypassServicePort",
        ),
        FirewallRule(
            "internal",
            "administrators",
            f"{n} management {s.management.ip}",
            "TCP",
            str(s.management.port),
            "inbound",
            "HTTP: the appliance's management API",
            "Management.Port",
        ),
    ]
    on, host, _, _ = relay_addresses(s.media_relay, edge)
    if on:
        rules.append(
            FirewallRule(
                "internal",
                f"{n} media relay {host}",
                med,
                "UDP",
                media,
                "between roles",
                "external clients' media, relayed by the edge, to the mediation role",
                "MediationServer.MediaPortStart",
            )
        )
    for gw in (g for g in s.gateways if g.enabled):
        peer = f"gateway {gw.name} {gw.ip or gw.fqdn}"
        key, port = _gateway_listener(s, gw)
        rules += [
            FirewallRule(
                "internal",
                med,
                peer,
                _PORT_SPACE[gw.protocol],
                str(gw.port),
                "outbound",
                f"SIP over {gw.protocol} to the gateway (the original: TCP "
                "5060, or the gateway's port)",
                f"{gw.name}.Port",
            ),
            FirewallRule(
                "internal",
                peer,
                med,
                _PORT_SPACE[gw.protocol],
                str(port),
                "inbound",
                f"SIP over {gw.protocol} from the gateway (the original: TCP 5068, TLS 5067)",
                key,
            ),
            FirewallRule(
                "internal",
                peer,
                med,
                "UDP",
                media,
                "both",
                "RTP/RTCP between the "
                "gateway and the mediation role, 4 ports per call (the original: UDP "
                "49152-57500)",
                "MediationServer.MediaPortStart",
            ),
        ]
        if gw.media_bypass:
            rules.append(
                FirewallRule(
                    "internal",
                    clients,
                    peer,
                    "UDP",
                    "any",
                    "both",
                    "media bypass: internal clients' media straight to the "
                    "gateway, not through the appliance",
                    f"{gw.name}.MediaBypass",
                )
            )
    return rules


def firewall_rules(deployment: Deployment) -> tuple[FirewallRule, ...]:
    """Every rule of every appliance, external side first, each rule once."""
    external = [r for a in deployment.appliances for r in _external(a)]
    internal = [r for a in deployment.appliances for r in _internal(a)]
    return tuple(dict.fromkeys([*external, *internal]))
