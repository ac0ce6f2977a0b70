"""TLS for the built-in lab gateway of ``hybridvoice up`` (``app.LabGateway``).

A gateway with ``Protocol = "TLS"`` or ``"MTLS"`` is reached on a TLS listener at its
configured ``Port`` (RFC 5630 §3), which needs a certificate naming it (RFC 5922 §7.2: its
``FQDN``, else its ``IP``). The site CA that ``up`` makes when any hop speaks TLS
(:func:`~hybridvoice.mgmt.site_tls.speaks_tls` counts TLS gateways) issues one, as
``hybridvoice ca issue-gateway`` would for a real gateway; the mediation role trusts it
through the site root.
"""

from __future__ import annotations

import datetime
import ssl

from hybridvoice.cms.settings import Gateway
from hybridvoice.net.tls import MtlsContexts, TlsMaterial

from .site_tls import SiteTls

__all__ = ["LAB_GATEWAY_CREDENTIAL", "lab_gateway_context"]

#: the name of the lab gateway's credential in the site PKI
LAB_GATEWAY_CREDENTIAL = "lab-gateway"


def lab_gateway_context(tls: SiteTls | None, gateway: Gateway) -> ssl.SSLContext:
    """The server context of the lab gateway standing in for ``gateway`` (a TLS one), with a
    certificate from the site CA; ``ValueError`` naming the key when there is no site CA (the
    lab was given contexts of its own)."""
    if tls is None:
        raise ValueError(
            f"{gateway.name}.Protocol: the built-in lab gateway speaks TLS only with a "
            "certificate from the site CA, and this lab was given TLS contexts of its own: "
            f'set Protocol = "TCP" or "UDP" for {gateway.name}, or point it at a real gateway'
        )
    store = tls.store
    now = datetime.datetime.now(datetime.UTC)
    dns = [gateway.fqdn] if gateway.fqdn else []
    ips = [gateway.ip] if gateway.ip else []
    store.ensure_server(store.load_ca(), LAB_GATEWAY_CREDENTIAL, now, dns_names=dns, ips=ips)
    path = store.credential_path(LAB_GATEWAY_CREDENTIAL)
    material = TlsMaterial(path, store.trust_store().bundle_pem(), 1)
    return MtlsContexts(lambda: material, require_client=False).server
