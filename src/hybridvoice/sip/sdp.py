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
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

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


class SdpError(ValueError):
    """Malformed SDP. When raised by :meth:`SessionDescription.parse` it names the line."""


# --- small validators --------------------------------------------------------------------------


def _check_text(what: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise SdpError(f"{what} must not contain CR or LF: {value!r}")


def _check_token(what: str, value: str) -> None:
    if value.split() != [value]:
        raise SdpError(f"{what} must be a non-empty token without spaces: {value!r}")


def _int(what: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise SdpError(f"{what} must be a decimal number, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    port = _int("port", text)
    if port > 65535:
        raise SdpError(f"port out of range: {port}")
    return port


# --- grammar (RFC 8866 §9, RFC 4566 §9), checked once at parse time -----------------------------

_IP4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)
_DOTTED = re.compile(r"[\d.]+")
#: FQDN (RFC 8866 §9 ``FQDN``), liberal: letters, digits, '-', '.', '_' (seen in the wild)
_FQDN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_DIGITS = re.compile(r"\d+")
_BANDWIDTH = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+:\d+")
_TIMING = re.compile(r"\d+ +\d+")
#: an RTP payload type: 7 bits, 0-127 (RFC 3550 §5.1)
_PT = r"(?:12[0-7]|1[01]\d|[1-9]?\d)"
_PAYLOAD_TYPE = re.compile(_PT)
#: ``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`` (§6.6)
_RTPMAP = re.compile(rf" *{_PT} +[^\s/]+/(\d{{1,10}})(?:/(\d{{1,3}}))? *")
#: ``a=fmtp:<format> <format specific parameters>`` (§6.15)
_FMTP = re.compile(r"(\S+)(?: .*)?")
#: ``a=ptime`` / ``a=maxptime`` in milliseconds, decimal allowed (RFC 8866 §6.4, §6.5)
_PTIME = re.compile(r" *\d+(?:\.\d+)? *")
#: ``a=rtcp:<port> [<nettype> <addrtype> <connection-address>]`` (RFC 3605 §2.1)
_RTCP = re.compile(r" *(\d{1,5})(?: +(\S+ +\S+ +\S+))? *")
_MAX_CLOCK = 2**32 - 1


def _check_address(addrtype: str, address: str) -> None:
    """A unicast or multicast address valid for its ``addrtype`` (RFC 8866 §5.7, §9):
    IP4 a dotted quad or an FQDN, IP6 an IPv6 address or an FQDN; others a token."""
    if addrtype == "IP4":
        if _IP4.fullmatch(address):
            return
        if _DOTTED.fullmatch(address):  # digits and dots but no dotted quad
            raise SdpError(f"not an IP4 address: {address!r}")
    elif addrtype == "IP6":
        if ":" in address:
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                raise SdpError(f"not an IP6 address: {address!r}") from None
            return
    else:
        return
    if not _FQDN.fullmatch(address):
        raise SdpError(f"not an {addrtype} address or host name: {address!r}")


def _check_payload_type(text: str) -> None:
    if _PAYLOAD_TYPE.fullmatch(text) is None:
        raise SdpError(f"payload type must be 0-127, got {text!r}")


def _check_rtpmap(value: str) -> None:
    match = _RTPMAP.fullmatch(value)
    if match is None:
        raise SdpError("want a=rtpmap:<payload type 0-127> <encoding>/<clock rate>[/<channels>]")
    rate, channels = match.groups()
    if not 0 < int(rate) <= _MAX_CLOCK:
        raise SdpError(f"rtpmap clock rate out of range: {rate}")
    if channels is not None and int(channels) < 1:
        raise SdpError(f"rtpmap channels must be positive: {channels}")


def _check_fmtp(value: str) -> None:
    if _FMTP.fullmatch(value) is None:
        raise SdpError("want a=fmtp:<format> <parameters>")


def _check_ptime(value: str) -> None:
    if _PTIME.fullmatch(value) is None or float(value) <= 0:
        raise SdpError("want a positive number of milliseconds")


def _check_rtcp(value: str) -> None:
    match = _RTCP.fullmatch(value)
    if match is None:
        raise SdpError("want a=rtcp:<port> [<nettype> <addrtype> <address>]")
    _port(match.group(1))
    if match.group(2) is not None:
        Connection.parse(match.group(2))


#: The attributes we interpret, and their value's grammar; ``None``: a value is required.
_ATTRIBUTE_CHECKS: dict[str, Callable[[str], None]] = {
    "rtpmap": _check_rtpmap,
    "fmtp": _check_fmtp,
    "ptime": _check_ptime,
    "maxptime": _check_ptime,
    "rtcp": _check_rtcp,
}
#: Property attributes (no value) we interpret: directions (§6.7), rtcp-mux (RFC 5761).
_PROPERTY_ATTRIBUTES = frozenset({"sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux"})


def _check_attribute(name: str, value: str | None) -> None:
    """The value of an attribute we interpret follows its grammar (a property attribute has
    none); unknown ones are ignored (RFC 8866 §5.13). Called only for names in
    :data:`_INTERPRETED`, so other attributes cost one set lookup."""
    if name in _PROPERTY_ATTRIBUTES:
        if value is not None:
            raise SdpError(f"a={name} takes no value")
        return
    if value is None:
        raise SdpError(f"a={name} needs a value")
    try:
        _ATTRIBUTE_CHECKS[name](value)
    except SdpError as exc:
        raise SdpError(f"a={name}: {exc}") from None


#: every attribute name whose value is checked
_INTERPRETED = frozenset(_ATTRIBUTE_CHECKS) | _PROPERTY_ATTRIBUTES


def _check_v(value: str) -> None:
    if value != "0":
        raise SdpError(f"v= must be 0 (RFC 8866 §5.1), got {value!r}")


def _check_b(value: str) -> None:
    if _BANDWIDTH.fullmatch(value) is None:
        raise SdpError("want b=<bwtype>:<bandwidth in kbit/s>")


def _check_t(value: str) -> None:
    if _TIMING.fullmatch(value) is None:
        raise SdpError("want t=<start-time> <stop-time> (NTP seconds)")


#: Field lines whose grammar is checked (the others are kept verbatim, unchecked).
_FIELD_CHECKS: dict[str, Callable[[str], None]] = {"v": _check_v, "b": _check_b, "t": _check_t}
#: How much of a bad line an error repeats.
_QUOTE = 80


def _faithful(raw: str | None, canonical: str) -> str:
    """The received text while it says what the fields say (only spacing may differ)."""
    if raw is not None and raw.split() == canonical.split():
        return raw
    return canonical


def _addrtype_of(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


# --- lines -------------------------------------------------------------------------------------

_FIELD_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz") - frozenset("acmo")
_SESSION_ONLY = frozenset("vos")


@dataclass(frozen=True, slots=True)
class Field:
    """A line kept verbatim (RFC 4566 §5): ``v=``, ``s=``, ``t=``, ``b=``, unknown types, ..."""

    letter: str
    value: str

    def __post_init__(self) -> None:
        if self.letter not in _FIELD_LETTERS:
            raise SdpError(f"invalid line type {self.letter!r} (want a lowercase letter)")
        _check_text(f"{self.letter}= value", self.value)
        check = _FIELD_CHECKS.get(self.letter)
        if check is not None:
            check(self.value)

    def __str__(self) -> str:
        return f"{self.letter}={self.value}"


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 4566 §5.2)."""

    letter: ClassVar[str] = "o"
    username: str
    sess_id: str
    sess_version: int
    nettype: str
    addrtype: str
    address: str
    raw: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for what in ("username", "sess_id", "nettype", "addrtype", "address"):
            _check_token(f"o= {what}", getattr(self, what))
        if not _DIGITS.fullmatch(self.sess_id):
            raise SdpError(f"o= sess-id must be a decimal number, got {self.sess_id!r}")
        if self.sess_version < 0:
            raise SdpError(f"o= sess-version must not be negative: {self.sess_version}")
        _check_address(self.addrtype, self.address)
        if self.raw is not None:
            _check_text("o= text", self.raw)

    @classmethod
    def parse(cls, value: str) -> Origin:
        tokens = value.split()
        if len(tokens) != 6:
            raise SdpError(
                "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>"
            )
        user, sess_id, version, nettype, addrtype, address = tokens
        return cls(user, sess_id, _int("sess-version", version), nettype, addrtype, address, value)

    def bumped(self) -> Origin:
        """The same origin with ``sess-version`` + 1, as every changed offer needs (RFC 3264 §8)."""
        return dataclasses.replace(self, sess_version=self.sess_version + 1, raw=None)

    def canonical(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    def __str__(self) -> str:
        return f"o={_faithful(self.raw, self.canonical())}"


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (RFC 4566 §5.7).

    ``ttl`` exists only for IP4 multicast; ``count`` is the number of addresses.
    """

    letter: ClassVar[str] = "c"
    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None
    raw: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for what in ("nettype", "addrtype", "address"):
            _check_token(f"c= {what}", getattr(self, what))
        if "/" in self.address:
            raise SdpError(f"c= address must not contain '/': {self.address!r}")
        if self.ttl is not None and self.addrtype != "IP4":
            raise SdpError("c= TTL is only defined for IP4")
        if self.addrtype == "IP4" and self.count is not None and self.ttl is None:
            raise SdpError("c= IP4 address count needs a TTL before it")
        if self.ttl is not None and not 0 <= self.ttl <= 255:
            raise SdpError(f"c= TTL must be 0-255: {self.ttl}")
        if self.count is not None and self.count < 1:
            raise SdpError(f"c= number of addresses must be positive: {self.count}")
        _check_address(self.addrtype, self.address)
        if self.raw is not None:
            _check_text("c= text", self.raw)

    @classmethod
    def for_address(cls, address: str, addrtype: str | None = None) -> Connection:
        """``IN IP4``/``IN IP6`` unicast connection; the address type is guessed if not given."""
        return cls("IN", addrtype or _addrtype_of(address), address)

    @classmethod
    def parse(cls, value: str) -> Connection:
        tokens = value.split()
        if len(tokens) != 3:
            raise SdpError("c= needs <nettype> <addrtype> <connection-address>")
        nettype, addrtype, spec = tokens
        address, *extra = spec.split("/")
        numbers = [_int("c= TTL/count", x) for x in extra]
        limit = 2 if addrtype == "IP4" else 1
        if len(numbers) > limit:
            raise SdpError(f"c= address has too many '/' parts: {spec!r}")
        ttl = numbers[0] if addrtype == "IP4" and numbers else None
        count = numbers[-1] if len(numbers) == limit else None
        return cls(nettype, addrtype, address, ttl, count, value)

    @property
    def is_hold(self) -> bool:
        """``c=IN IP4 0.0.0.0``: the RFC 2543 way to say "send me nothing" (RFC 3264 §8.4)."""
        return self.addrtype == "IP4" and self.address == "0.0.0.0"

    def canonical(self) -> str:
        text = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            text += f"/{self.ttl}"
        if self.count is not None:
            text += f"/{self.count}"
        return text

    def __str__(self) -> str:
        return f"c={_faithful(self.raw, self.canonical())}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>:<value>``, or ``a=<name>`` with ``value=None`` (RFC 4566 §5.13).

    The value is kept verbatim, trailing spaces included.
    """

    letter: ClassVar[str] = "a"
    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise SdpError(f"a= name must be non-empty and without ':': {self.name!r}")
        _check_text("a= name", self.name)
        if self.value is not None:
            _check_text(f"a={self.name} value", self.value)
        if self.name in _INTERPRETED:
            _check_attribute(self.name, self.value)

    @classmethod
    def parse(cls, value: str) -> Attribute:
        name, colon, rest = value.partition(":")
        return cls(name, rest if colon else None)

    def __str__(self) -> str:
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


Line = Field | Origin | Connection | Attribute
"""One non-``m=`` line of a session or media section, in wire order."""


# --- direction ---------------------------------------------------------------------------------


class Direction(StrEnum):
    """Stream direction attributes (RFC 4566 §6, RFC 3264 §5.1), from the describer's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, *, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def mirrored(self) -> Direction:
        """What the peer does: sendonly <-> recvonly; sendrecv and inactive stay."""
        return Direction.from_flags(sends=self.receives, receives=self.sends)

    def intersect(self, other: Direction) -> Direction:
        """Send only if both allow sending, receive only if both allow receiving."""
        return Direction.from_flags(
            sends=self.sends and other.sends, receives=self.receives and other.receives
        )


_DIRECTIONS = frozenset(d.value for d in Direction)


# --- codecs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``<encoding name>/<clock rate>[/<channels>]`` of an ``a=rtpmap`` (RFC 4566 §6)."""

    encoding: str
    clock_rate: int
    channels: int = 1


STATIC_PAYLOAD_TYPES: dict[str, RtpMap] = {
    "0": RtpMap("PCMU", 8000),
    "3": RtpMap("GSM", 8000),
    "4": RtpMap("G723", 8000),
    "5": RtpMap("DVI4", 8000),
    "6": RtpMap("DVI4", 16000),
    "7": RtpMap("LPC", 8000),
    "8": RtpMap("PCMA", 8000),
    "9": RtpMap("G722", 8000),
    "10": RtpMap("L16", 44100, 2),
    "11": RtpMap("L16", 44100),
    "12": RtpMap("QCELP", 8000),
    "13": RtpMap("CN", 8000),
    "14": RtpMap("MPA", 90000),
    "15": RtpMap("G728", 8000),
    "16": RtpMap("DVI4", 11025),
    "17": RtpMap("DVI4", 22050),
    "18": RtpMap("G729", 8000),
    "25": RtpMap("CelB", 90000),
    "26": RtpMap("JPEG", 90000),
    "28": RtpMap("nv", 90000),
    "31": RtpMap("H261", 90000),
    "32": RtpMap("MPV", 90000),
    "33": RtpMap("MP2T", 90000),
    "34": RtpMap("H263", 90000),
}
"""RFC 3551 §6 tables 4 and 5: payload types usable without an ``a=rtpmap``."""


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format of an RTP stream: payload type, rtpmap and fmtp parameters."""

    payload_type: str
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """Identity across payload type numbers: encoding name (case-insensitive) and rate."""
        return (self.encoding.upper(), self.clock_rate)

    def rtpmap_value(self) -> str:
        """The ``a=rtpmap:`` value for this codec."""
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels == 1 else f"{text}/{self.channels}"


def _parse_rtpmap(value: str) -> tuple[str, RtpMap]:
    pt, _, spec = value.strip().partition(" ")
    parts = spec.strip().split("/")
    if not pt or len(parts) not in (2, 3) or not parts[0]:
        raise SdpError(f"malformed a=rtpmap:{value}")
    channels = _int("rtpmap channels", parts[2]) if len(parts) == 3 else 1
    return pt, RtpMap(parts[0], _int("rtpmap clock rate", parts[1]), channels)


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    connection: Connection | None = None

    @classmethod
    def parse(cls, value: str) -> Rtcp:
        port, _, rest = value.strip().partition(" ")
        connection = Connection.parse(rest) if rest.strip() else None
        return cls(_port(port), connection)

    @property
    def address(self) -> str | None:
        return None if self.connection is None else self.connection.address

    def value(self) -> str:
        if self.connection is None:
            return str(self.port)
        return f"{self.port} {self.connection.canonical()}"


# --- line-list helpers shared by session and media sections ------------------------------------


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

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
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
        return cls(tokens[0], _port(port), tokens[2], tuple(tokens[3:]), port_count, (), value)

    def m_line(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        canonical = " ".join((self.media, port, self.proto, *self.formats))
        return f"m={_faithful(self.raw, canonical)}"

    def __str__(self) -> str:
        return "".join(f"{text}\r\n" for text in (self.m_line(), *map(str, self.lines)))

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

    def _payload_maps(self) -> tuple[dict[str, RtpMap], dict[str, str]]:
        rtpmaps: dict[str, RtpMap] = {}
        fmtps: dict[str, str] = {}
        for attr in self.attributes:
            if attr.value is None:
                continue
            if attr.name == "rtpmap":
                pt, rtpmap = _parse_rtpmap(attr.value)
                rtpmaps.setdefault(pt, rtpmap)
            elif attr.name == "fmtp":
                pt, _, params = attr.value.strip().partition(" ")
                fmtps.setdefault(pt, params.strip())
        return rtpmaps, fmtps

    def rtpmap(self, payload_type: str) -> RtpMap | None:
        """``a=rtpmap`` of a payload type, else its RFC 3551 static mapping (RTP streams only)."""
        if not self.is_rtp:
            return None
        found = self._payload_maps()[0].get(payload_type)
        return found if found is not None else STATIC_PAYLOAD_TYPES.get(payload_type)

    def fmtp(self, payload_type: str) -> str | None:
        """The format parameters of ``a=fmtp:<payload_type> <params>`` (RFC 4566 §6)."""
        return self._payload_maps()[1].get(payload_type)

    def codecs(self) -> tuple[Codec, ...]:
        """The stream's codecs in ``m=`` order; formats with no known mapping are left out."""
        if not self.is_rtp:
            return ()
        rtpmaps, fmtps = self._payload_maps()
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
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body in one pass over its lines (LF or CRLF endings).

        Trailing empty lines are ignored. Raises :class:`SdpError` naming the bad line.
        """
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
                    media.append(MediaDescription.parse_m_line(value))
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
        return cls(tuple(session), tuple(media))

    def __str__(self) -> str:
        return "".join(f"{line}\r\n" for line in self.lines) + "".join(map(str, self.media))

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", "surrogateescape")

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
