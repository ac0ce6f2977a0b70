"""Where the edge's media relay is built: TURN on the external side and the MRAS service.

The assembly of the original Edge Server's media relay (``../shared/design/CCE-REFERENCE.md``,
Edge): TURN (RFC 8656) on ``[MediaRelay] UDPPort`` (3478) and ``TCPPort`` (443) of
``[EdgeServer] ExternalMRIPs`` (else the first ``ExternalSIPIPs``), relay ports from
``ExternalMRPortRange``, relayed addresses advertised as ``ExternalMRPublicIPs`` (else the
listen address). Credentials are MRAS's (:mod:`hybridvoice.media.mras`) from the site's
secret (``SecretFile``; none given: ``mras.secret`` in ``[Management] StateDirectory``, made
on first start, or a random one in memory for a lab). The relay refuses peers on loopback,
link-local and the appliance's own addresses unless ``AllowInternalPeers`` (RFC 8656 §21.3),
holds ``UserQuota`` allocations per user and ``RequestsPerSecond`` per source.

The MRAS service (:mod:`.mras_api`) listens on ``MRASIP:MRASPort`` over mutual TLS with the
appliance's site certificate, for the online service's certificate only
(:mod:`.mras_trust`); a refused handshake is logged and counted by peer and reason
(:attr:`EdgeMedia.tls_refused`).
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridvoice.cms.settings import Settings
from hybridvoice.cms.settings_edge import relay_addresses
from hybridvoice.media import LatchPolicy
from hybridvoice.media.mras import MrasIssuer, MrasVerifier
from hybridvoice.media.turn_state import TurnConfig
from hybridvoice.net.http import AsgiServer, serve_asgi
from hybridvoice.net.identity import MAX_REFUSED_PEERS
from hybridvoice.net.relay import RelayEngine
from hybridvoice.net.transport import Transport
from hybridvoice.net.turn import TurnRelay

from .anchor_io import EdgeAnchoring
from .mras_api import BODY_HINT, MAX_BODY, REQUEST_TIMEOUT, create_mras_api
from .mras_trust import OnlineNames

if TYPE_CHECKING:
    import ssl

__all__ = [
    "EdgeMedia",
    "MediaRelayError",
    "count_mras_refusal",
    "edge_relay_addresses",
    "edge_relay_ports",
    "open_media_relay",
    "site_secret",
]

SECRET_FILE = "mras.secret"


class MediaRelayError(ValueError):
    """The media relay cannot start: the setting and the reason."""


@dataclass(slots=True)
class EdgeMedia:
    """The running relay, its MRAS service and what MRAS hands out."""

    relay: TurnRelay
    mras: AsgiServer
    issuer: MrasIssuer
    uris: tuple[str, ...]
    #: MRAS answers: issued, refused_untrusted, refused_invalid
    mras_counters: Counter[str] = field(default_factory=Counter)
    #: media anchoring for clients on the internet (:mod:`.anchor_io`)
    anchoring: EdgeAnchoring | None = None
    #: MRAS handshakes refused, by (peer address, reason)
    tls_refused: dict[tuple[str, str], int] = field(default_factory=dict)

    def listener_rows(self) -> list[dict[str, Any]]:
        """The relay's listeners as ``hybridvoice appliance status`` lists them."""
        rows = [("UDP", self.relay.address), ("TCP", self.relay.tcp_address),
                ("HTTPS", (self.mras.host, self.mras.port))]  # fmt: skip
        return [
            {"role": "edge/media-relay" if kind != "HTTPS" else "edge/mras", "transport": kind,
             "host": where[0], "port": where[1]}
            for kind, where in rows
            if where is not None
        ]  # fmt: skip

    @property
    def mras_url(self) -> str:
        return f"{self.mras.url}/mras/v1/credentials"

    async def close(self) -> None:
        self.relay.close()
        if self.anchoring is not None:
            await self.anchoring.close()
        await self.mras.stop()


def site_secret(settings: Settings) -> bytes:
    """The MRAS secret: ``[MediaRelay] SecretFile``, else the state directory's, else new."""
    named = settings.media_relay.secret_file
    if named is not None:
        try:
            secret = Path(named).read_bytes().strip()
        except OSError as exc:
            raise MediaRelayError(
                f"[MediaRelay] SecretFile: cannot read {named}: {exc.strerror}"
            ) from None
        if len(secret) < 16:
            raise MediaRelayError(
                f"[MediaRelay] SecretFile: {named} holds {len(secret)} bytes; the site's MRAS "
                "secret needs at least 16 (`head -c 32 /dev/urandom | base64 > FILE`)"
            )
        return secret
    state = settings.management.state_directory
    if state is None:
        return secrets.token_urlsafe(32).encode()
    path = Path(state) / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_bytes().strip()


