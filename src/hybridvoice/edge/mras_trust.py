"""Who may ask the edge's MRAS for TURN credentials: the online service, by its certificate.

The MRAS listener is an MTLS server (RFC 8446 §4.3.2 CertificateRequest): the handshake
requires a client certificate that chains to the site's trusted roots, the roots the SIP
listeners trust (``docs/pki.md``). The certificate must then name the online service as the
edge knows it on SIP (RFC 5922 §7.2: an exact DNS name, no wildcards): ``[Common]
OnlineSipFederationFqdn``, the name the edge checks when it connects to the online service on
5061 and the DNS name of the site CA's ``online`` credential (without it, ``online.<default
SIP domain>``, the name ``hybridvoice up`` then gives that credential). Never an IP address:
in a lab every role shares 127.0.0.1, and an appliance's own site certificate, which holds
its addresses, must not pass for the online service's. A verified certificate that names
someone else is refused with 403: the site CA vouches for the holder's names, not for its
right to ask MRAS.

Sans-IO: the verified certificate comes from the ASGI TLS extension the HTTPS server adapter
sets (:mod:`hybridvoice.net.http_tls`); no header can set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybridvoice.cms.settings import Settings
from hybridvoice.net.identity import PeerIdentity

__all__ = ["OnlineNames", "client_identity"]


@dataclass(frozen=True, slots=True)
class OnlineNames:
    """The DNS name the online service's client certificate must hold."""

    fqdn: str

    @classmethod
    def of(cls, settings: Settings) -> OnlineNames:
        c = settings.common
        return cls(c.online_sip_federation_fqdn or f"online.{c.default_domain}")

    def admits(self, identity: PeerIdentity | None) -> bool:
        """Whether a verified certificate of ``identity`` speaks for the online service."""
        return identity is not None and self.fqdn.lower() in identity.names

    def __str__(self) -> str:
        return self.fqdn


def client_identity(scope: Mapping[str, Any]) -> PeerIdentity | None:
    """The identity of the verified client certificate of an ASGI request (None: none)."""
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return PeerIdentity.from_pem(str(chain[0]).encode("ascii"))
    except (ValueError, IndexError):  # OpenSSL took it, cryptography cannot read it
        return None
