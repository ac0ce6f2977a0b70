"""Turning bytes into messages: one datagram (§18.3 framing by Content-Length or the
datagram end) or a stream (TCP/TLS: framing by Content-Length, CRLF keep-alives per
RFC 5626 §3.5.1), tolerant of data arriving one byte at a time.

``parse_message`` validates the start line and the headers every role depends on (Via,
From, To, Call-ID, CSeq, Max-Forwards, Content-Length, Contact, Date) so that a message
either parses completely or raises ``ParseError`` with the status a server should answer.
Checks that need application policy (missing headers, unknown schemes, Require) are in
``hybridvoice.sip.validate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ._abnf import MAX_DELTA_SECONDS, param_get, parse_number, parse_params
from .errors import ParseError
from .headers import (
    _SPELLINGS,
    Address,
    Headers,
    canonical_name,
    parse_address,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_uint,
    parse_via_list,
)
from .message import Message, Request, Response
from .uri import SipUri, parse_uri
from .value_cache import ValueCache

__all__ = [
    "DEFAULT_MAX_SIZE",
    "STREAM_CACHE_ENTRIES",
    "KeepAlive",
    "StreamParser",
    "ValueCache",
    "parse_message",
]

#: The largest message we accept by default (header section plus body).
DEFAULT_MAX_SIZE: Final = 65535
#: entries per kind of a stream parser's own value cache (one stream sees few dialogs)
STREAM_CACHE_ENTRIES: Final = 1024

_FOLD: Final = re.compile(r"\r?\n[ \t]+")
#: the leading number of a header value: delta-seconds (§25.1) or a sequence number
_LEADING_DIGITS: Final = re.compile(r"[0-9]+")
_METHOD: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION: Final = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")
# rfc1123-date = wkday "," SP date1 SP time SP "GMT" (§20.17)
_DATE: Final = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def _check_version(text: str) -> None:
    m = _VERSION.fullmatch(text)
    if m is None:
        raise ParseError(f"malformed SIP version {text[:20]!r}", kind="bad_version")
    if (m.group(1), m.group(2)) != ("2", "0"):
        raise ParseError(f"SIP version {text[:20]} is not supported", 505, kind="bad_version")


_max_forwards = parse_uint(255, "Max-Forwards")
_content_length_number = parse_uint(2**31 - 1, "Content-Length")


def _content_length(values: list[str]) -> int:
    try:
        return _content_length_number(values)
    except ParseError as exc:
        raise ParseError(str(exc), kind="bad_content_length") from None


def _first_address(values: list[str], cache: ValueCache | None) -> Address:
    return parse_address(values[0], cache)


def _check_date(values: list[str]) -> str:
    if not _DATE.fullmatch(values[0]):
        raise ParseError("malformed Date: rfc1123-date in GMT expected (§20.17)")
    return values[0]


# --- numeric headers: every number is bounded once, here (see _abnf.parse_number) ----------


def _leading_number(name: str, limit: int, *, cap: bool) -> Callable[[str], str]:
    """A check of a header whose value starts with a number (then parameters, a comment,
    a method...); returns the value, with the number capped at ``limit`` when ``cap``."""

    def check(value: str) -> str:
        if len(value) < 10 and value.isdigit() and value.isascii():  # the usual: in range
            return value
        m = _LEADING_DIGITS.match(value)
        if m is None:
            raise ParseError(f"malformed {name}: a number expected", kind="bad_number")
        number = parse_number(m.group(0), name, limit, cap=cap)
        if m.end() < len(value):
            _check_delta_params(name, value, m.end())
        return value if m.end() <= 10 else f"{number}{value[m.end() :]}"

    return check


#: parameters that are delta-seconds: Retry-After's duration (§20.33), Subscription-State's
#: expires and retry-after (RFC 6665 §8.2.3)
_DELTA_PARAMS: Final = ("duration", "expires", "retry-after")


def _check_delta_params(name: str, value: str, start: int) -> None:
    """The delta-seconds parameters after ``start`` must be numbers; a too large one is
    refused here (rewriting a parameter list in place is not worth it for a value that only
    a hostile peer sends)."""
    if ";" not in value:
        return
    params_start = value.index(";", start)
    try:
        params = parse_params(value, params_start)
    except ValueError:
        return  # the application parses these parameters (a comment may hold a ";")
    for pname in _DELTA_PARAMS:
        text = param_get(params, pname)
        if text is not None:
            parse_number(text, f"{pname} parameter of {name}", MAX_DELTA_SECONDS)


def _subscription_state(value: str) -> str:
    """Subscription-State = substate-value *( SEMI subexp-params ) (RFC 6665 §8.2.3)."""
    if ";" in value:
        _check_delta_params("Subscription-State", value, 0)
    return value


def _rack(value: str) -> str:
    """RAck = response-num LWS CSeq-num LWS Method (RFC 3262 §7.2)."""
    parts = value.split()
    if len(parts) != 3:
        raise ParseError("malformed RAck: response-num CSeq-num Method", kind="bad_number")
    parse_number(parts[0], "RAck response-num", MAX_DELTA_SECONDS)
    parse_number(parts[1], "RAck CSeq-num", 2**31 - 1)
    return value


#: Numeric headers outside ``_EAGER``, checked on every line while the head is parsed:
#: lower-case name -> check returning the value to keep. delta-seconds values above
#: 2**32-1 are capped (§20.19); other numbers out of range are a 400 naming the header.
_NUMERIC: Final[Mapping[str, Callable[[str], str]]] = MappingProxyType(
    {
        "expires": _leading_number("Expires", MAX_DELTA_SECONDS, cap=True),
        "min-expires": _leading_number("Min-Expires", MAX_DELTA_SECONDS, cap=True),
        "retry-after": _leading_number("Retry-After", MAX_DELTA_SECONDS, cap=True),
        "session-expires": _leading_number("Session-Expires", MAX_DELTA_SECONDS, cap=True),
        "min-se": _leading_number("Min-SE", MAX_DELTA_SECONDS, cap=True),
        "rseq": _leading_number("RSeq", MAX_DELTA_SECONDS, cap=False),
        "rack": _rack,
        "subscription-state": _subscription_state,
    }
)


#: The headers every role reads, parsed (and so validated) while the message is parsed;
#: the results go straight into the header list's cache. Multiples of single-valued
#: headers are the application's problem (RFC 4475 §3.3.8): only the first is parsed.
#: Those whose parser takes the value cache:
_EAGER_CACHED: Final[Mapping[str, Callable[[list[str], ValueCache | None], object]]] = (
    MappingProxyType(
        {
            "via": parse_via_list,
            "from": _first_address,
            "to": _first_address,
            "cseq": parse_cseq,
            "contact": parse_contact_list,
        }
    )
)
#: ... and those whose parser has no use for it (called directly: no forwarding wrapper)
_EAGER_PLAIN: Final[Mapping[str, Callable[[list[str]], object]]] = MappingProxyType(
    {
        "call-id": parse_call_id,
        "max-forwards": _max_forwards,
        "content-length": _content_length,
        "date": _check_date,
    }
)
_EAGER: Final = frozenset(_EAGER_CACHED) | frozenset(_EAGER_PLAIN)


def _split_bare_lf(head: str) -> list[str]:
    """The lines of a head holding a CR or LF that is not part of a CRLF: tolerated when
    the whole head is framed by bare LF (as most stacks do); otherwise a lone CR, or an LF
    in a CRLF head, would let a next hop that splits lines differently see other headers
    (e.g. an injected Via), so the message is malformed (§7.3.1)."""
    if "\r" in head:
        raise ParseError("bare CR or LF in the header section (§7.3.1)", kind="bare_cr_lf")
    return (_FOLD.sub(" ", head) if "\n " in head or "\n\t" in head else head).split("\n")


def _parse_head(head: str, values_cache: ValueCache | None) -> tuple[Message, int | None]:
    """Parse the start line and headers; return the message and its Content-Length."""
    lines = head.split("\r\n")
    rest = "".join(lines)  # no CR or LF may be left between the CRLFs: two memchr scans
    if "\n" in rest or "\r" in rest:
        lines = _split_bare_lf(head)
    elif "\n " in head or "\n\t" in head:  # folded lines (§7.3.1)
        lines = _FOLD.sub(" ", head).split("\r\n")
    items: list[tuple[str, str, str]] = []
    keys: list[str] = []  # the lines' lookup keys, in order (Headers keeps both)
    eager: dict[str, list[str]] = {}
    append, append_key = items.append, keys.append
    spellings = _SPELLINGS  # canonical_name's table, inlined for the usual names
    for i in range(1, len(lines)):
        line = lines[i]
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"header line without a colon: {line[:80]!r}")
        # (in and a subscript: a mapping proxy's get() is a method call, twice as slow)
        if name in spellings:
            key, canon = spellings[name]
        else:
            key, canon = canonical_name(name.rstrip(" \t"))
        value = value.strip(" \t")
        if key in _EAGER:
            if key in eager:
                eager[key].append(value)
            else:
                eager[key] = [value]
        elif key in _NUMERIC:
            value = _NUMERIC[key](value)
        append((key, canon, value))
        append_key(key)
    headers = Headers(items, values_cache, keys)
    cache = headers._cache
    for key, values in eager.items():
        if key in _EAGER_PLAIN:
            cache[key] = _EAGER_PLAIN[key](values)
        else:
            cache[key] = _EAGER_CACHED[key](values, values_cache)
    if "via" not in cache:
        cache["via"] = ()

    start = lines[0]
    message: Message
    if start.startswith(("SIP/", "sip/", "Sip/")):
        version, _, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        _check_version(version)
        if len(code) != 3 or not code.isascii() or not code.isdigit() or not "100" <= code <= "699":
            raise ParseError(f"malformed status code in {start[:80]!r}", kind="bad_start_line")
        message = Response(int(code), reason, headers)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not _METHOD.fullmatch(parts[0]):
            raise ParseError(f"malformed request line {start[:80]!r}", kind="bad_start_line")
        method, uri_text, version = parts
        if version != "SIP/2.0":
            _check_version(version)
        uri = parse_uri(uri_text, values_cache)
        if type(uri) is SipUri and uri.headers:
            raise ParseError("headers are not allowed in a Request-URI (§19.1.1)")
        cseq = cache.get("cseq")
        if cseq is not None and cseq.method != method:
            raise ParseError("CSeq method does not match the request method (§8.1.1.5)")
        message = Request(method, uri, headers)

    length: int | None = cache.get("content-length")
    if length is not None:
        values = eager["content-length"]
        if len(values) > 1 and any(v != values[0] for v in values):
            length = -1  # conflicting values: framing impossible
    return message, length


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def parse_message(data: bytes, cache: ValueCache | None = None) -> Request | Response:
    """Parse one message from a datagram (RFC 3261 §18.3).

    ``cache`` (:mod:`.value_cache`): the caller's memo of parsed header values, which the
    message keeps for its lazy views; None parses every value afresh.

    Bytes beyond Content-Length are ignored (RFC 4475 §3.1.1.8); a Content-Length larger
    than the datagram is an error (§3.1.2.2); without Content-Length the body is the rest
    of the datagram. Raises ``ParseError`` carrying the status hint.
    """
    # leading CRLFs before a start line are allowed on streams and harmless here (§7.5)
    head_start = 0
    while data.startswith((b"\r\n", b"\n"), head_start):
        head_start += 2 if data[head_start] == 13 else 1
    end = data.find(b"\r\n\r\n", head_start)
    if end >= 0:
        body_start = end + 4
    else:
        end = data.find(b"\n\n", head_start)
        if end < 0:
            raise ParseError("no empty line after the headers", kind="unparseable")
        body_start = end + 2
    message, length = _parse_head(_decode(data[head_start:end]), cache)
    available = len(data) - body_start
    if length is None:
        length = available
    elif length < 0:
        raise ParseError(
            "several different Content-Length values (RFC 4475 §3.3.9)", kind="bad_content_length"
        )
    elif length > available:
        raise ParseError(
            f"Content-Length {length} is larger than the {available} bytes sent",
            kind="bad_content_length",
        )
    message._body = data[body_start : body_start + length]
    assert isinstance(message, Request | Response)
    return message


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A keep-alive on a stream (RFC 5626 §3.5.1): ``ping`` (CRLFCRLF) asks for a pong
    (a single CRLF); a lone CRLF is a pong."""

    ping: bool


