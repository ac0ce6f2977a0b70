"""Header names and the typed header values a proxy and a B2BUA need (RFC 3261 §20).

Every header is kept as (name, raw value) in a ``Headers`` list, in order, so unknown
headers and anything we do not touch are re-emitted verbatim. The typed views (``Via``,
``Address`` for From/To/Contact/Route/Record-Route, ``CSeq``) are parsed on demand and
cached until the header is changed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

from ._abnf import (
    MAX_DELTA_SECONDS,
    TOKEN,
    WORD,
    Params,
    check_ipv6_reference,
    format_params,
    param_get,
    param_has,
    param_set,
    parse_number,
    parse_params,
    parse_port,
    split_commas,
    unquote,
)
from .errors import LocalProtocolError, ParseError
from .uri import (
    SIP_URI_BASE,
    SIP_URI_FULL,
    SipUri,
    Uri,
    parse_uri,
    sip_uri_from_groups,
)

if TYPE_CHECKING:
    from .value_cache import ValueCache

__all__ = [
    "COMPACT_FORMS",
    "Address",
    "CSeq",
    "Headers",
    "Via",
    "canonical_name",
    "first_address",
    "parse_address",
    "parse_address_list",
    "parse_call_id",
    "parse_contact_list",
    "parse_cseq",
    "parse_uint",
    "parse_via_list",
]

#: RFC 3261 §7.3.3 and later RFCs' compact forms (IANA SIP header registry).
COMPACT_FORMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "a": "Accept-Contact",
        "b": "Referred-By",
        "c": "Content-Type",
        "d": "Request-Disposition",
        "e": "Content-Encoding",
        "f": "From",
        "i": "Call-ID",
        "j": "Reject-Contact",
        "k": "Supported",
        "l": "Content-Length",
        "m": "Contact",
        "n": "Identity-Info",
        "o": "Event",
        "r": "Refer-To",
        "s": "Subject",
        "t": "To",
        "u": "Allow-Events",
        "v": "Via",
        "x": "Session-Expires",
        "y": "Identity",
    }
)

_CANONICAL: Final[tuple[str, ...]] = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "History-Info",
    "Identity", "Identity-Info", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE",
    "MIME-Version", "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
    "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
    "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Replaces",
    "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq",
    "Server", "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject",
    "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate",
)  # fmt: skip

#: lower-case name (long or compact) -> canonical long name
_BY_LOWER: Final[Mapping[str, str]] = MappingProxyType(
    {**{n.lower(): n for n in _CANONICAL}, **COMPACT_FORMS}
)


def _usual_spellings() -> dict[str, tuple[str, str]]:
    """Every known name as stacks write it (canonical, lower, upper, capitalised words)."""
    out: dict[str, tuple[str, str]] = {}
    for lower, canon in _BY_LOWER.items():
        result = (canon.lower(), canon)
        words = "-".join(word.capitalize() for word in lower.split("-"))
        for spelling in (canon, lower, lower.upper(), words):
            out[spelling] = result
    return out


#: usual spelling of a known name -> (lookup key, canonical name): the parser's fast path
_SPELLINGS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(_usual_spellings())


def canonical_name(name: str) -> tuple[str, str]:
    """(lookup key, name to emit) for a header name as written; raises on a bad token."""
    try:  # (a subscript: a mapping proxy's get() costs twice as much)
        return _SPELLINGS[name]
    except KeyError:
        pass
    if not TOKEN.fullmatch(name):
        raise ParseError(f"malformed header name {name!r}")
    lower = name.lower()
    canon = _BY_LOWER.get(lower)
    return (canon.lower(), canon) if canon is not None else (lower, name)


# --- typed values --------------------------------------------------------------------

# Via = sent-protocol LWS sent-by *( SEMI via-params ); sent-protocol = name/version/transport
_VIA: Final = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+([A-Za-z0-9\-_.]+|\[[0-9A-Fa-f:.]+\])"
    r"(?:[ \t]*:[ \t]*([0-9]+))?"
)


class Via(NamedTuple):
    """One Via value (§20.42) with RFC 3581 ``rport``. An immutable named tuple."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        for name, value in self.params:  # param_get inlined: read for every message
            if name == "branch" or name.lower() == "branch":
                return value
        return None

    @property
    def received(self) -> str | None:
        return param_get(self.params, "received")

    @property
    def rport(self) -> int | None:
        value = param_get(self.params, "rport")
        ok = value is not None and value.isdigit() and len(value) <= 5  # checked when parsed
        return int(value) if ok else None  # type: ignore[arg-type]

    @property
    def wants_rport(self) -> bool:
        return param_has(self.params, "rport")

    @property
    def maddr(self) -> str | None:
        return param_get(self.params, "maddr")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def with_param(self, name: str, value: str | None = None) -> Via:
        return self._replace(params=param_set(self.params, name, value))

    def replace(self, **changes: Any) -> Via:
        return self._replace(**changes)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"


