"""Parsing SDP bodies (``sdp``): one pass over the lines into session-level lines and media
sections.

RFC 4566 §5 / RFC 8866 §5: ``v=``, ``o=``, ``s=`` first, ``t=`` before the first ``m=``, the
session-only types (``v o s``) never in a media section; §5.14 the ``m=`` line (port / number
of ports, proto, formats; RTP formats are payload types 0-127, RFC 3550 §5.1). LF or CRLF
endings; bytes are decoded as UTF-8 with ``surrogateescape``. Errors are ``SdpError`` naming
the bad line.
"""

from __future__ import annotations

import dataclasses

from ._sdp_lines import (
    _PAYLOAD_TYPE,
    _QUOTE,
    _SESSION_ONLY,
    Attribute,
    Connection,
    Field,
    Line,
    Origin,
    SdpError,
    _check_payload_type,
    _int,
    _port,
)
from ._sdp_media import MediaDescription

__all__ = ["parse_body", "parse_m_line"]


def parse_m_line(value: str) -> MediaDescription:
    """A section with just the ``m=`` line (value after ``m=``) and no lines under it."""
    tokens = value.split()
    if len(tokens) < 3:
        raise SdpError("m= needs <media> <port>[/<number of ports>] <proto> <fmt> ...")
    port, _, count = tokens[1].partition("/")
    port_count = _int("m= number of ports", count) if count else None
    if "RTP/" in tokens[2].upper():  # RTP formats are payload types (RFC 8866 §5.14)
        bad = next((f for f in tokens[3:] if _PAYLOAD_TYPE.fullmatch(f) is None), None)
        if bad is not None:
            _check_payload_type(bad)
    return MediaDescription(
        tokens[0], _port(port), tokens[2], tuple(tokens[3:]), port_count, (), value
    )


def parse_body(data: bytes | str) -> tuple[tuple[Line, ...], tuple[MediaDescription, ...]]:
    """The session-level lines and the media sections of a body, in one pass over its
    lines (LF or CRLF endings). Trailing empty lines are ignored."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    rows = text.split("\n")
    while rows and rows[-1] in ("", "\r"):
        rows.pop()
    if not rows:
        raise SdpError("empty SDP body")
    session: list[Line] = []
    media: list[MediaDescription] = []
    section: list[Line] = session
    timing = False
    for number, row in enumerate(rows, 1):
        line = row[:-1] if row.endswith("\r") else row
        try:
            if len(line) < 2 or line[1] != "=":
                raise SdpError("expected <type>=<value>")
            letter, value = line[0], line[2:]
            if number <= 3 and letter != "vos"[number - 1]:  # RFC 8866 §5: v= o= s= first
                raise SdpError(f"missing {'vos'[number - 1]}= (line {number} must be one)")
            if letter == "m":
                if not timing:
                    raise SdpError("missing t= before the first m= (RFC 8866 §5.9)")
                if media:
                    media[-1] = dataclasses.replace(media[-1], lines=tuple(section))
                media.append(parse_m_line(value))
                section = []
            elif letter == "a":
                section.append(Attribute.parse(value))
            elif letter == "c":
                section.append(Connection.parse(value))
            elif letter == "o" and not media:
                section.append(Origin.parse(value))
            elif letter in _SESSION_ONLY and media:
                raise SdpError(f"{letter}= is not allowed in a media section")
            else:
                timing = timing or letter == "t"
                section.append(Field(letter, value))
        except SdpError as exc:
            text = line if len(line) <= _QUOTE else line[:_QUOTE] + "..."
            raise SdpError(f"line {number} {text!r}: {exc}") from None
    if not timing:
        raise SdpError("missing t= line (RFC 8866 §5.9)")
    if media:
        media[-1] = dataclasses.replace(media[-1], lines=tuple(section))
    return tuple(session), tuple(media)
