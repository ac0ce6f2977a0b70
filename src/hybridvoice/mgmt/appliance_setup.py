"""What ``hybridvoice up`` (:class:`hybridvoice.app.Lab`) and ``hybridvoice appliance serve``
(:mod:`.appliance_serve`) both need to build an appliance: whether it needs the site CA, the
:class:`~.appliance.ApplianceOptions` from the site's TLS contexts, and the table of where it
listens. Assembly helpers: they build options and read a started appliance, nothing more.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from hybridvoice.cms.settings import Settings
from hybridvoice.net.pipe import LocalExchange

from .appliance import Appliance, ApplianceOptions
from .online_tls import uses_https
from .site_tls import SiteTls, runs_mras, speaks_tls

__all__ = ["address", "appliance_options", "appliance_rows", "needs_site_tls", "site_tls_for"]


def needs_site_tls(settings: Settings, server_ssl: ssl.SSLContext | None = None) -> bool:
    """Whether the site CA issues certificates at start: the online API over https, MRAS
    (always mutual TLS), or a hop between the roles speaking TLS with no contexts given."""
    https = uses_https(settings) or runs_mras(settings)
    return https or (server_ssl is None and speaks_tls(settings))


def site_tls_for(settings: Settings, state_dir: Path | None) -> SiteTls | None:
    """The site CA and the roles' certificates in ``<state_dir>/pki`` when the settings need
    them (:func:`needs_site_tls`), else None."""
    if not needs_site_tls(settings):
        return None
    return SiteTls.ensure(settings, None if state_dir is None else state_dir / "pki")


def appliance_options(
    tls: SiteTls | None,
    *,
    server_ssl: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
    exchange: LocalExchange | None = None,
    pipes: bool = True,
    online_token: str | None = None,
) -> ApplianceOptions:
    """The appliance's options: the contexts given, else the site's ``appliance`` credential;
    SIP between its own roles through in-process pipes unless ``pipes`` is False
    (``exchange``: shared with the online service of the same process)."""
    site = None if tls is None else tls.contexts["appliance"]
    if server_ssl is None and site is not None:
        server_ssl, client_ssl = site.server, site.client
    return ApplianceOptions(
        server_ssl=server_ssl,
        client_ssl=client_ssl,
        site_tls=site,
        pki_dir=None if tls is None else tls.store.directory,
        pipes=pipes,
        exchange=exchange,
        online_token=online_token,
    )


def address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def appliance_rows(appliance: Appliance) -> list[tuple[str, str]]:
    """(piece, address) rows: where a started appliance listens."""
    rows: list[tuple[str, str]] = []
    for item in appliance.status()["listeners"]:
        rows.append((item["role"], f"{item['transport'].lower()}:"
                     f"{address(item['host'], item['port'])}"))  # fmt: skip
    if appliance.api is not None:
        rows.append(("appliance API", appliance.api.url))
    mediation = appliance.mediation
    if mediation is not None and mediation.bypass_server is not None:
        rows.append(("media bypass service", mediation.bypass_server.url))
    return rows