# Parsed values are memoised by their exact text in the caller's ValueCache, when it gives
# one (:mod:`.value_cache`: the transport's); failures are never stored.


def _parse_via(text: str, cache: ValueCache | None) -> Via:
    if cache is None:
        return _parse_via_text(text)
    memo = cache.via
    via = memo.get(text)
    if via is not None:
        return via
    via = _parse_via_text(text)
    if len(memo) >= cache.max_entries:
        memo.clear()
    memo[text] = via
    return via


def _parse_via_text(text: str) -> Via:
    m = _VIA.match(text)
    if m is None:
        raise ParseError(f"malformed Via {text!r}")
    try:
        params = parse_params(text, m.end())
    except ValueError as exc:
        raise ParseError(f"malformed Via parameters in {text!r}") from exc
    host, port = m.group(4), m.group(5)
    if host[0] == "[":
        check_ipv6_reference(host)
    if len(params) > 1 or (params and params[0][0] != "branch"):  # the usual Via: branch only
        _check_via_params(params)
    return Via(
        m.group(3).upper(),
        host,
        None if port is None else int(port) if len(port) < 5 else parse_port(port, "Via port"),
        params,
        f"{m.group(1)}/{m.group(2)}",
    )


def _check_via_params(params: Params) -> None:
    """via-params with a grammar of their own (§20.42, RFC 3581 §3): ``ttl`` 0-255,
    ``rport`` a port, ``received`` and ``maddr`` real addresses when they are IPv6."""
    for name, value in params:
        if value is None or name == "branch":
            continue
        lname = name.lower()
        if lname == "rport":
            if not (len(value) < 5 and value.isdigit() and value.isascii()):  # else: in range
                parse_number(value, "Via rport", 65535)
        elif lname == "ttl":
            parse_number(value, "Via ttl", 255)
        elif lname in ("received", "maddr") and (value[:1] == "[" or ":" in value):
            check_ipv6_reference(value if value[:1] == "[" else f"[{value}]")


def _split(value: str) -> list[str]:
    """``split_commas`` with a fast path for the usual line holding a single value."""
    return split_commas(value) if "," in value else [value.strip(" \t")]


def parse_via_list(values: list[str], cache: ValueCache | None = None) -> tuple[Via, ...]:
    """Every Via value of every Via header line, top first."""
    if len(values) == 1 and "," not in values[0]:  # the usual single value
        return (_parse_via(values[0].strip(" \t"), cache),)
    return tuple(_parse_via(part, cache) for value in values for part in _split(value))


# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT ; display-name = *(token LWS) / quoted
_TOKENS: Final = r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*"
_QSTR: Final = r'"[^"\\\r\n]*(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f][^"\\\r\n]*)*"'  # unrolled loop
_NAME_ADDR: Final = re.compile(rf"({_QSTR}|{_TOKENS})?[ \t]*<([^<>\s]+)>")
_ADDR_SPEC: Final = re.compile(r"[^<>\s;,?\"]+")
# Fast paths for the usual shapes, SIP URIs matched in the same pass:
# display <sip:...>;params  and  sip:user@host:port;params
_NAME_ADDR_SIP: Final = re.compile(rf"({_QSTR}|{_TOKENS})?[ \t]*<{SIP_URI_FULL}>", re.IGNORECASE)
_ADDR_SPEC_SIP: Final = re.compile(rf"{SIP_URI_BASE}(?=[ \t;]|$)", re.IGNORECASE)


