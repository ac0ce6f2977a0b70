"""The SDP offer/answer model (RFC 3264) over :mod:`hybridvoice.sip.sdp`.

Implements:

- RFC 3264 §6 and §6.1: generating an answer. The answer keeps the offer's m-lines in number and
  order, rejects a stream with port 0, lists the common codecs in the offerer's order with the
  offerer's payload type numbers, and mirrors the direction (sendonly <-> recvonly).
- RFC 3264 §6.1 and §7: validating an answer against its offer, and reading the result per
  stream (each side sends with the payload types the *other* side declared).
- RFC 3264 §8.4 (and RFC 6337 §5.3): hold (sendonly, or inactive when only receiving) and
  resume, each as a new offer with the ``o=`` version incremented (RFC 3264 §8).
- RFC 4733 ``telephone-event`` and RFC 3389 ``CN``: kept when both sides have them, never
  enough on their own to accept a stream.
- RFC 5761 §5.1.1: ``a=rtcp-mux`` in the answer only if offered and wanted.
- RFC 3605 / RFC 3550 §11: the remote RTCP address and port.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from hybridvoice.sip.sdp import (
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
)

__all__ = [
    "AUXILIARY_ENCODINGS",
    "DEFAULT_PROTOCOLS",
    "NegotiatedStream",
    "OfferAnswerError",
    "common_codecs",
    "hold",
    "make_answer",
    "needs_g711_transcoding",
    "negotiate",
    "resume",
    "validate_answer",
]


class OfferAnswerError(ValueError):
    """An answer that is not a valid answer to its offer (RFC 3264 §6)."""


AUXILIARY_ENCODINGS = frozenset({"TELEPHONE-EVENT", "CN"})
"""Payload formats that ride along with a codec but cannot carry a stream alone."""

DEFAULT_PROTOCOLS = frozenset({"RTP/AVP", "RTP/AVPF"})
"""Transports :func:`make_answer` accepts unless told otherwise: SRTP needs keys we don't add."""

_G711 = frozenset({("PCMU", 8000), ("PCMA", 8000)})


def _is_primary(codec: Codec) -> bool:
    return codec.encoding.upper() not in AUXILIARY_ENCODINGS


def common_codecs(a: Sequence[Codec], b: Sequence[Codec]) -> tuple[Codec, ...]:
    """The codecs of ``a`` (its order, its payload types) that ``b`` also has.

    Codecs match by encoding name (case-insensitive) and clock rate, so dynamic payload type
    numbers may differ between the sides (RFC 3264 §6.1).
    """
    keys = {codec.key for codec in b}
    return tuple(codec for codec in a if codec.key in keys)


def needs_g711_transcoding(a: Sequence[Codec], b: Sequence[Codec]) -> bool:
    """True when the sides share no real codec but both speak G.711, one PCMU, one PCMA."""
    if any(_is_primary(codec) for codec in common_codecs(a, b)):
        return False
    return any(c.key in _G711 for c in a) and any(c.key in _G711 for c in b)


# --- answering ---------------------------------------------------------------------------------


def _choose(offered: Sequence[Codec], local: Sequence[Codec], single: bool) -> list[Codec]:
    """Common codecs in the offerer's order with its payload types (RFC 3264 §6.1).

    The fmtp is ours when we have one (it states what we receive), else the offerer's.
    """
    ours: dict[tuple[str, int], Codec] = {}
    for codec in local:
        ours.setdefault(codec.key, codec)
    picked = []
    for codec in offered:
        mine = ours.get(codec.key)
        if mine is not None:
            fmtp = mine.fmtp if mine.fmtp is not None else codec.fmtp
            picked.append(
                Codec(codec.payload_type, codec.encoding, codec.clock_rate, codec.channels, fmtp)
            )
    primary = [c for c in picked if _is_primary(c)]
    if not primary:
        return []
    if not single:
        return picked
    rate = primary[0].clock_rate
    return [c for c in picked if c is primary[0] or (not _is_primary(c) and c.clock_rate == rate)]


def _rejected(offered: MediaDescription) -> MediaDescription:
    return MediaDescription(offered.media, 0, offered.proto, offered.formats)


