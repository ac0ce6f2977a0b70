"""STUN message codec (RFC 8489) with the TURN attributes (RFC 8656 §18) and ChannelData.

- Header (RFC 8489 §5): two zero bits, a 14-bit message type packing a 12-bit method and a
  2-bit class, a length counting the attributes, the magic cookie ``0x2112A442`` and a 96-bit
  transaction id. Attributes (§14) are type-length-value, each padded to 4 octets; padding
  octets are ignored when parsing (RFC 5769 uses spaces) and written as zeros.
- MESSAGE-INTEGRITY (§14.5, HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256 (§14.6) are computed over
  the message up to the attribute with the header length set to end just after it;
  attributes after them are ignored, except each other and FINGERPRINT (§14.7: CRC-32 of the
  message before it, XOR ``0x5354554e``), which must be the last attribute.
- Long-term credentials (§9.2.2): key = MD5(username ":" realm ":" password). The inputs are
  used as given (no OpaqueString/SASLprep mapping, as coturn does for ASCII credentials).
- Address attributes (§14.1, §14.2): MAPPED-ADDRESS, and XOR-MAPPED/XOR-PEER/XOR-RELAYED-ADDRESS
  with the port XOR the cookie's high half and the address XOR the cookie (IPv4) or the
  cookie and the transaction id (IPv6).
- ChannelData (RFC 8656 §12.4): a channel number, a length, the data; over UDP the datagram
  may carry padding after the data, which is ignored. RFC 8656 clients pick channels in
  0x4000-0x4FFF; RFC 5766 allowed 0x4000-0x7FFF and coturn's clients still use that range, so
  the codec takes any number whose first two bits are 01 (RFC 8656 §12, demultiplexing) and
  the server decides which range it binds.

Parsing is strict: anything malformed raises :class:`StunError` (a
:class:`~hybridvoice.media.errors.MediaParseError`), never another exception.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import types
import zlib
from dataclasses import dataclass, field
from typing import Final

from .errors import MediaParseError

__all__ = [
    "ATTRIBUTE_NAMES",
    "CHANNEL_MAX",
    "CHANNEL_MIN",
    "LEGACY_CHANNEL_MAX",
    "MAGIC_COOKIE",
    "Attr",
    "Method",
    "StunClass",
    "StunError",
    "StunMessage",
    "channel_data",
    "decode_address",
    "decode_error_code",
    "decode_unknown_attributes",
    "decode_xor_address",
    "encode",
    "encode_address",
    "encode_error_code",
    "encode_unknown_attributes",
    "encode_xor_address",
    "fingerprint_ok",
    "integrity_ok",
    "is_channel_data",
    "is_stun",
    "long_term_key",
    "parse",
    "parse_channel_data",
]

MAGIC_COOKIE: Final = 0x2112A442
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
_FINGERPRINT_XOR: Final = 0x5354554E
HEADER_SIZE: Final = 20
CHANNEL_MIN: Final = 0x4000
CHANNEL_MAX: Final = 0x4FFF
#: The upper end of the RFC 5766 channel range (first two bits 01).
LEGACY_CHANNEL_MAX: Final = 0x7FFF

_HEADER: Final = struct.Struct("!HHI12s")
_TLV: Final = struct.Struct("!HH")
_U32: Final = struct.Struct("!I")
_FAMILY_V4: Final = 0x01
_FAMILY_V6: Final = 0x02

Addr = tuple[str, int]


class StunError(MediaParseError):
    """Bytes that are not a valid STUN message, attribute or ChannelData frame."""


class Method:
    """STUN/TURN methods (RFC 8489 §18.2, RFC 8656 §17)."""

    BINDING: Final = 0x001
    ALLOCATE: Final = 0x003
    REFRESH: Final = 0x004
    SEND: Final = 0x006
    DATA: Final = 0x007
    CREATE_PERMISSION: Final = 0x008
    CHANNEL_BIND: Final = 0x009


class StunClass:
    """The message classes (RFC 8489 §5)."""

    REQUEST: Final = 0
    INDICATION: Final = 1
    SUCCESS: Final = 2
    ERROR: Final = 3


class Attr:
    """Attribute types (RFC 8489 §18.3, RFC 8656 §18, RFC 8445 §16.1)."""

    MAPPED_ADDRESS: Final = 0x0001
    USERNAME: Final = 0x0006
    MESSAGE_INTEGRITY: Final = 0x0008
    ERROR_CODE: Final = 0x0009
    UNKNOWN_ATTRIBUTES: Final = 0x000A
    CHANNEL_NUMBER: Final = 0x000C
    LIFETIME: Final = 0x000D
    XOR_PEER_ADDRESS: Final = 0x0012
    DATA: Final = 0x0013
    REALM: Final = 0x0014
    NONCE: Final = 0x0015
    XOR_RELAYED_ADDRESS: Final = 0x0016
    REQUESTED_ADDRESS_FAMILY: Final = 0x0017
    EVEN_PORT: Final = 0x0018
    REQUESTED_TRANSPORT: Final = 0x0019
    DONT_FRAGMENT: Final = 0x001A
    MESSAGE_INTEGRITY_SHA256: Final = 0x001C
    PASSWORD_ALGORITHM: Final = 0x001D
    USERHASH: Final = 0x001E
    XOR_MAPPED_ADDRESS: Final = 0x0020
    RESERVATION_TOKEN: Final = 0x0022
    PRIORITY: Final = 0x0024
    USE_CANDIDATE: Final = 0x0025
    PASSWORD_ALGORITHMS: Final = 0x8002
    ALTERNATE_DOMAIN: Final = 0x8003
    SOFTWARE: Final = 0x8022
    ALTERNATE_SERVER: Final = 0x8023
    FINGERPRINT: Final = 0x8028
    ICE_CONTROLLED: Final = 0x8029
    ICE_CONTROLLING: Final = 0x802A


ATTRIBUTE_NAMES: Final = tuple(
    (value, name) for name, value in vars(Attr).items() if isinstance(value, int)
)

#: Attributes whose value has a fixed size: a wrong size is a malformed message.
_FIXED_SIZES: Final = (
    (Attr.MESSAGE_INTEGRITY, 20),
    (Attr.FINGERPRINT, 4),
    (Attr.LIFETIME, 4),
    (Attr.CHANNEL_NUMBER, 4),
    (Attr.REQUESTED_TRANSPORT, 4),
    (Attr.REQUESTED_ADDRESS_FAMILY, 4),
    (Attr.EVEN_PORT, 1),
    (Attr.DONT_FRAGMENT, 0),
    (Attr.RESERVATION_TOKEN, 8),
)
_SIZE_OF: Final = types.MappingProxyType(dict(_FIXED_SIZES))


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A STUN message: method, class, transaction id and attributes in wire order.

    ``attributes`` holds raw values as ``(type, value)``; the typed helpers below decode them.
    A parsed message keeps its bytes and attribute offsets (not compared) to check
    MESSAGE-INTEGRITY and FINGERPRINT.
    """

    method: int
    cls: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    offsets: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.method <= 0xFFF:
            raise StunError(f"method {self.method:#x} out of range")
        if not 0 <= self.cls <= 3:
            raise StunError(f"class {self.cls} out of range")
        if len(self.transaction_id) != 12:
            raise StunError("transaction id must be 12 bytes")
        for kind, value in self.attributes:
            if not 0 <= kind <= 0xFFFF or len(value) > 0xFFFF:
                raise StunError(f"attribute {kind:#x} out of range")

    def get(self, kind: int) -> bytes | None:
        """The value of the first attribute of type ``kind``, or None."""
        for k, value in self.attributes:
            if k == kind:
                return value
        return None

    def get_all(self, kind: int) -> list[bytes]:
        return [value for k, value in self.attributes if k == kind]

    def has(self, kind: int) -> bool:
        return any(k == kind for k, _ in self.attributes)

    def text(self, kind: int) -> str | None:
        """A UTF-8 attribute (USERNAME, REALM, NONCE, SOFTWARE); StunError if not UTF-8."""
        value = self.get(kind)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StunError(f"attribute {kind:#x} is not UTF-8") from exc

    def uint32(self, kind: int) -> int | None:
        """A 32-bit attribute (LIFETIME)."""
        value = self.get(kind)
        return None if value is None else int(_U32.unpack(value)[0]) if len(value) == 4 else None

    def xor_address(self, kind: int) -> Addr | None:
        value = self.get(kind)
        return None if value is None else decode_xor_address(value, self.transaction_id)

    def error_code(self) -> tuple[int, str] | None:
        value = self.get(Attr.ERROR_CODE)
        return None if value is None else decode_error_code(value)


