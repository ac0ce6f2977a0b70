"""SDP rewriting for media anchoring (RFC 4566 §5.7 and §5.14, RFC 3264 §5 and §8).

When the mediation role anchors a call, the SDP that crosses from one leg to the other names
the relay instead of the far end: the first audio stream's port becomes the relay's RTP port
for the receiving leg, every ``c=`` line its address, and ``a=rtcp`` (RFC 3605) its RTCP
port. The far end's own address and port go to the relay as that leg's remote (it latches
later, RFC 4961). Streams the relay does not carry (a second audio, video) are refused with
port 0 (RFC 3264 §6). A hold (``c=0.0.0.0``, RFC 3264 §8.4) does not change the remote.
"""

from __future__ import annotations

from typing import Final

from hybridvoice.media import Leg
from hybridvoice.net.relay import RelayCall
from hybridvoice.sip.sdp import Attribute, SdpError, SessionDescription

__all__ = ["anchor", "anchor_sdp", "parse_sdp"]


#: recently parsed bodies: a call's offer is read by the bypass decision, the media plan and
#: the codec check; parsed SDP is immutable, so sharing it is safe. A body that does not parse
#: is kept as its error. Bounded: cleared when full.
_PARSED: dict[bytes, SessionDescription | SdpError] = {}
_PARSED_MAX: Final = 1024


def parse_sdp(body: bytes) -> SessionDescription:
    """The SDP of a body, checked in full (RFC 8866 grammar). Raises :class:`SdpError`
    naming the bad line: the bridge's guard refuses the call 488 with a Warning saying so."""
    found = _PARSED.get(body)
    if found is None:
        try:
            found = SessionDescription.parse(body)
        except SdpError as exc:
            found = exc
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[body] = found
    if isinstance(found, SdpError):
        raise SdpError(str(found))
    return found


def anchor_sdp(body: bytes, relay: RelayCall, from_leg: Leg) -> bytes:
    """``body``, received on ``from_leg``, rewritten to the relay's side of the other leg."""
    return bytes(anchor(parse_sdp(body), relay, from_leg))


def anchor(sdp: SessionDescription, relay: RelayCall, from_leg: Leg) -> SessionDescription:
    """``sdp``, received on ``from_leg``, rewritten to the relay's side of the other leg;
    the sender's address and port become ``from_leg``'s remote in the relay."""
    host, rtp_port, rtcp_port = relay.local(from_leg.other)
    done = False
    for index, media in enumerate(sdp.media):
        if media.port == 0 or not media.is_rtp:
            continue
        if done or media.media != "audio":
            sdp = sdp.with_media(index, media.with_port(0))
            continue
        done = True
        connection = media.effective_connection(sdp)
        if connection is not None and not connection.is_hold:
            relay.set_remote(from_leg, connection.address, media.port)
        new = media.with_port(rtp_port)
        if new.attribute("rtcp") is not None:
            new = new.with_attribute(Attribute("rtcp", str(rtcp_port)))
        sdp = sdp.with_media(index, new)
    return sdp.with_connection(host)
