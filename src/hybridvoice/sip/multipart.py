"""Multipart message bodies (RFC 5621 for SIP, RFC 2046 §5.1 for the syntax; sans-IO).

A SIP message may carry its SDP inside a ``multipart/mixed`` body (with ISUP, RFC 3204, or a
location object) or as several ``multipart/alternative`` versions of one offer (Lync and
Skype for Business clients send two SDPs this way). Whatever rewrites SDP must rewrite every
SDP part, or media escapes it. :func:`split` cuts such a body into :class:`Part` objects while
keeping every other byte (preamble, delimiter lines with their padding, part headers,
epilogue), so that :meth:`Multipart.join` gives back exactly the body it was given when no part
changed, and only the changed parts' bytes otherwise.

What is refused (:func:`split` returns None, the caller leaves the body alone): a
``Content-Type`` that is not ``multipart/*`` or has no ``boundary``, a boundary RFC 2046 does
not allow (1-70 characters), no opening or no closing delimiter, and a part whose headers do
not end with an empty line. Delimiters are recognised at the start of a line only (CRLF, as
RFC 2046 requires), so a boundary string inside a part's text is not a delimiter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["Multipart", "Part", "boundary_of", "split"]

_CRLF: Final = b"\r\n"
_PADDING: Final = b" \t"


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` parameter of a ``multipart/*`` Content-Type (quotes removed), or None
    when the type is not multipart or the parameter is missing or not allowed."""
    kind, _, params = content_type.partition(";")
    if not kind.strip().lower().startswith("multipart/"):
        return None
    for param in _params(params):
        name, eq, value = param.partition("=")
        if eq and name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if 1 <= len(value) <= 70 and not value.endswith(" ") and value.isascii():
                return value
            return None
    return None


def _params(text: str) -> list[str]:
    """``;``-separated parameters, a ``;`` inside quotes kept."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


@dataclass(slots=True)
class Part:
    """One body part: its header block as received (each line with its CRLF, without the empty
    line that ends it) and its body."""

    headers: bytes
    body: bytes
    #: the body as :func:`split` found it: :meth:`Multipart.join` rewrites Content-Length only
    #: for a part whose body changed
    original: bytes = field(default=b"", repr=False)

    @property
    def content_type(self) -> str:
        """The part's media type, lower case, without parameters (RFC 2046 §5.1: a part
        without Content-Type is ``text/plain``)."""
        value = self.header(b"content-type")
        if value is None:
            return "text/plain"
        return value.partition(";")[0].strip().lower()

    def header(self, name: bytes) -> str | None:
        """The first header ``name`` (lower case, without the colon), unfolded, or None."""
        found: list[bytes] | None = None
        for line in self.headers.split(_CRLF):
            if found is not None:
                if line[:1] in (b" ", b"\t"):
                    found.append(line.strip())
                    continue
                break
            key, colon, value = line.partition(b":")
            if colon and key.strip().lower() == name:
                found = [value.strip()]
        return None if found is None else b" ".join(found).decode("utf-8", "replace")


@dataclass(slots=True)
class Multipart:
    """A split multipart body: ``preamble`` up to the first delimiter, then for each part the
    delimiter line (``--boundary`` and its padding, with its CRLF) and the part, then the
    closing delimiter line and the ``epilogue`` after it."""

    boundary: bytes
    preamble: bytes
    openers: list[bytes]
    parts: list[Part]
    closer: bytes
    epilogue: bytes

    def join(self) -> bytes:
        """The body again: byte for byte what :func:`split` was given when no part changed."""
        out = [self.preamble]
        for opener, part in zip(self.openers, self.parts, strict=True):
            out.append(opener)
            headers = part.headers
            if part.body != part.original and part.header(b"content-length") is not None:
                headers = _with_length(headers, len(part.body))
            out.append(headers)
            out.append(_CRLF)
            out.append(part.body)
            out.append(_CRLF)
        out.append(self.closer)
        out.append(self.epilogue)
        return b"".join(out)


def _with_length(headers: bytes, length: int) -> bytes:
    lines = headers.split(_CRLF)
    for index, line in enumerate(lines):
        key, colon, _ = line.partition(b":")
        if colon and key.strip().lower() == b"content-length":
            lines[index] = key + b": " + str(length).encode()
    return _CRLF.join(lines)


def split(content_type: str, body: bytes) -> Multipart | None:
    """``body`` cut into its parts, or None when it is not a well-formed multipart body of
    ``content_type`` (see the module docstring)."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return None
    dash = b"--" + boundary.encode("ascii")
    if body.startswith(dash):
        at = 0
    else:
        found = body.find(_CRLF + dash)
        if found < 0:
            return None
        at = found + 2
    preamble = body[:at]
    openers: list[bytes] = []
    parts: list[Part] = []
    while True:
        after = at + len(dash)
        if body.startswith(b"--", after):  # the closing delimiter
            end = body.find(_CRLF, after + 2)
            end = len(body) if end < 0 else end + 2
            if not parts:
                return None
            return Multipart(dash[2:], preamble, openers, parts, body[at:end], body[end:])
        line_end = body.find(_CRLF, after)
        if line_end < 0 or body[after:line_end].strip(_PADDING):
            return None  # not a delimiter line: the boundary followed by other text
        start = line_end + 2
        following = body.find(_CRLF + dash, start - 2)
        if following < 0:
            return None  # no closing delimiter
        openers.append(body[at:start])
        part = _part(body[start:following])
        if part is None:
            return None
        parts.append(part)
        at = following + 2


def _part(raw: bytes) -> Part | None:
    if raw.startswith(_CRLF):  # no headers at all
        return Part(b"", raw[2:], raw[2:])
    end = raw.find(_CRLF + _CRLF)
    if end < 0:
        return None
    body = raw[end + 4 :]
    return Part(raw[: end + 2], body, body)