def _message_type(method: int, cls: int) -> int:
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 1) << 4)
        | ((cls & 2) << 7)
    )


def _split_type(kind: int) -> tuple[int, int]:
    method = (kind & 0x000F) | ((kind & 0x00E0) >> 1) | ((kind & 0x3E00) >> 2)
    cls = ((kind & 0x0010) >> 4) | ((kind & 0x0100) >> 7)
    return method, cls


def is_stun(data: bytes) -> bool:
    """Whether ``data`` looks like STUN (first two bits zero and the magic cookie)."""
    return len(data) >= HEADER_SIZE and data[0] < 0x40 and data[4:8] == _COOKIE_BYTES


def is_channel_data(data: bytes) -> bool:
    """Whether ``data`` starts like ChannelData (first two bits 01, RFC 8656 §12)."""
    return len(data) >= 4 and data[0] & 0xC0 == 0x40


def parse(data: bytes) -> StunMessage:
    """Parse one STUN message that fills ``data`` exactly (one UDP datagram)."""
    if len(data) < HEADER_SIZE:
        raise StunError(f"{len(data)} bytes: shorter than a STUN header")
    kind, length, cookie, tid = _HEADER.unpack_from(data)
    if kind & 0xC000:
        raise StunError("the first two bits of a STUN message must be zero")
    if cookie != MAGIC_COOKIE:
        raise StunError("no magic cookie")
    if length % 4:
        raise StunError(f"message length {length} is not a multiple of 4")
    if HEADER_SIZE + length != len(data):
        raise StunError(f"message length {length} does not match {len(data) - HEADER_SIZE}")
    attributes: list[tuple[int, bytes]] = []
    offsets: list[int] = []
    pos = HEADER_SIZE
    end = len(data)
    integrity_seen = False
    while pos < end:
        if pos + 4 > end:
            raise StunError("truncated attribute header")
        atype, alen = _TLV.unpack_from(data, pos)
        stop = pos + 4 + alen
        if pos + 4 + ((alen + 3) & ~3) > end:
            raise StunError(f"attribute {atype:#x} runs past the message")
        size = _SIZE_OF.get(atype)
        if size is not None and size != alen:
            raise StunError(f"attribute {atype:#x} has length {alen}, expected {size}")
        if atype == Attr.MESSAGE_INTEGRITY_SHA256 and (alen < 16 or alen > 32 or alen % 4):
            raise StunError(f"MESSAGE-INTEGRITY-SHA256 of length {alen}")
        if atype == Attr.FINGERPRINT and stop != end:
            raise StunError("FINGERPRINT is not the last attribute")
        if not integrity_seen or atype in _AFTER_INTEGRITY:
            attributes.append((atype, bytes(data[pos + 4 : stop])))
            offsets.append(pos)
        if atype in (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256):
            integrity_seen = True
        pos += 4 + ((alen + 3) & ~3)
    method, cls = _split_type(kind)
    return StunMessage(method, cls, tid, tuple(attributes), bytes(data), tuple(offsets))