def _own_addresses(settings: Settings) -> frozenset[str]:
    edge, ms, c = settings.edge_server, settings.mediation_server, settings.common
    found = {*edge.internal_server_ips, *edge.external_sip_ips, *edge.external_mr_ips,
             *edge.external_mr_public_ips, ms.ip, settings.management.ip}  # fmt: skip
    if c.ip is not None:
        found.add(c.ip)
    return frozenset(found)


def relay_config(settings: Settings) -> TurnConfig:
    """The TURN core's configuration from ``[MediaRelay]`` and ``[EdgeServer]``."""
    mr, edge = settings.media_relay, settings.edge_server
    _, host, public, _ = relay_addresses(mr, edge)
    lab = mr.allow_internal_peers
    return TurnConfig(
        realm=mr.realm or settings.common.default_domain,
        external_ip=public,
        own_addresses=_own_addresses(settings),
        allow_loopback_peers=lab,
        allow_link_local_peers=lab,
        allow_own_peers=lab,
        user_quota=mr.user_quota,
        requests_per_second=mr.requests_per_second,
        request_burst=mr.request_burst,
        # a client's TURN allocation may reach the edge's anchoring ports (an ICE relay
        # candidate toward the anchored address), no other port of the appliance
        media_peers=frozenset({host, public}),
        media_peer_ports=edge_relay_ports(settings),
    )


async def open_media_relay(
    settings: Settings,
    external: Collection[Transport] = (),
    *,
    mras_ssl: ssl.SSLContext | None = None,
) -> EdgeMedia | None:
    """The relay, MRAS and media anchoring (for calls through the ``external`` listeners),
    or None when ``[MediaRelay]`` leaves the relay off. ``mras_ssl``: MRAS's server context
    (the appliance's site certificate, a client certificate required)."""
    mr, edge = settings.media_relay, settings.edge_server
    on, host, public, mras_host = relay_addresses(mr, edge)
    if not on:
        return None
    if mras_ssl is None:
        raise MediaRelayError(
            "[MediaRelay]: MRAS serves the online service over mutual TLS and needs the "
            "appliance's site certificate: start the appliance with `hybridvoice up` (it makes "
            "the site CA), or give the edge role its site contexts (EdgeOptions.mras_ssl)"
        )
    secret = site_secret(settings)
    first, _, last = edge.external_mr_port_range.partition("-")
    relay = await TurnRelay.open(
        relay_config(settings), MrasVerifier(secret, wall=time.time),
        listen=(host, mr.udp_port), relay_host=host, ports=(int(first), int(last)),
        tcp=mr.tcp_port is not None, tcp_port=mr.tcp_port,
    )  # fmt: skip
    try:
        uris = [f"turn:{_uri_host(public)}:{relay.address[1]}?transport=udp"]
        tcp = relay.tcp_address
        if tcp is not None:
            uris.append(f"turn:{_uri_host(public)}:{tcp[1]}?transport=tcp")
        issuer = MrasIssuer(secret, ttl=mr.credential_lifetime_seconds)
        counters: Counter[str] = Counter()
        app = create_mras_api(issuer, tuple(uris), online=OnlineNames.of(settings),
                              wall=time.time, counters=counters)  # fmt: skip
        refused: dict[tuple[str, str], int] = {}
        mras = await serve_asgi(
            app, mras_host, mr.mras_port, max_body=MAX_BODY, ssl_context=mras_ssl,
            on_tls_refused=functools.partial(count_mras_refusal, refused),
            request_timeout=REQUEST_TIMEOUT, body_limit_hint=BODY_HINT,
        )  # fmt: skip
    except BaseException:
        relay.close()
        raise
    engine = RelayEngine(host, (int(first), int(last)), latch=LatchPolicy(same_ip=False))
    subnets = tuple(settings.mediation_server.internal_subnets)
    anchoring = EdgeAnchoring(engine, external, subnets, public)
    return EdgeMedia(relay, mras, issuer, tuple(uris), counters, anchoring, refused)


def count_mras_refusal(
    refused: dict[tuple[str, str], int], reason: str, peer: str, detail: str
) -> None:
    """Count a refused MRAS handshake under (peer address, reason); the HTTPS server logged
    it already. At most :data:`MAX_REFUSED_PEERS` addresses, more count as ``other``."""
    host = peer.rpartition(":")[0] or peer
    key = (host, reason)
    if key not in refused and len({p for p, _ in refused}) >= MAX_REFUSED_PEERS:
        key = ("other", reason)
    refused[key] = refused.get(key, 0) + 1


def edge_relay_addresses(settings: Settings) -> frozenset[str]:
    """The addresses the edge's anchored media is offered on (none: the relay is off)."""
    on, host, public, _ = relay_addresses(settings.media_relay, settings.edge_server)
    return frozenset({host, public}) if on else frozenset()


def edge_relay_ports(settings: Settings) -> tuple[int, int]:
    """``[EdgeServer] ExternalMRPortRange`` as (first, last)."""
    first, _, last = settings.edge_server.external_mr_port_range.partition("-")
    return int(first), int(last)


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
