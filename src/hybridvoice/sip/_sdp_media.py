"""SDP media sections (RFC 4566 §5.14) and the line-list edits shared with the session level.

A section is its ``m=`` line and the lines under it, in wire order; lookups read the lines
(RFC 4566 §5.7 ``c=``, §6 attributes and directions, RFC 3551 §6 static payload types,
RFC 3605 ``a=rtcp``, RFC 5761 ``a=rtcp-mux``); edits return copies that keep every other
line in place. Parsing is in ``_sdp_parse``, serialising in ``_sdp_write``; ``sdp``
re-exports the class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import _sdp_write as write
from ._sdp_lines import (
    _DIRECTIONS,
    _SESSION_ONLY,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Codec,
    Connection,
    Direction,
    Line,
    Rtcp,
    RtpMap,
    SdpError,
    _check_text,
    _check_token,
    payload_maps,
)

if TYPE_CHECKING:
    from .sdp import SessionDescription

__all__ = ["MediaDescription"]


def _attributes(lines: Iterable[Line]) -> tuple[Attribute, ...]:
    return tuple(line for line in lines if isinstance(line, Attribute))


def _first_attribute(lines: Iterable[Line], name: str) -> Attribute | None:
    for line in lines:
        if isinstance(line, Attribute) and line.name == name:
            return line
    return None


def _first_connection(lines: Iterable[Line]) -> Connection | None:
    for line in lines:
        if isinstance(line, Connection):
            return line
    return None


def _direction(lines: Iterable[Line]) -> Direction | None:
    for line in lines:
        if isinstance(line, Attribute) and line.value is None and line.name in _DIRECTIONS:
            return Direction(line.name)
    return None


def _put(
    lines: tuple[Line, ...], new: Line, same: Callable[[Line], bool], after: str | None
) -> tuple[Line, ...]:
    """Put ``new`` in place of the first line that is ``same``, dropping other such lines.

    If none is there, insert it after the last line whose type is in ``after`` (RFC 4566 order),
    or append it when ``after`` is None.
    """
    out: list[Line] = []
    placed = False
    for line in lines:
        if same(line):
            if not placed:
                out.append(new)
                placed = True
        else:
            out.append(line)
    if not placed:
        if after is None:
            out.append(new)
        else:
            index = max((i + 1 for i, line in enumerate(out) if line.letter in after), default=0)
            out.insert(index, new)
    return tuple(out)


def _is_connection(line: Line) -> bool:
    return isinstance(line, Connection)


def _named(names: Container[str]) -> Callable[[Line], bool]:
    return lambda line: isinstance(line, Attribute) and line.name in names


# --- media sections ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """An ``m=`` line and the lines under it (RFC 4566 §5.14)."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    lines: tuple[Line, ...] = ()
    raw: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_token("m= media", self.media)
        _check_token("m= proto", self.proto)
        for fmt in self.formats:
            _check_token("m= format", fmt)
        if not 0 <= self.port <= 65535:
            raise SdpError(f"m= port out of range: {self.port}")
        if self.port_count is not None and self.port_count < 1:
            raise SdpError(f"m= number of ports must be positive: {self.port_count}")
        for line in self.lines:
            if line.letter in _SESSION_ONLY:
                raise SdpError(f"{line.letter}= is not allowed in a media section: {line}")
        if self.raw is not None:
            _check_text("m= text", self.raw)

    def m_line(self) -> str:
        """The ``m=`` line's text (received spacing kept while the fields agree)."""
        return write.m_line(self)

    def __str__(self) -> str:
        return write.section_text(self)

    # -- plain lookups --

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is rejected or removed (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def is_rtp(self) -> bool:
        """The proto is an RTP profile (RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, ...)."""
        return "RTP/" in self.proto.upper()

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return _attributes(self.lines)

    def attribute(self, name: str) -> Attribute | None:
        """The first media-level attribute called ``name``."""
        return _first_attribute(self.lines, name)

    def attributes_named(self, name: str) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.name == name)

    @property
    def connection(self) -> Connection | None:
        """The media-level ``c=`` (the first, for layered multicast)."""
        return _first_connection(self.lines)

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if any (RFC 4566 §6)."""
        return _direction(self.lines)

    @property
    def rtcp(self) -> Rtcp | None:
        """The ``a=rtcp`` attribute (RFC 3605), if any."""
        attr = self.attribute("rtcp")
        return None if attr is None or attr.value is None else Rtcp.parse(attr.value)

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` is present (RFC 5761 §5.1.1)."""
        return self.attribute("rtcp-mux") is not None

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` in milliseconds (RFC 4566 §6; RFC 8866 allows a decimal value)."""
        attr = self.attribute("ptime")
        if attr is None or attr.value is None:
            return None
        try:
            return float(attr.value.strip())
        except ValueError:
            raise SdpError(f"malformed a=ptime:{attr.value}") from None

    # -- payload formats --

    def rtpmap(self, payload_type: str) -> RtpMap | None:
        """``a=rtpmap`` of a payload type, else its RFC 3551 static mapping (RTP streams only)."""
        if not self.is_rtp:
            return None
        found = payload_maps(self.attributes)[0].get(payload_type)
        return found if found is not None else STATIC_PAYLOAD_TYPES.get(payload_type)

    def fmtp(self, payload_type: str) -> str | None:
        """The format parameters of ``a=fmtp:<payload_type> <params>`` (RFC 4566 §6)."""
        return payload_maps(self.attributes)[1].get(payload_type)

    def codecs(self) -> tuple[Codec, ...]:
        """The stream's codecs in ``m=`` order; formats with no known mapping are left out."""
        if not self.is_rtp:
            return ()
        rtpmaps, fmtps = payload_maps(self.attributes)
        out = []
        for pt in self.formats:
            rtpmap = rtpmaps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if rtpmap is not None:
                out.append(
                    Codec(pt, rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels, fmtps.get(pt))
                )
        return tuple(out)

    # -- session context --

    def effective_connection(self, session: SessionDescription) -> Connection | None:
        """Media-level ``c=`` if present, else the session-level one (RFC 4566 §5.7)."""
        own = self.connection
        return own if own is not None else session.connection

    def effective_direction(self, session: SessionDescription) -> Direction:
        """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1).

        A ``c=IN IP4 0.0.0.0`` hold (RFC 3264 §8.4) removes the receiving half.
        """
        declared = self.direction or session.direction or Direction.SENDRECV
        connection = self.effective_connection(session)
        if connection is not None and connection.is_hold:
            return Direction.from_flags(sends=declared.sends, receives=False)
        return declared

    # -- copies with changes --

    def with_port(self, port: int) -> MediaDescription:
        return dataclasses.replace(self, port=port, raw=None)

    def with_formats(self, formats: Sequence[str]) -> MediaDescription:
        """Keep only ``formats``, dropping rtpmap/fmtp/rtcp-fb lines of the others."""
        keep = set(formats) | {"*"}

        def refers_to_dropped(line: Line) -> bool:
            if not (isinstance(line, Attribute) and line.name in ("rtpmap", "fmtp", "rtcp-fb")):
                return False
            pt = (line.value or "").split(None, 1)
            return bool(pt) and pt[0] not in keep

        lines = tuple(line for line in self.lines if not refers_to_dropped(line))
        return dataclasses.replace(self, formats=tuple(formats), lines=lines, raw=None)

    def with_connection(self, address: str, addrtype: str | None = None) -> MediaDescription:
        """Set the media-level ``c=`` in place (inserted after ``i=`` when absent)."""
        new = Connection.for_address(address, addrtype)
        return dataclasses.replace(self, lines=_put(self.lines, new, _is_connection, "i"))

    def with_direction(self, direction: Direction) -> MediaDescription:
        """Set the media-level direction attribute in place (appended when absent)."""
        new = Attribute(direction.value)
        lines = _put(self.lines, new, _named(_DIRECTIONS), None)
        return dataclasses.replace(self, lines=lines)

    def with_rtcp(self, port: int, address: str | None = None) -> MediaDescription:
        """Set ``a=rtcp`` (RFC 3605) in place (appended when absent)."""
        connection = None if address is None else Connection.for_address(address)
        new = Attribute("rtcp", Rtcp(port, connection).value())
        return dataclasses.replace(self, lines=_put(self.lines, new, _named({"rtcp"}), None))

    def with_attribute(self, attribute: Attribute) -> MediaDescription:
        """Replace the first attribute of that name in place, dropping others; else append."""
        lines = _put(self.lines, attribute, _named({attribute.name}), None)
        return dataclasses.replace(self, lines=lines)

    def without_attributes(self, name: str) -> MediaDescription:
        lines = tuple(line for line in self.lines if not _named({name})(line))
        return dataclasses.replace(self, lines=lines)


# --- the session -------------------------------------------------------------------------------