_AFTER_INTEGRITY: Final = frozenset(
    {Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT}
)


def encode(
    message: StunMessage,
    key: bytes | None = None,
    *,
    sha256: bool = False,
    fingerprint: bool = False,
    pad: bytes = b"\x00",
) -> bytes:
    """The bytes of ``message``, then MESSAGE-INTEGRITY(-SHA256) with ``key`` and FINGERPRINT.

    ``message.attributes`` must not hold the integrity or fingerprint attributes themselves.
    ``pad`` is the padding octet (zero; RFC 5769's vectors use a space).
    """
    parts = [b""]
    size = 0
    for kind, value in message.attributes:
        chunk = _TLV.pack(kind, len(value)) + value + pad * (-len(value) % 4)
        parts.append(chunk)
        size += len(chunk)
    kind = _message_type(message.method, message.cls)
    body = b"".join(parts)
    if key is not None:
        mac_len = 32 if sha256 else 20
        atype = Attr.MESSAGE_INTEGRITY_SHA256 if sha256 else Attr.MESSAGE_INTEGRITY
        size += 4 + mac_len
        head = _HEADER.pack(kind, size, MAGIC_COOKIE, message.transaction_id)
        digest = hashlib.sha256 if sha256 else hashlib.sha1
        mac = hmac.new(key, head + body, digest).digest()
        body += _TLV.pack(atype, mac_len) + mac
    if fingerprint:
        size += 8
        head = _HEADER.pack(kind, size, MAGIC_COOKIE, message.transaction_id)
        crc = zlib.crc32(head + body) ^ _FINGERPRINT_XOR
        body += _TLV.pack(Attr.FINGERPRINT, 4) + _U32.pack(crc)
    return _HEADER.pack(kind, size, MAGIC_COOKIE, message.transaction_id) + body


