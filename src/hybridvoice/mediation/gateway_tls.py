"""The TLS policy of each gateway at run time (sans-IO): who may call in over TLS, and the
contexts toward gateways that bring their own chain (RFC 5630 §3, RFC 5922 §7).

Inbound (:func:`inbound_refusal`), after the source address named the gateway
(``TrunkTable.gateway_for_source``): an MTLS gateway's requests must come over TLS, and the
connection (or in-process pipe) must carry a certificate from a trusted root (the
handshake checked the chain) whose identity holds the gateway's FQDN, else its IP (RFC 5922
§7.2: subjectAltName, exact, no wildcards). A refusal is answered 403 and counted in
``hybridvoice_tls_refused_total{peer=<gateway>, reason}``.

Outbound: :func:`peer_trust` lists the gateways with a ``TrustedRootsFile``; the assembly gives
them to :class:`~hybridvoice.net.tls_peers.PeerContexts`, whose contexts the gateway-side
transports use for those names. The name checked is the gateway's ``FQDN`` (else ``IP``),
which the destination carries as the TLS server name.
"""

from __future__ import annotations

from collections.abc import Iterable

from hybridvoice.cms.settings import Gateway
from hybridvoice.cms.settings_tls import read_roots
from hybridvoice.net.identity import PeerIdentity, RefusalReason, count_refusal
from hybridvoice.net.tls_peers import PeerTrust
from hybridvoice.net.transport import Source

from .trunks import GatewayState

__all__ = ["inbound_refusal", "peer_trust", "refuse_inbound"]


def inbound_refusal(
    gateway: Gateway, kind: str, identity: PeerIdentity | None
) -> tuple[RefusalReason, str] | None:
    """Why a request from ``gateway`` on a ``kind`` connection with the peer ``identity`` is
    refused under the gateway's TLS policy, or None."""
    if gateway.protocol != "TLS" or not gateway.mutual_tls:
        return None
    name = gateway.tls_name
    if kind != "TLS":
        return "no-certificate", f"{gateway.name} is an MTLS gateway: it called over {kind}"
    if identity is None:
        return "no-certificate", f"{gateway.name} (MTLS) presented no certificate"
    if not identity.matches(name):
        return "name-mismatch", (
            f"{gateway.name} (MTLS): the certificate names {identity}, not {name}"
        )
    return None


def refuse_inbound(gateway: GatewayState, source: Source | None) -> str | None:
    """:func:`inbound_refusal` for a request from ``source``, counted on its transport under
    the gateway's name; the Reason text of the 403, or None to go on."""
    config = gateway.config
    if source is None or config.protocol != "TLS" or not config.mutual_tls:
        return None  # the common case, decided before looking at the connection
    identity = getattr(source.connection, "peer_identity", None)
    refusal = inbound_refusal(config, source.transport.kind, identity)
    if refusal is None:
        return None
    reason, text = refusal
    count_refusal(source.transport.counters.tls_refused, gateway.name, reason, text)
    return text


def peer_trust(gateways: Iterable[Gateway]) -> list[PeerTrust]:
    """The TLS gateways with roots of their own, by the name their certificate is checked for
    (each file is read now: at start and at every ``gateway add|set``)."""
    return [
        PeerTrust(gw.tls_name, read_roots(gw.trusted_roots_file))
        for gw in gateways
        if gw.protocol == "TLS" and gw.trusted_roots_file is not None
    ]
