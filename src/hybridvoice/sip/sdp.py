"""SDP session descriptions, byte-faithful (RFC 4566, as updated by RFC 8866).

Implements:

- RFC 4566 §5: the ``<type>=<value>`` line grammar, the session- and media-level line order,
  §5.1 ``v=``, §5.2 ``o=``, §5.3 ``s=``, §5.7 ``c=`` (with multicast TTL / address count),
  §5.13 ``a=``, §5.14 ``m=`` (port / number of ports, proto, formats).
- RFC 4566 §6: ``rtpmap``, ``fmtp``, ``ptime`` and the direction attributes ``sendrecv``,
  ``sendonly``, ``recvonly``, ``inactive`` (media level overriding session level).
- RFC 3551 §6: static RTP payload types, used when a format has no ``a=rtpmap``.
- RFC 3605: ``a=rtcp`` (RTCP port and optional address). RFC 5761: ``a=rtcp-mux``.
- RFC 3264 §8.4: ``c=IN IP4 0.0.0.0`` read as the RFC 2543 hold (the endpoint receives nothing).

Byte faithfulness: a description is kept as its ordered lines. Lines we model are typed
(:class:`Origin`, :class:`Connection`, :class:`Attribute`, the ``m=`` line of a
:class:`MediaDescription`); everything else (``t=``, ``b=``, ``k=``, ``z=``, ``r=``, ``i=``,
``u=``, ``e=``, ``p=`` and unknown types) is a :class:`Field` kept verbatim, in place. Typed lines
also remember their received text and re-emit it while it still tokenises to the same fields, so
odd spacing survives untouched lines. Input may use LF or CRLF; output always uses CRLF. Bytes are
decoded as UTF-8 with ``surrogateescape``, so any octets survive a round trip.

All types are immutable; the ``with_*`` methods return modified copies and keep every other line.

The model lives in small modules re-exported here: the lines and their grammar in ``_sdp_lines``,
media sections in ``_sdp_media``, the body parser in ``_sdp_parse`` and serialising in
``_sdp_write``; this module holds :class:`SessionDescription`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from . import _sdp_write as write
from ._sdp_lines import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Codec,
    Connection,
    Direction,
    Field,
    Line,
    Origin,
    Rtcp,
    RtpMap,
    SdpError,
    _int,
)
from ._sdp_media import (
    MediaDescription,
    _attributes,
    _direction,
    _first_attribute,
    _first_connection,
    _is_connection,
    _named,
    _put,
)
from ._sdp_parse import parse_body

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Codec",
    "Connection",
    "Direction",
    "Field",
    "Line",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SdpError",
    "SessionDescription",
]


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body: session-level lines in wire order, then the media sections.

    Invariants (RFC 4566 §5): the first line is ``v=``; there is exactly one ``o=`` and one
    ``s=``; at most one session-level ``c=``.
    """

    lines: tuple[Line, ...]
    media: tuple[MediaDescription, ...] = ()

    def __post_init__(self) -> None:
        if not self.lines or not (isinstance(self.lines[0], Field) and self.lines[0].letter == "v"):
            first = str(self.lines[0]) if self.lines else "nothing"
            raise SdpError(f"an SDP body must start with v=, not {first!r}")
        _int("v= version", self.lines[0].value)
        seen: dict[str, int] = {}
        for line in self.lines:
            if line.letter in "vosc":
                seen[line.letter] = seen.get(line.letter, 0) + 1
                if seen[line.letter] > 1:
                    raise SdpError(f"duplicate session-level {line.letter}= line: {str(line)!r}")
        for letter in "os":
            if letter not in seen:
                raise SdpError(f"missing {letter}= line")

    @classmethod
    def create(
        cls,
        origin: Origin,
        *,
        session_name: str = "-",
        connection: Connection | None = None,
        attributes: Iterable[Attribute] = (),
        media: Iterable[MediaDescription] = (),
        timing: str = "0 0",
    ) -> SessionDescription:
        """A new description with lines in RFC 4566 §5 order: v o s [c] t a* m*."""
        lines: list[Line] = [Field("v", "0"), origin, Field("s", session_name)]
        if connection is not None:
            lines.append(connection)
        lines.append(Field("t", timing))
        lines.extend(attributes)
        return cls(tuple(lines), tuple(media))

    @classmethod
    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body in one pass over its lines (LF or CRLF endings).

        Trailing empty lines are ignored. Raises :class:`SdpError` naming the bad line.
        """
        return cls(*parse_body(data))

    def __str__(self) -> str:
        return write.body_text(self.lines, self.media)

    def __bytes__(self) -> bytes:
        return write.body_bytes(str(self))

    # -- plain lookups --

    def _only(self, letter: str) -> Line:
        return next(line for line in self.lines if line.letter == letter)

    @property
    def version(self) -> int:
        """``v=`` (RFC 4566 §5.1)."""
        line = self.lines[0]
        assert isinstance(line, Field)
        return int(line.value)

    @property
    def origin(self) -> Origin:
        line = self._only("o")
        assert isinstance(line, Origin)
        return line

    @property
    def session_name(self) -> str:
        """``s=`` (RFC 4566 §5.3)."""
        line = self._only("s")
        assert isinstance(line, Field)
        return line.value

    @property
    def connection(self) -> Connection | None:
        """The session-level ``c=`` (RFC 4566 §5.7)."""
        return _first_connection(self.lines)

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return _attributes(self.lines)

    def attribute(self, name: str) -> Attribute | None:
        """The first session-level attribute called ``name``."""
        return _first_attribute(self.lines, name)

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, if any (RFC 4566 §6)."""
        return _direction(self.lines)

    # -- copies with changes --

    def with_origin(self, origin: Origin) -> SessionDescription:
        return dataclasses.replace(self, lines=_put(self.lines, origin, _is_origin, "v"))

    def with_bumped_version(self) -> SessionDescription:
        """Increment ``o=`` sess-version, as each new offer or answer must (RFC 3264 §8)."""
        return self.with_origin(self.origin.bumped())

    def with_media(self, index: int, media: MediaDescription) -> SessionDescription:
        items = list(self.media)
        items[index] = media
        return dataclasses.replace(self, media=tuple(items))

    def with_connection(self, address: str, addrtype: str | None = None) -> SessionDescription:
        """Make ``address`` the effective connection address of every stream (media anchoring).

        Every existing ``c=`` line (session and media level) is rewritten in place. A
        session-level ``c=`` is inserted (after ``v o s i u e p``) only if one is needed: when
        the session has none and some media section has none either, or there are no media.
        """
        media = tuple(
            m if m.connection is None else m.with_connection(address, addrtype) for m in self.media
        )
        lines = self.lines
        if self.connection is not None or any(m.connection is None for m in media) or not media:
            new = Connection.for_address(address, addrtype)
            lines = _put(lines, new, _is_connection, "vosiuep")
        return SessionDescription(lines, media)

    def with_attribute(self, attribute: Attribute) -> SessionDescription:
        """Replace the first session-level attribute of that name in place; else append."""
        lines = _put(self.lines, attribute, _named({attribute.name}), None)
        return dataclasses.replace(self, lines=lines)

    def without_attributes(self, name: str) -> SessionDescription:
        lines = tuple(line for line in self.lines if not _named({name})(line))
        return dataclasses.replace(self, lines=lines)


def _is_origin(line: Line) -> bool:
    return isinstance(line, Origin)