def _offset_of(message: StunMessage, kind: int) -> int | None:
    for (k, _), offset in zip(message.attributes, message.offsets, strict=True):
        if k == kind:
            return offset
    return None


def integrity_ok(message: StunMessage, key: bytes) -> bool:
    """Whether the parsed ``message`` carries a MESSAGE-INTEGRITY-SHA256 or MESSAGE-INTEGRITY
    (SHA-256 preferred when both, RFC 8489 §14.6) valid for ``key``; False when it has none."""
    for kind, digest in (
        (Attr.MESSAGE_INTEGRITY_SHA256, hashlib.sha256),
        (Attr.MESSAGE_INTEGRITY, hashlib.sha1),
    ):
        offset = _offset_of(message, kind)
        if offset is None:
            continue
        raw = message.raw
        mac_len = _TLV.unpack_from(raw, offset)[1]
        head = raw[:2] + struct.pack("!H", offset + 4 + mac_len - HEADER_SIZE) + raw[4:HEADER_SIZE]
        expected = hmac.new(key, head + raw[HEADER_SIZE:offset], digest).digest()[:mac_len]
        return hmac.compare_digest(expected, raw[offset + 4 : offset + 4 + mac_len])
    return False


def fingerprint_ok(message: StunMessage) -> bool:
    """Whether the parsed ``message`` ends with a correct FINGERPRINT (False when none)."""
    offset = _offset_of(message, Attr.FINGERPRINT)
    if offset is None:
        return False
    raw = message.raw
    expected = zlib.crc32(raw[:offset]) ^ _FINGERPRINT_XOR
    return bool(_U32.unpack_from(raw, offset + 4)[0] == expected)


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """The long-term credential key, MD5(username:realm:password) (RFC 8489 §9.2.2)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).digest()


def _pack_ip(host: str) -> tuple[int, bytes]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise StunError(f"not an IP address: {host!r}") from exc
    return (_FAMILY_V4 if ip.version == 4 else _FAMILY_V6), ip.packed


def _unpack_ip(family: int, packed: bytes) -> str:
    if family == _FAMILY_V4 and len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    if family == _FAMILY_V6 and len(packed) == 16:
        return str(ipaddress.IPv6Address(packed))
    raise StunError(f"address family {family} with {len(packed)} address bytes")


def encode_address(addr: Addr) -> bytes:
    """MAPPED-ADDRESS value (RFC 8489 §14.1)."""
    family, packed = _pack_ip(addr[0])
    return struct.pack("!BBH", 0, family, addr[1]) + packed


def decode_address(value: bytes) -> Addr:
    if len(value) < 4:
        raise StunError("address attribute shorter than 4 bytes")
    family, port = value[1], int.from_bytes(value[2:4], "big")
    return _unpack_ip(family, value[4:]), port


def _xor_mask(length: int, transaction_id: bytes) -> bytes:
    return (_COOKIE_BYTES + transaction_id)[:length]


def encode_xor_address(addr: Addr, transaction_id: bytes) -> bytes:
    """XOR-MAPPED/XOR-PEER/XOR-RELAYED-ADDRESS value (RFC 8489 §14.2)."""
    family, packed = _pack_ip(addr[0])
    mask = _xor_mask(len(packed), transaction_id)
    xored = bytes(a ^ b for a, b in zip(packed, mask, strict=True))
    return struct.pack("!BBH", 0, family, addr[1] ^ (MAGIC_COOKIE >> 16)) + xored


def decode_xor_address(value: bytes, transaction_id: bytes) -> Addr:
    if len(value) < 4:
        raise StunError("address attribute shorter than 4 bytes")
    family = value[1]
    port = int.from_bytes(value[2:4], "big") ^ (MAGIC_COOKIE >> 16)
    packed = value[4:]
    if len(packed) not in (4, 16):
        raise StunError(f"address of {len(packed)} bytes")
    mask = _xor_mask(len(packed), transaction_id)
    return _unpack_ip(family, bytes(a ^ b for a, b in zip(packed, mask, strict=True))), port


def encode_error_code(code: int, reason: str) -> bytes:
    """ERROR-CODE value (RFC 8489 §14.8): class and number, then a UTF-8 reason."""
    if not 300 <= code <= 699:
        raise StunError(f"error code {code} out of range")
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode()


def decode_error_code(value: bytes) -> tuple[int, str]:
    if len(value) < 4:
        raise StunError("ERROR-CODE shorter than 4 bytes")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise StunError(f"bad error code {klass}{number:02d}")
    try:
        reason = value[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StunError("ERROR-CODE reason is not UTF-8") from exc
    return klass * 100 + number, reason


def encode_unknown_attributes(kinds: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack("!H", k) for k in kinds)


def decode_unknown_attributes(value: bytes) -> tuple[int, ...]:
    if len(value) % 2:
        raise StunError("UNKNOWN-ATTRIBUTES of odd length")
    return tuple(int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2))


def channel_data(channel: int, data: bytes) -> bytes:
    """A ChannelData frame (RFC 8656 §12.4), unpadded (as sent over UDP)."""
    if not CHANNEL_MIN <= channel <= LEGACY_CHANNEL_MAX or len(data) > 0xFFFF:
        raise StunError(f"channel {channel:#x} or length {len(data)} out of range")
    return _TLV.pack(channel, len(data)) + data


def parse_channel_data(data: bytes) -> tuple[int, bytes]:
    """``(channel, data)`` of one ChannelData datagram; trailing padding is ignored."""
    if len(data) < 4:
        raise StunError("ChannelData shorter than 4 bytes")
    channel, length = _TLV.unpack_from(data)
    if not CHANNEL_MIN <= channel <= LEGACY_CHANNEL_MAX:
        raise StunError(f"channel number {channel:#x} out of range")
    if 4 + length > len(data):
        raise StunError(f"ChannelData length {length} past the datagram")
    return channel, bytes(data[4 : 4 + length])
