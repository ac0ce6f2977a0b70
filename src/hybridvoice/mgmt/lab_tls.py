"""TLS for the built-in lab gateway of ``hybridvoice up`` (``app.LabGateway``).

A gateway with ``Protocol = "TLS"`` or ``"MTLS"`` is reached on a TLS listener at its
configured ``Port`` (RFC 5630 §3), which needs a certificate naming it (RFC 5922 §7.2: its
``FQDN``, else its ``IP``). The site CA that ``up`` makes when any hop speaks TLS
(:func:`~hybridvoice.mgmt.site_tls.speaks_tls` counts TLS gateways) issues one, as
``hybridvoice ca issue-gateway`` would for a real gateway; the mediation role trusts it
through the site root. Toward TLS gateways the mediation role names itself by its FQDN
(Contact, Via: RFC 5922 §7); a real gateway resolves it in DNS, the lab gateway maps it to
``[MediationServer] IP`` (:func:`lab_gateway_resolver`), so that its in-dialog requests (a
BYE from the gateway's side) reach the role.
"""

from __future__ import annotations

import datetime
import ssl

from hybridvoice.cms.settings import Gateway, Settings
from hybridvoice.net.names import NameResolver
from hybridvoice.net.tls import MtlsContexts, TlsMaterial

from .site_tls import SiteTls

__all__ = ["LAB_GATEWAY_CREDENTIAL", "lab_gateway_context", "lab_gateway_resolver"]

#: the name of the lab gateway's credential in the site PKI
LAB_GATEWAY_CREDENTIAL = "lab-gateway"


def lab_gateway_context(
    tls: SiteTls | None, gateway: Gateway
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The server and client context of the lab gateway standing in for ``gateway`` (a TLS
    one): a certificate from the site CA, the site root trusted (its in-dialog requests open
    connections to the mediation role); ``ValueError`` naming the key when there is no site CA
    (the lab was given contexts of its own)."""
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
    contexts = MtlsContexts(lambda: material, require_client=False)
    return contexts.server, contexts.client


def lab_gateway_resolver(settings: Settings, tls_host: str | None) -> NameResolver | None:
    """The lab gateway's resolver: the FQDN the mediation role's TLS side names itself by
    (``MediationSides.tls_host``) is ``[MediationServer] IP``; None when it names itself by
    its address."""
    if tls_host is None:
        return None
    return NameResolver({tls_host: settings.mediation_server.ip})
