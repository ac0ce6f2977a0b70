"""The names and addresses the site CA's certificates carry, and when ``up`` needs them (pure:
read from the settings alone, so that the planning checklist and the TLS assembly agree).

RFC 5922 §7.1 (a SIP peer matches the DNS names and IP addresses of the subject alternative
name), RFC 5280 §4.2.1.6 (the extension itself). :mod:`hybridvoice.mgmt.site_tls` issues what
:func:`tls_names` lists; :mod:`hybridvoice.planning.checklist` lists it for the admin.
"""

from __future__ import annotations

from hybridvoice.cms.settings import Settings
from hybridvoice.cms.settings_edge import relay_addresses

from .mras_trust import OnlineNames

__all__ = ["runs_mras", "speaks_tls", "tls_names"]


def speaks_tls(settings: Settings) -> bool:
    """Whether a hop between the roles, or toward an enabled gateway, speaks TLS: the site CA
    then issues their certificates (a TLS gateway needs the mediation role's TLSPort listening
    with one)."""
    s, edge = settings, settings.edge_server
    return "TLS" in (s.online.sip_protocol, edge.external_protocol, edge.internal_protocol,
                     s.mediation_server.internal_protocol,
                     *(g.protocol for g in s.gateways if g.enabled))  # fmt: skip


def runs_mras(settings: Settings) -> bool:
    """Whether the edge runs its media relay and MRAS: the online service asks MRAS over
    mutual TLS, so the site CA issues the certificates of both ends."""
    return relay_addresses(settings.media_relay, settings.edge_server)[0]


def tls_names(settings: Settings) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Credential name -> (DNS names, IPs): ``online`` (the federation FQDN the edge checks,
    its SIP addresses), ``appliance`` (edge and mediation FQDNs and addresses: one process,
    one certificate on every listener of both roles)."""
    c, edge, ms = settings.common, settings.edge_server, settings.mediation_server
    vm = f".{c.virtual_machine_domain}" if c.virtual_machine_domain else ""
    hosts = (edge.internal_server_name, ms.server_name)

    def unique(*names: str | None) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.lower() for n in names if n))

    dns = unique(edge.external_sip_pool_name or f"edge.{c.default_domain}", edge.internal_pool_name,
                 ms.pool_name, *(h if "." in h else h + vm for h in hosts if h and vm))  # fmt: skip
    relay_on, _, _, mras_host = relay_addresses(settings.media_relay, edge)
    mras = (mras_host,) if relay_on else ()  # MRAS serves the online service with it
    ips = unique(*edge.internal_server_ips, *edge.external_sip_ips, ms.ip, *mras)
    # the name the edge's MRAS checks too (the federation FQDN, else online.<domain>)
    online = (unique(OnlineNames.of(settings).fqdn), unique(*settings.online.sip_addresses))
    return {"online": online, "appliance": (dns, ips)}