class StreamParser:
    """Frames messages on a TCP/TLS stream. Feed bytes; collect messages and keep-alives.

    A ``ParseError`` from ``feed`` means the stream cannot be resynchronised: answer 400
    when possible and close the connection (§18.3). Messages framed before the bad bytes
    are returned first; the error is raised by the next ``feed`` call (``feed(b"")`` will
    do), and by every call after it.
    """

    __slots__ = ("_buf", "_error", "_max_size", "_scan", "values")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE, cache: ValueCache | None = None) -> None:
        #: its memo of parsed header values: the one given (the transport's), else its own
        self.values = cache if cache is not None else ValueCache(STREAM_CACHE_ENTRIES)
        self._buf = bytearray()
        self._max_size = max_size
        self._scan = 0  # where to resume looking for the end of the header section
        self._error: ParseError | None = None

    def __len__(self) -> int:
        """Bytes buffered and not yet part of a complete message."""
        return len(self._buf)

    @property
    def mid_message(self) -> bool:
        """Whether part of a message is held (not only CR/LF between messages): a stream
        that ends now ends in the middle of a message."""
        return bool(self._buf.strip(b"\r\n"))

    def feed(self, data: bytes) -> list[Request | Response | KeepAlive]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[Request | Response | KeepAlive] = []
        try:
            self._frame(out)
        except ParseError as exc:
            self._error = exc
            if not out:
                raise
        return out

    def _frame(self, out: list[Request | Response | KeepAlive]) -> None:
        buf = self._buf
        while buf:
            # keep-alives between messages
            if buf[0] in (13, 10):
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    out.append(KeepAlive(ping=True))
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    break  # could still become a ping
                if buf.startswith(b"\r\n"):
                    del buf[:2]
                    out.append(KeepAlive(ping=False))
                    continue
                del buf[:1]
                continue
            end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
            if end < 0:
                if len(buf) > self._max_size:
                    raise ParseError(
                        "header section larger than the maximum size", 513, kind="oversized"
                    )
                self._scan = len(buf)
                break
            message, length = _parse_head(_decode(bytes(buf[:end])), self.values)
            if length is None:
                length = 0
            elif length < 0:
                raise ParseError(
                    "several different Content-Length values on a stream",
                    kind="bad_content_length",
                )
            total = end + 4 + length
            if total > self._max_size:
                raise ParseError(
                    f"message of {total} bytes is larger than allowed", 513, kind="oversized"
                )
            if len(buf) < total:
                self._scan = end  # header end already known; wait for the body
                break
            message._body = bytes(buf[end + 4 : total])
            del buf[:total]
            self._scan = 0
            assert isinstance(message, Request | Response)
            out.append(message)
