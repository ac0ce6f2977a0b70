"""The media bypass decision, per call (sans-IO: no sockets, no clock, no event loop).

With media bypass the mediation role passes the SDP through unchanged, so RTP flows between the
client and the gateway directly; otherwise it anchors media on its own relay. The inputs are the
ones the original system used (``docs/reference.md``, "Media bypass"):

- the tenant's network configuration, ``MediaBypassSettings {Enabled, AlwaysBypass}``;
- the site's internal subnets (IPv4 and IPv6, :mod:`ipaddress`);
- the client's media address and port from its SDP (RFC 4566 §5.7 ``c=``, §5.14 ``m=``),
  media-level ``c=`` overriding session-level; RFC 3264 §8.4 ``c=IN IP4 0.0.0.0`` (hold) gives no
  address;
- whether the call comes from an external client through the edge (those never bypass);
- the gateway's ``MediaBypass`` flag (Direct Routing gateway object);
- codec compatibility: bypass needs a codec both ends speak (G.711 typically, RFC 3551 §4.5.14),
  as the relay is the only place that can transcode.

``AlwaysBypass``: on, any client inside the site's internal subnets bypasses. Off, bypass is
decided per network site as in Lync/Skype for Business (client and gateway must share a bypass
ID): here the client's media address and the gateway's media address must lie in the *same*
internal subnet; with the gateway's address unknown the call is anchored.

:func:`decide_bypass` is a pure function whose :class:`BypassDecision` carries a human-readable
reason, recorded with the call (``records.py``). The checks run in a fixed order (the table in
:data:`CHECK_ORDER`) so each call gets exactly one, stable reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from hybridvoice.sip.sdp import SessionDescription

__all__ = [
    "CHECK_ORDER",
    "G711",
    "BypassDecision",
    "BypassPolicy",
    "ClientMedia",
    "GatewayMedia",
    "IPNetwork",
    "MediaMode",
    "SubnetError",
    "client_media_from_sdp",
    "decide_bypass",
    "parse_subnets",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

G711: tuple[str, ...] = ("PCMU", "PCMA")
"""What PSTN gateways speak when nothing else is known (RFC 3551 §4.5.14)."""

_NOT_AUDIO_CODECS = frozenset({"TELEPHONE-EVENT", "CN", "RED", "ULPFEC", "FLEXFEC"})
"""Formats that ride along with a codec but cannot carry the call on their own."""

CHECK_ORDER: tuple[str, ...] = (
    "tenant bypass disabled",
    "external client via edge",
    "gateway media bypass off",
    "no client media address",
    "client outside the internal subnets",
    "AlwaysBypass off and client/gateway not in one subnet",
    "no common codec",
)
"""The order of the checks in :func:`decide_bypass`; the first that fails names the reason."""


class SubnetError(ValueError):
    """An internal subnet in the configuration is not a valid IPv4/IPv6 network."""


class MediaMode(StrEnum):
    """Where a call's media flows: straight between client and gateway, or through our relay."""

    BYPASS = "bypass"
    ANCHORED = "anchored"