class Address(NamedTuple):
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route... (§20).

    An immutable named tuple; it always serialises in name-addr form (with ``<>``).
    """

    uri: Uri
    display: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        for name, value in self.params:  # param_get inlined: read many times per message
            if name == "tag" or name.lower() == "tag":
                return value
        return None

    @property
    def display_name(self) -> str | None:
        """The display name without quotes or escapes."""
        return None if self.display is None else unquote(self.display)

    @property
    def sip_uri(self) -> SipUri:
        """The URI when it is sip/sips; raises ``ParseError`` (416) otherwise."""
        if not isinstance(self.uri, SipUri):
            raise ParseError(f"not a SIP URI: {self.uri}", 416)
        return self.uri

    def param(self, name: str) -> str | None:
        return param_get(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Address:
        return self._replace(params=param_set(self.params, name, value))

    def replace(self, **changes: Any) -> Address:
        return self._replace(**changes)

    def with_tag(self, tag: str) -> Address:
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        display = "" if self.display is None else self.display + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_address(text: str, cache: ValueCache | None = None) -> Address:
    """Parse ``(name-addr / addr-spec) *(SEMI param)``; raise ``ParseError`` if malformed."""
    if cache is None:
        return _parse_address_text(text, None)
    memo = cache.address
    address = memo.get(text)
    if address is not None:
        return address
    address = _parse_address_text(text, cache)
    if len(memo) >= cache.max_entries:
        memo.clear()
    memo[text] = address
    return address


def _parse_address_text(text: str, cache: ValueCache | None) -> Address:
    fast = _NAME_ADDR_SIP.match(text)
    if fast is not None:
        display, *uri_groups = fast.groups()
        uri: Uri = sip_uri_from_groups(*uri_groups)
    else:
        fast = _ADDR_SPEC_SIP.match(text)
        if fast is not None:
            display, uri = None, sip_uri_from_groups(*fast.groups())
    if fast is not None:
        try:
            params = parse_params(text, fast.end())
        except ValueError as exc:
            raise ParseError(f"malformed address parameters in {text!r}") from exc
        return Address(uri, display, params)
    m = _NAME_ADDR.match(text)
    if m is None:
        m = _ADDR_SPEC.match(text)
        if m is None:
            raise ParseError(f"malformed address {text!r}")
        uri_text, display = m.group(0), None
    else:
        uri_text, display = m.group(2), m.group(1)
    try:
        params = parse_params(text, m.end())
    except ValueError as exc:
        raise ParseError(f"malformed address parameters in {text!r}") from exc
    return Address(parse_uri(uri_text, cache), display, params)


def first_address(values: list[str], cache: ValueCache | None = None) -> Address:
    """The typed view of From and To: the first line's address."""
    return parse_address(values[0], cache)


# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )   (§20.10). The parser only
# bounds its shape (a few digits, a decimal point); whether it is within 0..1 is the
# registrar's policy, which answers it with its own 400 and Warning.
_QVALUE: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{0,3})?")


def parse_contact_list(values: list[str], cache: ValueCache | None = None) -> tuple[Address, ...]:
    """The Contact addresses, their contact-params checked (§20.10): ``q`` is a qvalue and
    ``expires`` delta-seconds, capped at 2**32-1 (the capped value replaces the written
    one in the parsed view). Raises ``ParseError``."""
    if values[0] == "*":
        return ()  # Contact: * (a REGISTER removing every binding, §10.2.2)
    addresses = parse_address_list(values, cache)
    if len(addresses) == 1:  # the usual
        address = addresses[0]
        params = _contact_params(address.params) if address.params else address.params
        return addresses if params is address.params else (address._replace(params=params),)
    return tuple(a._replace(params=_contact_params(a.params)) for a in addresses)


def _contact_params(params: Params) -> Params:
    for i, (name, value) in enumerate(params):
        if value is None or len(name) not in (1, 7):  # neither "q" nor "expires"
            continue
        lname = name.lower()
        if lname == "q" and not _QVALUE.fullmatch(value):
            raise ParseError("malformed q parameter: a qvalue expected", kind="bad_number")
        if lname == "expires" and not (len(value) < 10 and value.isdigit() and value.isascii()):
            seconds = parse_number(value, "expires parameter", MAX_DELTA_SECONDS, cap=True)
            if len(value) > 10:  # capped (or leading zeros): keep the bounded number
                params = (*params[:i], (name, str(seconds)), *params[i + 1 :])
    return params


def parse_address_list(values: list[str], cache: ValueCache | None = None) -> tuple[Address, ...]:
    """Every address of every line of a multi-valued header (Contact, Route...)."""
    if len(values) == 1 and "," not in values[0]:  # the usual single value
        part = values[0].strip(" \t")
        if part == "*":
            raise ParseError("'*' is only allowed as the only Contact value")
        return (parse_address(part, cache),)
    out: list[Address] = []
    for value in values:
        for part in _split(value):
            if part == "*":
                raise ParseError("'*' is only allowed as the only Contact value")
            out.append(parse_address(part, cache))
    return tuple(out)


