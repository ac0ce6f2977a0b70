"""The FQDNs the edge may put in Via, Record-Route and Contact on its TLS sides (RFC 5922 §7,
RFC 5630 §3: a TLS peer checks the names in our certificate, so it must be sent a name, never a
bare IP; a frequent interop failure with Direct Routing).

Which names a side may carry comes from the settings alone, so that its peers can map them
to the edge's addresses without asking the edge (:func:`edge_name_map`):

- external side: the access edge pool FQDN, ``[EdgeServer] ExternalSIPPoolName`` (else
  ``edge.<default domain>``, the name the appliance registers with the online service);
- internal side: ``[EdgeServer] InternalServerName`` (qualified with ``[Common]
  VirtualMachineDomain`` when it has no dot), then ``InternalPoolName``.

The side uses the first of them its certificate holds (:func:`pick`); when it holds none, the
side keeps advertising its IP address.

The appliances of a site share the pool FQDN, so the external Record-Route carries the
appliance's name as its user part (:func:`record_route_user`,
``<sip:appliance1@ap.contoso.com:5061;transport=tls;lr>``): the online service sends an
in-dialog request routed by it to that appliance, not to any of the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote

from .settings import Settings

__all__ = ["appliance_name", "edge_name_map", "external_names", "internal_names", "pick",
           "record_route_user"]  # fmt: skip


def external_names(settings: Settings) -> tuple[str, ...]:
    """The name the external side may carry: the access edge pool FQDN."""
    c, edge = settings.common, settings.edge_server
    return ((edge.external_sip_pool_name or f"edge.{c.default_domain}").lower(),)


def internal_names(settings: Settings) -> tuple[str, ...]:
    """The names the internal side may carry, preferred first."""
    c, edge = settings.common, settings.edge_server
    names: list[str] = []
    server = edge.internal_server_name
    if server and "." not in server and c.virtual_machine_domain:
        server = f"{server}.{c.virtual_machine_domain}"
    for name in (server, edge.internal_pool_name):
        if name and "." in name:
            names.append(name.lower())
    return tuple(dict.fromkeys(names))


def pick(candidates: Iterable[str], holds: Callable[[str], bool] | None) -> str | None:
    """The first of ``candidates`` the certificate holds (``holds(name)``); None without a
    certificate that names one."""
    if holds is None:
        return None
    return next((name for name in candidates if holds(name)), None)


def edge_name_map(settings: Settings) -> dict[str, str]:
    """Name -> address: where a request sent to one of the internal side's names goes (the
    mediation role's in-dialog requests, routed by the edge's Record-Route)."""
    address = settings.edge_server.internal_server_ips[0]
    return dict.fromkeys(internal_names(settings), address)


def appliance_name(settings: Settings) -> str:
    """The name the appliance registers with the online service: ``[Online] ApplianceName``,
    else ``[Common] ServerName``, else ``<site>-1``."""
    c = settings.common
    return settings.online.appliance_name or c.server_name or f"{c.site_name}-1"


def record_route_user(settings: Settings) -> str:
    """The appliance's name as the user part of a SIP URI (RFC 3261 §25.1: escaped)."""
    return quote(appliance_name(settings), safe="-_.!~*'()")
