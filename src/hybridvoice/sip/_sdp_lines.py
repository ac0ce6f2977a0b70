"""The lines of an SDP body and the grammar they are checked against (``sdp`` re-exports them).

RFC 4566 §5 (the ``<type>=<value>`` lines), §5.2 ``o=``, §5.7 ``c=``, §5.13 ``a=``; RFC 8866 §9
(the grammar, checked once at parse time); RFC 4566 §6 (``rtpmap``, ``fmtp``, ``ptime``, the
direction attributes); RFC 3551 §6 (static payload types); RFC 3605 (``a=rtcp``); RFC 5761
(``a=rtcp-mux``). Constants only: no module state.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, Final

from ._sdp_write import faithful as _faithful


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
_ATTRIBUTE_CHECKS: Final[Mapping[str, Callable[[str], None]]] = MappingProxyType(
    {
        "rtpmap": _check_rtpmap,
        "fmtp": _check_fmtp,
        "ptime": _check_ptime,
        "maxptime": _check_ptime,
        "rtcp": _check_rtcp,
    }
)
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
_FIELD_CHECKS: Final[Mapping[str, Callable[[str], None]]] = MappingProxyType(
    {
        "v": _check_v,
        "b": _check_b,
        "t": _check_t,
    }
)
#: How much of a bad line an error repeats.
_QUOTE = 80


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


STATIC_PAYLOAD_TYPES: Final[Mapping[str, RtpMap]] = MappingProxyType(
    {
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
)
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


def payload_maps(attributes: Iterable[Attribute]) -> tuple[dict[str, RtpMap], dict[str, str]]:
    """The ``a=rtpmap`` and ``a=fmtp`` of a section by payload type, the first of each kept."""
    rtpmaps: dict[str, RtpMap] = {}
    fmtps: dict[str, str] = {}
    for attr in attributes:
        if attr.value is None:
            continue
        if attr.name == "rtpmap":
            pt, rtpmap = _parse_rtpmap(attr.value)
            rtpmaps.setdefault(pt, rtpmap)
        elif attr.name == "fmtp":
            pt, _, params = attr.value.strip().partition(" ")
            fmtps.setdefault(pt, params.strip())
    return rtpmaps, fmtps


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