def _answer_stream(
    offer: SessionDescription,
    offered: MediaDescription,
    port: int,
    *,
    local_codecs: Sequence[Codec],
    direction: Direction,
    protocols: Collection[str],
    rtcp_mux: bool,
    single_codec: bool,
) -> MediaDescription:
    if offered.rejected or port == 0 or offered.proto not in protocols:
        return _rejected(offered)
    chosen = _choose(offered.codecs(), local_codecs, single_codec)
    if not chosen:
        return _rejected(offered)
    lines: list[Attribute] = []
    for codec in chosen:
        lines.append(Attribute("rtpmap", codec.rtpmap_value()))
        if codec.fmtp is not None:
            lines.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    ptime = offered.attribute("ptime")
    if ptime is not None:
        lines.append(ptime)
    if rtcp_mux and offered.rtcp_mux:
        lines.append(Attribute("rtcp-mux"))
    answered = offered.effective_direction(offer).mirrored().intersect(direction)
    lines.append(Attribute(answered.value))
    formats = tuple(codec.payload_type for codec in chosen)
    return MediaDescription(offered.media, port, offered.proto, formats, lines=tuple(lines))


def make_answer(
    offer: SessionDescription,
    local_codecs: Sequence[Codec],
    *,
    origin: Origin,
    address: str,
    ports: Sequence[int],
    direction: Direction = Direction.SENDRECV,
    protocols: Collection[str] = DEFAULT_PROTOCOLS,
    rtcp_mux: bool = False,
    single_codec: bool = False,
    session_name: str = "-",
) -> SessionDescription:
    """Answer ``offer`` (RFC 3264 §6, §6.1).

    ``ports[i]`` is our port for the offer's i-th m-line (0 rejects it). A stream is rejected
    (port 0, offered formats, no attributes) when the offer rejected it, its transport is not in
    ``protocols``, or no codec other than telephone-event/CN is common. Accepted streams list
    the common codecs in the offerer's order with its payload types, copy ``a=ptime``, and carry
    the mirrored offered direction intersected with ``direction`` (what we want to do).
    ``single_codec`` keeps only the first common codec (plus telephone-event/CN at its rate).
    """
    if len(ports) != len(offer.media):
        raise ValueError(f"{len(ports)} ports given for {len(offer.media)} m-lines")
    media = [
        _answer_stream(
            offer,
            m,
            port,
            local_codecs=local_codecs,
            direction=direction,
            protocols=protocols,
            rtcp_mux=rtcp_mux,
            single_codec=single_codec,
        )
        for m, port in zip(offer.media, ports, strict=True)
    ]
    return SessionDescription.create(
        origin,
        session_name=session_name,
        connection=Connection.for_address(address),
        media=media,
    )


# --- validating and reading the result ---------------------------------------------------------


def _declared_direction(sd: SessionDescription, media: MediaDescription) -> Direction:
    return media.direction or sd.direction or Direction.SENDRECV


def _check_stream(
    offer: SessionDescription, answer: SessionDescription, index: int, *, strict: bool
) -> None:
    offered, answered = offer.media[index], answer.media[index]
    where = f"m-line {index}"
    if answered.media != offered.media:
        raise OfferAnswerError(f"{where}: answer is {answered.media!r}, offer {offered.media!r}")
    if offered.rejected:
        if not answered.rejected:
            raise OfferAnswerError(f"{where}: offered with port 0, answered with a port")
        return
    if answered.rejected:
        return
    if answered.proto != offered.proto:
        raise OfferAnswerError(f"{where}: answer proto {answered.proto!r}, offer {offered.proto!r}")
    if not answered.formats:
        raise OfferAnswerError(f"{where}: accepted stream lists no formats")
    if offered.is_rtp:
        answered_codecs = answered.codecs()
        if len(answered_codecs) != len(answered.formats):
            raise OfferAnswerError(f"{where}: answer lists a format with no rtpmap")
        common = len(common_codecs(answered_codecs, offered.codecs()))
        extra = common != len(answered_codecs)
    else:
        common = sum(f in offered.formats for f in answered.formats)
        extra = common != len(answered.formats)
    if not common:
        raise OfferAnswerError(f"{where}: no answered format was offered")
    if strict and extra:
        raise OfferAnswerError(f"{where}: answer lists formats the offer did not")
    want = _declared_direction(offer, offered).mirrored()
    got = _declared_direction(answer, answered)
    if got.intersect(want) != got:
        raise OfferAnswerError(f"{where}: offered {want.mirrored()}, answered {got}")


def validate_answer(
    offer: SessionDescription, answer: SessionDescription, *, strict: bool = False
) -> None:
    """Raise :class:`OfferAnswerError` unless ``answer`` validly answers ``offer``.

    Checks (RFC 3264 §6, §6.1): same number of m-lines with the same media types; a stream
    offered with port 0 is answered with port 0; accepted streams keep the transport, list at
    least one format and share at least one with the offer (for RTP: by encoding name and clock
    rate, payload type numbers may differ); direction allowed by the offered one. Section 6.1 lets
    an answer list formats that were not offered; ``strict=True`` forbids that.
    The declared direction attributes are compared, so an RFC 2543 ``c=0.0.0.0`` hold answered
    with sendrecv (as old endpoints do) passes.
    """
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError(
            f"answer has {len(answer.media)} m-lines, offer has {len(offer.media)}"
        )
    for index in range(len(offer.media)):
        _check_stream(offer, answer, index, strict=strict)


