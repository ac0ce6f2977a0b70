"""The RFC 3261 §25 grammar pieces the parser needs, as compiled regexes and helpers.

Names follow the ABNF: ``token``, ``word`` (Call-ID), ``quoted-string``, ``generic-param``.
Everything here works on ``str`` decoded from the wire with ``surrogateescape`` so that
any byte sequence survives a parse/serialise round trip.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from .errors import ParseError

__all__ = [
    "ALPHA_SCHEME",
    "MAX_DELTA_SECONDS",
    "TOKEN",
    "WORD",
    "Params",
    "check_ipv6_reference",
    "format_params",
    "param_get",
    "param_has",
    "param_set",
    "param_without",
    "parse_number",
    "parse_params",
    "parse_port",
    "quote",
    "split_commas",
    "unquote",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CHARS: Final = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN: Final = re.compile(rf"[{_TOKEN_CHARS}]+")
# word = 1*(token chars / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" /
#           "?" / "{" / "}")
WORD: Final = re.compile(rf"[{_TOKEN_CHARS}()<>:\\\"/\[\]?{{}}]+")
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )   (RFC 3986 §3.1)
ALPHA_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext excludes DQUOTE and backslash; quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QUOTED: Final = r'"[^"\\\r\n]*(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f][^"\\\r\n]*)*"'  # unrolled loop
QUOTED_STRING: Final = re.compile(_QUOTED)

# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string.
# host adds "[", "]" and ":" (IPv6 references) to the token characters.
_PARAM: Final = re.compile(
    rf"[ \t]*;[ \t]*([{_TOKEN_CHARS}]+)(?:[ \t]*=[ \t]*([{_TOKEN_CHARS}\[\]:]+|{_QUOTED}))?[ \t]*"
)

#: Parameters as an ordered tuple of (name as written, value or None).
Params = tuple[tuple[str, str | None], ...]


_PARAMS: Final = re.compile(rf"(?:{_PARAM.pattern})*")


def parse_params(text: str, start: int = 0) -> Params:
    """Parse ``*( SEMI generic-param )`` from ``text[start:]``; it must consume all of it.

    Raises ``ValueError`` with the offending text when the parameters are malformed.
    """
    if start >= len(text):
        return ()
    if _PARAMS.fullmatch(text, start) is None:
        raise ValueError(f"malformed parameters: {text[start:]!r}")
    rest = text[start:]
    if '"' not in rest and " " not in rest and "\t" not in rest:
        out: list[tuple[str, str | None]] = []
        for item in rest[1:].split(";"):
            name, eq, value = item.partition("=")
            out.append((name, value if eq else None))
        return tuple(out)
    return tuple((m.group(1), m.group(2)) for m in _PARAM.finditer(text, start))


def format_params(params: Params) -> str:
    """Serialise parameters as ``;name=value`` (``;name`` for a valueless one)."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def param_get(params: Params, name: str) -> str | None:
    """The value of the first parameter called ``name`` (case-insensitive), else None."""
    lname = name.lower()
    for n, v in params:
        if n == lname or n.lower() == lname:
            return v
    return None


def param_has(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(n.lower() == lname for n, _ in params)


def param_set(params: Params, name: str, value: str | None) -> Params:
    """Replace the first ``name`` parameter in place, or append it."""
    lname = name.lower()
    out = list(params)
    for i, (n, _) in enumerate(out):
        if n.lower() == lname:
            out[i] = (n, value)
            return tuple(out)
    out.append((name, value))
    return tuple(out)


def param_without(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple(p for p in params if p[0].lower() != lname)


#: one comma-separated value: text, quoted strings (backslash pairs inside) and <...> (which
#: may hold quoted strings); possessive, so a value that does not parse fails fast
_VALUE: Final = re.compile(
    r'(?:[^,"<]++|"(?:[^"\\]|\\.)*+"|<(?:[^>"]|"(?:[^"\\]|\\.)*+")*+>)*+', re.DOTALL
)


def split_commas(value: str) -> list[str]:
    """Split a header value on the commas that separate its values (RFC 3261 §7.3.1).

    Commas inside quoted strings and inside ``<...>`` do not split. Each part is
    stripped of surrounding whitespace; empty parts are kept so callers can reject them.
    """
    if '"' not in value and "<" not in value:
        return [part.strip(" \t") for part in value.split(",")]
    parts: list[str] = []
    match = _VALUE.match
    n = len(value)
    pos = 0
    while True:
        end = match(value, pos).end()  # type: ignore[union-attr]  # matches the empty string
        if end == n:
            parts.append(value[pos:].strip(" \t"))
            return parts
        if value[end] != ",":  # an unterminated quote or <: the character scan decides
            return _split_commas_scan(value)
        parts.append(value[pos:end].strip(" \t"))
        pos = end + 1


def _split_commas_scan(value: str) -> list[str]:
    """:func:`split_commas` one character at a time (unbalanced quotes and brackets)."""
    parts: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i].strip(" \t"))
            start = i + 1
        i += 1
    parts.append(value[start:].strip(" \t"))
    return parts


def unquote(text: str) -> str:
    """The content of a quoted-string, with quoted-pairs resolved; other text unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        return re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL) if "\\" in inner else inner
    return text


def quote(text: str) -> str:
    """Make a quoted-string of ``text``, escaping backslash and DQUOTE."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- numbers and hosts ------------------------------------------------------------------

#: delta-seconds (§25.1) is a 32-bit quantity: §20.19 bounds Expires to 2**32-1, and a
#: larger delta-seconds anywhere is read as that bound.
MAX_DELTA_SECONDS: Final = 2**32 - 1
#: 2**32-1 has 10 digits: no number we accept needs more once leading zeros are gone
_MAX_DIGITS: Final = 10


def parse_number(text: str, what: str, limit: int, *, cap: bool = False) -> int:
    """``1*DIGIT`` no larger than ``limit``: the one place a number from the wire becomes an
    ``int``. The digit count is bounded before ``int()`` runs, so thousands of digits cost
    nothing and never hit Python's integer-string limit. Above ``limit``, ``cap`` gives
    ``limit`` (delta-seconds, §20.19); otherwise ``ParseError`` (400) naming ``what``."""
    if not (text.isdigit() and text.isascii()):
        raise ParseError(f"malformed {what}: digits expected", kind="bad_number")
    digits = text.lstrip("0")
    if len(digits) <= _MAX_DIGITS:
        value = int(digits) if digits else 0
        if value <= limit:
            return value
    if cap:
        return limit
    raise ParseError(f"{what} out of range (at most {limit})", kind="bad_number")


def parse_port(digits: str, what: str) -> int:
    """A port already matched as ``1*DIGIT``: 0-65535 (the usual short ones without the
    general path), else as :func:`parse_number` says."""
    port = int(digits) if len(digits) <= 5 else 65536
    return port if port <= 65535 else parse_number(digits, what, 65535)


def check_ipv6_reference(host: str) -> None:
    """A bracketed host (IPv6reference, §25.1) must hold a real IPv6 address (RFC 5118)."""
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise ParseError(f"not an IPv6 address: {host[:60]!r}", kind="bad_host") from None