def parse_subnets(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``["10.1.0.0/16", "fd00::/8"]`` -> networks; host bits set are an error (a typo guard)."""
    out: list[IPNetwork] = []
    for text in texts:
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as exc:
            raise SubnetError(f"invalid internal subnet {text!r}: {exc}") from exc
    return tuple(out)


def _address(text: str) -> IPAddress | None:
    """An IP literal, IPv4-mapped IPv6 folded to IPv4; ``None`` for FQDNs and junk."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _containing(address: IPAddress, subnets: Iterable[IPNetwork]) -> IPNetwork | None:
    """The most specific subnet holding ``address`` (longest prefix), else ``None``."""
    best: IPNetwork | None = None
    for net in subnets:
        inside = net.version == address.version and address in net
        if inside and (best is None or net.prefixlen > best.prefixlen):
            best = net
    return best


@dataclass(frozen=True, slots=True)
class BypassPolicy:
    """The tenant's network configuration plus the site's internal subnets."""

    enabled: bool
    always_bypass: bool = True
    internal_subnets: tuple[IPNetwork, ...] = ()
    #: the edge's media relay addresses and port range: a client whose SDP names one of them
    #: (and a port of the range) is on the internet, its media anchored at the edge
    #: (``docs/edge-media.md``), and never bypasses
    edge_relays: frozenset[str] = frozenset()
    edge_relay_ports: tuple[int, int] = (0, 65535)

    def at_edge_relay(self, client: ClientMedia | None) -> bool:
        """Whether ``client``'s media is the edge's relay (an internet client, anchored)."""
        first, last = self.edge_relay_ports
        return (
            client is not None
            and client.address in self.edge_relays
            and (first <= client.port <= last)
        )

    def subnet_of(self, address: str) -> IPNetwork | None:
        """The internal subnet holding ``address`` (an IP literal), else ``None``."""
        parsed = _address(address)
        return None if parsed is None else _containing(parsed, self.internal_subnets)

    def is_internal(self, address: str) -> bool:
        """Whether ``address`` lies in one of the site's internal subnets."""
        return self.subnet_of(address) is not None


@dataclass(frozen=True, slots=True)
class ClientMedia:
    """The client's audio stream as its SDP offers it: address, port and codec names."""

    address: str
    port: int
    codecs: tuple[str, ...] = G711


@dataclass(frozen=True, slots=True)
class GatewayMedia:
    """What the decision needs to know about the gateway of the call.

    ``codecs`` are the encoding names the gateway accepts (from its trunk settings or its own
    SDP); ``address`` is its media address, needed only when ``AlwaysBypass`` is off.
    """

    name: str
    media_bypass: bool = True
    codecs: tuple[str, ...] = G711
    address: str | None = None


@dataclass(frozen=True, slots=True)
class BypassDecision:
    """The outcome for one call: bypass or anchor, why, and the subnet that matched."""

    mode: MediaMode
    reason: str
    subnet: IPNetwork | None = None

    @property
    def bypass(self) -> bool:
        """True when media flows client <-> gateway directly."""
        return self.mode is MediaMode.BYPASS


def client_media_from_sdp(sdp: SessionDescription) -> ClientMedia | None:
    """The first active audio stream of ``sdp`` (RFC 3264 §5.1), or ``None``.

    ``None`` when there is no audio ``m=`` line with a non-zero port, no ``c=`` for it, or a
    ``c=IN IP4 0.0.0.0`` hold address: with no address to send to, bypass cannot be set up.
    """
    for media in sdp.media:
        if media.media != "audio" or media.port == 0:
            continue
        connection = media.effective_connection(sdp)
        if connection is None or connection.is_hold:
            return None
        codecs = tuple(codec.encoding.upper() for codec in media.codecs())
        return ClientMedia(connection.address, media.port, codecs)
    return None


def _voice_codecs(names: Iterable[str]) -> set[str]:
    return {name.upper() for name in names} - _NOT_AUDIO_CODECS


def _anchor(reason: str, subnet: IPNetwork | None = None) -> BypassDecision:
    return BypassDecision(MediaMode.ANCHORED, reason, subnet)


def decide_bypass(
    policy: BypassPolicy,
    *,
    client: ClientMedia | None,
    via_edge: bool,
    gateway: GatewayMedia,
) -> BypassDecision:
    """Bypass or anchor this call, with the reason (checks in :data:`CHECK_ORDER`).

    ``client`` is the client's media from its SDP (:func:`client_media_from_sdp`); ``via_edge``
    is true for calls from external clients that reach us through the edge's media relay.
    """
    if not policy.enabled:
        return _anchor("bypass disabled in tenant network configuration")
    if via_edge or policy.at_edge_relay(client):
        return _anchor("external client via edge")
    if not gateway.media_bypass:
        return _anchor(f"gateway {gateway.name} has media bypass off")
    if client is None:
        return _anchor("no client media address in SDP")
    address = _address(client.address)
    subnet = None if address is None else _containing(address, policy.internal_subnets)
    if address is None or subnet is None:
        return _anchor(f"client {client.address} is not in the site's internal subnets")
    if not policy.always_bypass:
        gateway_address = None if gateway.address is None else _address(gateway.address)
        if gateway_address is None or gateway_address not in subnet:
            where = gateway.address or "unknown address"
            return _anchor(
                f"AlwaysBypass off: client {client.address} in {subnet} and gateway "
                f"{gateway.name} ({where}) are not in the same subnet",
                subnet,
            )
    if not _voice_codecs(client.codecs) & _voice_codecs(gateway.codecs):
        return _anchor("no common codec: transcoding needed", subnet)
    return BypassDecision(
        MediaMode.BYPASS, f"bypass: internal client {client.address} in {subnet}", subnet
    )
