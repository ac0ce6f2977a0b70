"""TLS between appliances and the online service's API, from the site PKI (assembly helpers).

When ``[Online] ServiceURL`` is ``https://``:

- the appliance gets a client certificate from its site CA at start
  (:func:`hybridvoice.pki.identity.ensure_appliance`: made on first start, renewed 30 days
  before it expires; ``<pki>/certs/online-client.pem``) and connects with it, verifying the
  online service's certificate against the site root and the roots imported into the site PKI
  (:func:`appliance_client_context`);
- the online service serves its API over HTTPS with a certificate for the URL's host, asks
  every client for a certificate (optional: admins come with bearer tokens) and trusts the
  site roots it is given for appliances (:func:`online_api_tls`,
  :mod:`hybridvoice.online.api_mtls`).

Either way the API binds the management interface only (:func:`api_bind`): the URL's IP
address, or ``[Management] IP`` when the URL names a host; never the wildcard address.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import urllib.parse

from hybridvoice.cms.settings import Settings
from hybridvoice.net.tls import MtlsContexts, TlsMaterial, client_context
from hybridvoice.online.api_mtls import ApplianceAuth
from hybridvoice.pki import PkiStore
from hybridvoice.pki.identity import CLIENT_CREDENTIAL, ensure_appliance

__all__ = [
    "API_CREDENTIAL",
    "api_bind",
    "appliance_client_context",
    "online_api_tls",
    "uses_https",
]

#: the name the online API's server certificate is stored under in the PKI store
API_CREDENTIAL = "online-api"


def uses_https(settings: Settings) -> bool:
    """Whether ``[Online] ServiceURL`` is an https URL."""
    return urllib.parse.urlsplit(settings.online.service_url).scheme == "https"


def api_bind(settings: Settings) -> tuple[str, int]:
    """Where the online API listens: the ServiceURL's IP (a host name: ``[Management] IP``)
    and port (default 443 for https, 80 for http)."""
    parts = urllib.parse.urlsplit(settings.online.service_url)
    host = parts.hostname or ""
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = settings.management.ip
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def appliance_client_context(
    store: PkiStore, settings: Settings, appliance: str, now: datetime.datetime
) -> ssl.SSLContext:
    """The appliance's context toward the online API: its client certificate (made or renewed
    first), the site root and the imported roots as trust, the server's name checked."""
    ca = store.ensure_ca(settings.common.site_name, now)
    credential = ensure_appliance(store, ca, appliance, now)
    material = TlsMaterial(
        store.credential_path(CLIENT_CREDENTIAL),
        store.trust_store().bundle_pem(),
        credential.generation,
    )
    return client_context(material)


def online_api_tls(
    store: PkiStore, settings: Settings, now: datetime.datetime
) -> tuple[MtlsContexts, ApplianceAuth]:
    """The online API's server contexts (a certificate for the ServiceURL's host from the
    site CA; a client certificate asked for, verified when sent against the site root and
    the roots added for other sites) and the appliance check that trusts this site's root for
    this site. The server context (``.server``) follows renewals of the certificate
    (:meth:`MtlsContexts.reload`, polled by :func:`hybridvoice.net.tls.watch`) and every
    change of the added roots (at once): new handshakes use the new material, connections
    already up keep theirs."""
    ca = store.ensure_ca(settings.common.site_name, now)
    host = urllib.parse.urlsplit(settings.online.service_url).hostname or api_bind(settings)[0]
    try:
        ips, dns = [str(ipaddress.ip_address(host))], []
    except ValueError:
        ips, dns = [], [host]
    store.ensure_server(ca, API_CREDENTIAL, now, dns_names=dns, ips=ips)
    auth = ApplianceAuth({settings.common.site_name: ca.certificate})

    def load() -> TlsMaterial:
        return TlsMaterial(store.credential_path(API_CREDENTIAL),
                           store.root_pem() + auth.roots_pem(),
                           store.load_credential(API_CREDENTIAL).generation)  # fmt: skip

    contexts = MtlsContexts(load, require_client=False)
    auth.on_change(contexts.reload)
    return contexts, auth