@dataclass(frozen=True, slots=True)
class NegotiatedStream:
    """The outcome for one m-line, from the local side's point of view (RFC 3264 §6.1, §7).

    ``send_codecs`` carry the remote side's payload types in its preference order (what we
    send with); ``receive_codecs`` carry ours in our order (what we will receive). Only codecs
    both descriptions list are included. ``remote_rtcp_port`` is the RTP port under rtcp-mux
    (RFC 5761), else ``a=rtcp`` (RFC 3605), else RTP port + 1 (RFC 3550 §11); None when the
    stream is rejected or not RTP.
    """

    index: int
    media: str
    accepted: bool
    direction: Direction
    send_codecs: tuple[Codec, ...]
    receive_codecs: tuple[Codec, ...]
    remote_address: str | None
    remote_port: int
    rtcp_mux: bool
    remote_rtcp_address: str | None
    remote_rtcp_port: int | None


def _negotiated(
    local_sd: SessionDescription, remote_sd: SessionDescription, index: int
) -> NegotiatedStream:
    local, remote = local_sd.media[index], remote_sd.media[index]
    if local.rejected or remote.rejected:
        return NegotiatedStream(
            index, local.media, False, Direction.INACTIVE, (), (), None, 0, False, None, None
        )
    ours = local.effective_direction(local_sd)
    theirs = remote.effective_direction(remote_sd)
    direction = ours.intersect(theirs.mirrored())
    connection = remote.effective_connection(remote_sd)
    address = None if connection is None else connection.address
    mux = local.rtcp_mux and remote.rtcp_mux
    rtcp_address: str | None = None
    rtcp_port: int | None = None
    if remote.is_rtp:
        rtcp = remote.rtcp
        if mux:
            rtcp_address, rtcp_port = address, remote.port
        elif rtcp is not None:
            rtcp_address, rtcp_port = rtcp.address or address, rtcp.port
        else:
            rtcp_address, rtcp_port = address, remote.port + 1
    local_codecs, remote_codecs = local.codecs(), remote.codecs()
    return NegotiatedStream(
        index=index,
        media=local.media,
        accepted=True,
        direction=direction,
        send_codecs=common_codecs(remote_codecs, local_codecs),
        receive_codecs=common_codecs(local_codecs, remote_codecs),
        remote_address=address,
        remote_port=remote.port,
        rtcp_mux=mux,
        remote_rtcp_address=rtcp_address,
        remote_rtcp_port=rtcp_port,
    )


def negotiate(
    offer: SessionDescription, answer: SessionDescription, *, local_is_offerer: bool = True
) -> tuple[NegotiatedStream, ...]:
    """Validate ``answer`` against ``offer`` and return the outcome of each m-line.

    ``local_is_offerer`` says which description is ours; the result is from our point of view.
    Direction uses the effective directions, so a ``c=0.0.0.0`` hold stops sending to it.
    """
    validate_answer(offer, answer)
    local_sd, remote_sd = (offer, answer) if local_is_offerer else (answer, offer)
    return tuple(_negotiated(local_sd, remote_sd, i) for i in range(len(offer.media)))


# --- hold and resume ---------------------------------------------------------------------------


def _redirect(
    local: SessionDescription, change: Callable[[Direction], Direction]
) -> SessionDescription:
    media = tuple(
        m if m.rejected else m.with_direction(change(_declared_direction(local, m)))
        for m in local.media
    )
    return SessionDescription(local.lines, media).with_bumped_version()


def hold(local: SessionDescription) -> SessionDescription:
    """A re-offer putting the peer on hold (RFC 3264 §8.4, RFC 6337 §5.3).

    ``local`` is our last description. Each active stream stops receiving: sendrecv becomes
    sendonly, recvonly becomes inactive. The ``o=`` version is incremented; all else is kept.
    """
    return _redirect(local, lambda d: Direction.from_flags(sends=d.sends, receives=False))


def resume(local: SessionDescription) -> SessionDescription:
    """The re-offer taking the peer off hold: each active stream receives again.

    sendonly becomes sendrecv, inactive becomes recvonly (the inverse of :func:`hold`). The
    ``o=`` version is incremented. A ``c=0.0.0.0`` is left alone.
    """
    return _redirect(local, lambda d: Direction.from_flags(sends=d.sends, receives=True))