class CSeq(NamedTuple):
    """CSeq = 1*DIGIT LWS Method (§20.16); the number is below 2**31 (§8.1.1.5)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSEQ: Final = re.compile(r"([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")


def parse_cseq(values: list[str], cache: ValueCache | None = None) -> CSeq:
    text = values[0]
    if cache is not None:
        cseq = cache.cseq.get(text)
        if cseq is not None:
            return cseq
    m = _CSEQ.fullmatch(text)
    if m is None:
        raise ParseError(f"malformed CSeq {text[:80]!r}")
    digits = m.group(1)
    seq = int(digits) if len(digits) <= 10 else 2**31
    if seq >= 2**31:
        seq = parse_number(digits, "CSeq number", 2**31 - 1)
    cseq = CSeq(seq, m.group(2))
    if cache is not None:
        memo = cache.cseq
        if len(memo) >= cache.max_entries:
            memo.clear()
        memo[text] = cseq
    return cseq


def parse_call_id(values: list[str]) -> str:
    # callid = word [ "@" word ]
    word, at, host = values[0].partition("@")
    if not WORD.fullmatch(word) or (at and not WORD.fullmatch(host)):
        raise ParseError(f"malformed Call-ID {values[0]!r}")
    return values[0]


def parse_uint(limit: int, what: str = "number") -> Callable[[list[str]], int]:
    """A parser of a single ``1*DIGIT`` value no larger than ``limit`` (``what``: the header
    name, for the error)."""

    def parse(values: list[str]) -> int:
        text = values[0]
        if len(text) <= 10 and text.isdigit() and text.isascii():  # the usual: no call
            value = int(text)
            if value <= limit:
                return value
        return parse_number(text, what, limit)

    return parse


# --- the header list -----------------------------------------------------------------


def line_safe(text: str, what: str = "header value") -> str:
    """``text`` when it holds no CR or LF, else ``LocalProtocolError``: a value built by code
    (a display name or URI a user typed, a reason phrase) must never put a line end on the
    wire, where a next hop would read the rest as another header (§7.3.1)."""
    if "\n" in text or "\r" in text:
        raise LocalProtocolError(f"CR or LF in a {what}: {text[:60]!r}")
    return text


T = TypeVar("T")
_MISSING: Final = object()


class Headers:
    """An ordered header list; lookups are by name, case-insensitive, compact forms folded.

    Raw values are strings as received (unfolded, trimmed). ``typed(key, parser)`` caches
    a parsed view per header; any change to that header drops its cache entry. The lines'
    lookup keys are kept in order in a list of their own too: lookups scan it in C.
    """

    __slots__ = ("_cache", "_items", "_keys", "_values")

    def __init__(
        self, items: list[tuple[str, str, str]] | None = None, values: ValueCache | None = None,
        keys: list[str] | None = None,  # the keys of ``items`` in order, when the caller has them
    ) -> None:  # fmt: skip
        self._items: list[tuple[str, str, str]] = [] if items is None else items
        self._keys = [it[0] for it in items] if items and keys is None else keys or []
        self._cache: dict[str, Any] = {}
        #: the parser's cache of parsed values (:mod:`.value_cache`), for the lazy views
        self._values = values

    @classmethod
    def of(cls, pairs: list[tuple[str, object]]) -> Headers:
        """Build from (name, value) pairs; values may be typed objects (``str()`` is used)."""
        h = cls()
        for name, value in pairs:
            h.add(name, value)
        return h

    # reading
    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    @property
    def value_cache(self) -> ValueCache | None:
        """The cache of parsed values the lazy views use (the parser's, or the builder's)."""
        return self._values

    def get(self, name: str, default: str | None = None) -> str | None:
        """The raw value of the first line of ``name``."""
        key = _key(name)
        keys = self._keys
        if key in keys:
            return self._items[keys.index(key)][2]
        return default

    def get_all(self, name: str) -> list[str]:
        """The raw values of every line of ``name``, in order."""
        return self._values_of(_key(name))

    def _values_of(self, key: str) -> list[str]:
        keys, items = self._keys, self._items
        n = keys.count(key)
        if n < 2:  # the usual cases: absent, one line
            return [items[keys.index(key)][2]] if n else []
        out, i = [], -1
        for _ in range(n):  # each line found by a scan in C
            i = keys.index(key, i + 1)
            out.append(items[i][2])
        return out

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of every line of ``name`` (for list headers)."""
        return [part for v in self.get_all(name) for part in split_commas(v)]

    def count(self, name: str) -> int:
        return self._keys.count(_key(name))

    def typed(self, key: str, parser: Callable[[list[str]], T]) -> T | None:
        """Parsed view of header ``key`` (lower-case long name), cached; None if absent."""
        cache = self._cache
        cached = cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]
        values = self._values_of(key)
        if not values:
            result = None
        elif self._values is not None and parser in _WITH_VALUES:
            result = _WITH_VALUES[parser](values, self._values)
        else:
            result = parser(values)
        cache[key] = result
        return result

    # writing
    def add(self, name: str, value: object) -> None:
        """Append a header line."""
        key, canon = canonical_name(name)
        self._items.append((key, canon, line_safe(value if type(value) is str else str(value))))
        self._keys.append(key)
        self._cache.pop(key, None)

    def prepend(self, name: str, value: object) -> None:
        """Insert a line before the first line of the same header, or at the top."""
        key, canon = canonical_name(name)
        keys = self._keys
        index = keys.index(key) if key in keys else 0
        text = line_safe(value if type(value) is str else str(value))
        self._items.insert(index, (key, canon, text))
        keys.insert(index, key)
        cache = self._cache
        cached = cache.pop(key, None)
        if key == "via" and cached is not None:  # a proxy adds its Via: keep the parsed rest
            if type(value) is Via:  # already parsed: the text is its str()
                cache[key] = (value, *cached)
            else:
                with contextlib.suppress(ParseError):  # else parsed (and reported) when read
                    cache[key] = parse_via_list([text], self._values) + cached

    def set(self, name: str, value: object) -> None:
        """Replace every line of ``name`` by one line, where the first one stood."""
        key, canon = canonical_name(name)
        items, keys = self._items, self._keys
        line = (key, canon, line_safe(value if type(value) is str else str(value)))
        n = keys.count(key)
        if n == 1:  # the usual case: replace the one line in place
            items[keys.index(key)] = line
        elif n == 0:
            items.append(line)
            keys.append(key)
        else:
            index = keys.index(key)
            items[:] = [it for it in items if it[0] != key]
            items.insert(index, line)
            keys[:] = [it[0] for it in items]
        self._cache.pop(key, None)

    def remove(self, name: str) -> int:
        """Remove every line of ``name``; return how many were removed."""
        key = _key(name)
        keys = self._keys
        n = keys.count(key)
        self._cache.pop(key, None)
        if n:  # (absent: nothing to rebuild)
            items = self._items
            items[:] = [it for it in items if it[0] != key]
            keys[:] = [it[0] for it in items]
        return n

    def pop_first_value(self, name: str) -> str | None:
        """Remove the first comma-separated value of ``name`` (the top Via, the first Route)."""
        key = _key(name)
        keys = self._keys
        if key not in keys:
            return None
        i = keys.index(key)
        k, n, v = self._items[i]
        cached = self._cache.pop(key, None)
        if "," not in v:  # the usual line holding one value: no split needed
            del self._items[i], keys[i]
            if key in _VALUE_LISTS and cached:  # the parsed values, minus the first
                self._cache[key] = cached[1:]
            return v.strip(" \t")
        parts = split_commas(v)
        if len(parts) == 1:
            del self._items[i], keys[i]
        else:
            self._items[i] = (k, n, ", ".join(parts[1:]))
        return parts[0]

    def copy(self) -> Headers:
        h = Headers(list(self._items), self._values, list(self._keys))
        h._cache = dict(self._cache)
        return h


#: usual spelling of a known name -> lookup key
_KEYS: Final[Mapping[str, str]] = MappingProxyType({n: k for n, (k, _) in _SPELLINGS.items()})
#: the parsers of typed views that can use the message's ValueCache
_WITH_VALUES: Final[Mapping[object, Callable[[list[str], ValueCache], Any]]] = MappingProxyType(
    {
        parse_via_list: parse_via_list,
        first_address: first_address,
        parse_address_list: parse_address_list,
        parse_contact_list: parse_contact_list,
        parse_cseq: parse_cseq,
    }
)
#: headers whose parsed view is a tuple with one entry per comma-separated value, in order
_VALUE_LISTS: Final = frozenset({"via", "route", "record-route"})


def _key(name: str) -> str:
    try:  # (a subscript: a mapping proxy's get() costs twice as much)
        return _KEYS[name]
    except KeyError:
        pass
    lower = name.lower()
    canon = _BY_LOWER.get(lower)
    return lower if canon is None else canon.lower()
