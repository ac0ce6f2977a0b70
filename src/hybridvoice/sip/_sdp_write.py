"""Serialising SDP (``sdp``): lines, media sections and whole bodies back to text.

RFC 4566 §5: every line is ``<type>=<value>`` ended by CRLF, session-level lines first, then
each ``m=`` line followed by its own lines. Typed lines re-emit their received text while it
still tokenises to the same fields, so odd spacing survives untouched lines (byte
faithfulness); bodies are encoded as UTF-8 with ``surrogateescape`` so any octets round-trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._sdp_lines import Line
    from ._sdp_media import MediaDescription

__all__ = ["body_bytes", "body_text", "faithful", "m_line", "section_text"]


def faithful(raw: str | None, canonical: str) -> str:
    """The received text while it says what the fields say (only spacing may differ)."""
    if raw is not None and raw.split() == canonical.split():
        return raw
    return canonical


def m_line(media: MediaDescription) -> str:
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` (RFC 4566 §5.14)."""
    port = str(media.port) if media.port_count is None else f"{media.port}/{media.port_count}"
    canonical = " ".join((media.media, port, media.proto, *media.formats))
    return f"m={faithful(media.raw, canonical)}"


def section_text(media: MediaDescription) -> str:
    """A media section: its ``m=`` line, then its lines, each ended by CRLF."""
    return "".join(f"{text}\r\n" for text in (m_line(media), *map(str, media.lines)))


def body_text(lines: Iterable[Line], media: Iterable[MediaDescription]) -> str:
    """A whole body: the session-level lines, then every media section."""
    return "".join(f"{line}\r\n" for line in lines) + "".join(map(section_text, media))


def body_bytes(text: str) -> bytes:
    """The body's octets: UTF-8, any undecodable input octet restored (``surrogateescape``)."""
    return text.encode("utf-8", "surrogateescape")
