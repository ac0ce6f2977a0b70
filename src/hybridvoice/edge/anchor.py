"""Media anchoring at the edge for clients on the internet (sans-IO: SDP in, decisions out).

The original Edge Server relayed the media of every external client: the mediation role's
address is internal and unreachable from the internet. Here the edge anchors a call's media on
its media relay address (``[EdgeServer] ExternalMRIPs``, advertised as ``ExternalMRPublicIPs``)
when:

- an initial INVITE from the external side (a user's client through the online service)
  offers media on an address outside ``[MediationServer] InternalSubnets`` (RFC 4566 §5.7
  ``c=``; an internal client keeps its direct path, and may bypass);
- an initial INVITE from the internal side (a call toward a user): always, as the edge
  cannot know at offer time where the user's client is (RFC 3264: the offer must name
  an address the client can reach).

Every SDP of an anchored call that crosses the edge is rewritten (:func:`rewrite_sdp`): the
address and ports become the edge's relay ports of the side it leaves on, RFC 3605 ``a=rtcp``
follows, the other side's ICE attributes (RFC 8839 ``candidate``, ``ice-ufrag``, ``ice-pwd``,
``ice-options``, ``end-of-candidates``...) are dropped. Toward the client the edge is an
ICE-lite agent (RFC 8445 §2.5, as Direct Routing SBCs are): the SDP carries ``a=ice-lite``,
the call's own ``a=ice-ufrag``/``a=ice-pwd`` and one host candidate per component on the
relay's public address (RFC 8839 §5.1; no RTCP component with ``a=rtcp-mux``); the relay
answers the client's checks (:mod:`hybridvoice.media.ice_lite`). A client without ICE ignores
them, and the relay latches each side to the source of its packets (RFC 4961 symmetric RTP;
clients behind NAT). The mediation role sees the edge's relay address as the client's and
never bypasses for it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hybridvoice.media.ice_lite import IceCredentials, host_priority
from hybridvoice.sip.sdp import Attribute, MediaDescription, SessionDescription

__all__ = ["MediaAddress", "ice_credentials", "offer_from_outside", "rewrite_sdp", "sdp_media"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_ICE: Final = frozenset(
    {"candidate", "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "end-of-candidates",
     "remote-candidates", "ice-mismatch"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MediaAddress:
    """Where one side receives audio: address, RTP port, RTCP port (RFC 3605, else RTP+1)."""

    address: str
    port: int
    rtcp_port: int


def _parse(body: bytes) -> SessionDescription | None:
    try:
        return SessionDescription.parse(body)
    except ValueError:  # SdpError included
        return None


def sdp_media(body: bytes) -> MediaAddress | None:
    """The first audio stream's address (media-level ``c=`` over session-level), or None
    (no SDP, no audio, port 0, hold address)."""
    sdp = _parse(body)
    if sdp is None:
        return None
    for media in sdp.media:
        if media.media != "audio" or media.port == 0:
            continue
        connection = media.effective_connection(sdp)
        if connection is None or connection.is_hold:
            return None
        rtcp = media.rtcp
        return MediaAddress(connection.address, media.port,
                            rtcp.port if rtcp is not None else media.port + 1)  # fmt: skip
    return None


def offer_from_outside(body: bytes, internal_subnets: Iterable[IPNetwork]) -> bool:
    """Whether an offer's audio address lies outside every internal subnet (an address that
    is not an IP literal counts as outside)."""
    found = sdp_media(body)
    if found is None:
        return False
    try:
        address = ipaddress.ip_address(found.address)
    except ValueError:
        return True
    return not any(address.version == net.version and address in net for net in internal_subnets)


def ice_credentials(body: bytes) -> IceCredentials | None:
    """The first audio stream's ``a=ice-ufrag``/``a=ice-pwd`` (media level over session
    level), or None (no ICE, or not SDP, or credentials RFC 8839 does not allow)."""
    sdp = _parse(body)
    if sdp is None:
        return None
    for media in sdp.media:
        if media.media != "audio" or media.port == 0:
            continue
        ufrag = media.attribute("ice-ufrag") or sdp.attribute("ice-ufrag")
        pwd = media.attribute("ice-pwd") or sdp.attribute("ice-pwd")
        if ufrag is None or pwd is None or ufrag.value is None or pwd.value is None:
            return None
        try:
            return IceCredentials(ufrag.value.strip(), pwd.value.strip())
        except ValueError:
            return None
    return None


def rewrite_sdp(
    body: bytes, host: str, port: int, rtcp_port: int, ice: IceCredentials | None = None
) -> bytes | None:
    """``body`` with every audio stream on ``host``:``port`` (RTCP ``rtcp_port``), other
    streams refused (port 0: the relay carries audio only), ICE attributes dropped (with
    ``ice``: ours instead, an ICE-lite agent with a host candidate per component on
    ``host``), the ``o=`` address ``host`` too (the far end's address, often internal, is
    not shown to the other side). The ``o=`` session id and version stay the far end's: the
    rewrite is the same for the same body, so a repeated offer keeps its version and a
    changed one has the far end's bump (RFC 3264 §8). None when ``body`` is not SDP."""
    sdp = _parse(body)
    if sdp is None:
        return None
    addrtype = "IP6" if ":" in host else "IP4"
    origin = sdp.origin
    if (origin.addrtype, origin.address) != (addrtype, host):
        sdp = sdp.with_origin(
            dataclasses.replace(origin, addrtype=addrtype, address=host, raw=None)
        )
    audio_done = False
    for index, media in enumerate(sdp.media):
        if media.port == 0:
            continue
        if media.media != "audio" or audio_done:
            sdp = sdp.with_media(index, media.with_port(0))
            continue
        audio_done = True
        new = media.with_port(port)
        if not media.rtcp_mux:
            new = new.with_rtcp(rtcp_port)
        new = _without_ice(new)
        if ice is not None:
            new = _with_ice(new, ice, host, port, None if media.rtcp_mux else rtcp_port)
        sdp = sdp.with_media(index, new)
    lines = tuple(x for x in sdp.lines if not (isinstance(x, Attribute) and x.name in _ICE))
    sdp = dataclasses.replace(sdp, lines=lines)
    if ice is not None and audio_done:
        sdp = sdp.with_attribute(Attribute("ice-lite"))  # RFC 8839 §5.3, session level
    return bytes(sdp.with_connection(host))


def _with_ice(
    media: MediaDescription, ice: IceCredentials, host: str, port: int, rtcp_port: int | None
) -> MediaDescription:
    """RFC 8839 §5.1 and §5.4: our credentials and a host candidate per component."""
    lines = [Attribute("ice-ufrag", ice.ufrag), Attribute("ice-pwd", ice.pwd)]
    for component, where in ((1, port), (2, rtcp_port)):
        if where is not None:
            value = f"1 {component} UDP {host_priority(component)} {host} {where} typ host"
            lines.append(Attribute("candidate", value))
    return dataclasses.replace(media, lines=(*media.lines, *lines), raw=None)


def _without_ice(media: MediaDescription) -> MediaDescription:
    lines = tuple(
        line for line in media.lines if not (isinstance(line, Attribute) and line.name in _ICE)
    )
    return dataclasses.replace(media, lines=lines, raw=None)
