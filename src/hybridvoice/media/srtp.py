"""SDES-SRTP: the ``a=crypto`` attribute (RFC 4568) and per-direction SRTP contexts (RFC 3711).

- :class:`CryptoAttribute` parses and writes ``a=crypto:<tag> <suite> inline:<key||salt>
  [|lifetime][|MKI:length]`` (RFC 4568 §9.1, §6.1). Two suites are supported:
  ``AES_CM_128_HMAC_SHA1_80`` (what Direct Routing requires) and ``AES_CM_128_HMAC_SHA1_32``
  (RFC 4568 §6.2.1, §6.2.2): a 16-byte master key and a 14-byte master salt, base64 together.
  Anything we cannot honour (another suite, several keys, session parameters, an MKI, a
  lifetime over 2^48 packets) raises :class:`CryptoError` naming the field and the reason;
  :func:`pick_crypto` skips such lines and takes the first usable one (RFC 4568 §7.1.1).
- :func:`generate_crypto` makes our own key from an injected random source (RFC 4568 §6.1: a
  fresh key per direction and per session, never reused).
- :class:`SrtpStream` protects or unprotects one direction with libsrtp (``pylibsrtp``),
  SRTP and SRTCP alike (RFC 3711 §3.3, §3.4). A packet that fails authentication or the
  replay check (§3.3.2) is counted and dropped (``None``), never raised to the call.

Sans-IO: bytes in, bytes out; the caller owns the sockets.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import pylibsrtp

from .errors import MediaError

__all__ = [
    "KEY_SALT_LENGTH",
    "CryptoAttribute",
    "CryptoError",
    "CryptoSuite",
    "LegCrypto",
    "SrtpStream",
    "generate_crypto",
    "pick_crypto",
]

#: 128-bit master key + 112-bit master salt (RFC 3711 §8.2, RFC 4568 §6.2.1).
KEY_SALT_LENGTH: Final = 30
#: The longest lifetime libsrtp honours: 2^48 SRTP packets (RFC 3711 §9.2).
_MAX_LIFETIME: Final = 1 << 48
_TAG: Final = re.compile(r"[0-9]{1,9}")
_DIGITS: Final = re.compile(r"[0-9]+")
_AUTH_FAILURE: Final = "authentication failure"
_REPLAY: Final = "replay check failed"


class CryptoError(MediaError, ValueError):
    """An ``a=crypto`` line we cannot use; the message names the field and why."""


class CryptoSuite(enum.StrEnum):
    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"

    @property
    def profile(self) -> int:
        if self is CryptoSuite.AES_CM_128_HMAC_SHA1_80:
            return int(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        return int(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32)


def _suite(text: str) -> CryptoSuite:
    try:
        return CryptoSuite(text)
    except ValueError:
        names = ", ".join(s.value for s in CryptoSuite)
        raise CryptoError(f"a=crypto suite {text!r} is not supported (use {names})") from None


def _lifetime(text: str) -> int:
    power = text.startswith("2^")
    digits = text[2:] if power else text
    if not _DIGITS.fullmatch(digits):
        raise CryptoError(f"a=crypto lifetime {text!r} is not a number or 2^n")
    value = int(digits)
    if power:
        if value > 48:
            raise CryptoError(f"a=crypto lifetime {text!r} exceeds 2^48 packets (RFC 3711 §9.2)")
        value = 1 << value
    elif value > _MAX_LIFETIME:
        raise CryptoError(f"a=crypto lifetime {text!r} exceeds 2^48 packets (RFC 3711 §9.2)")
    if value < 1:
        raise CryptoError(f"a=crypto lifetime {text!r} must be positive")
    return value


def _mki(text: str) -> tuple[int, int]:
    value, _, length = text.partition(":")
    if not (_DIGITS.fullmatch(value) and _DIGITS.fullmatch(length)):
        raise CryptoError(f"a=crypto MKI {text!r} is not <value>:<length>")
    if not 1 <= int(length) <= 128:
        raise CryptoError(f"a=crypto MKI length {length} is not 1-128 (RFC 4568 §6.1)")
    return int(value), int(length)


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One ``a=crypto`` line (RFC 4568 §9.1) with a single inline key and no MKI."""

    tag: int
    suite: CryptoSuite
    key: bytes  # master key || master salt, 30 bytes
    lifetime: int | None = None  # packets (2^n written as such)

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= 999_999_999:
            raise CryptoError(f"a=crypto tag {self.tag} is not 1-9 digits")
        if len(self.key) != KEY_SALT_LENGTH:
            raise CryptoError(
                f"a=crypto key is {len(self.key)} bytes, {self.suite} needs "
                f"{KEY_SALT_LENGTH} (16-byte key + 14-byte salt)"
            )

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """The value of an ``a=crypto`` attribute (after ``crypto:``)."""
        fields = value.split()
        if len(fields) < 3:
            raise CryptoError(f"a=crypto needs '<tag> <suite> inline:<key>', got {value!r}")
        tag_text, suite_text, key_params, *session = fields
        if not _TAG.fullmatch(tag_text):
            raise CryptoError(f"a=crypto tag {tag_text!r} is not 1-9 digits")
        suite = _suite(suite_text)
        if session:
            raise CryptoError(f"a=crypto session parameters {' '.join(session)!r} not supported")
        if ";" in key_params:
            raise CryptoError("a=crypto with several keys is not supported (one inline key)")
        method, _, inline = key_params.partition(":")
        if method != "inline" or not inline:
            raise CryptoError(f"a=crypto key method {method!r} is not 'inline'")
        key_text, *params = inline.split("|")
        if len(params) > 2:
            raise CryptoError(f"a=crypto key parameters {inline!r}: too many '|' fields")
        lifetime = None
        for param in params:
            if ":" in param:
                _mki(param)  # a well-formed MKI: still refused (we send no MKI)
                raise CryptoError(f"a=crypto MKI {param!r} is not supported")
            if lifetime is not None:
                raise CryptoError(f"a=crypto key parameters {inline!r}: two lifetimes")
            lifetime = _lifetime(param)
        try:
            key = base64.b64decode(key_text, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError(f"a=crypto key {key_text!r} is not base64") from None
        return cls(int(tag_text), suite, key, lifetime)

    def __str__(self) -> str:
        key = base64.b64encode(self.key).decode("ascii")
        text = f"{self.tag} {self.suite.value} inline:{key}"
        if self.lifetime is not None:
            bits = self.lifetime.bit_length() - 1
            power = self.lifetime == 1 << bits
            text += f"|2^{bits}" if power else f"|{self.lifetime}"
        return text


def generate_crypto(
    random_bytes: Callable[[int], bytes],
    tag: int = 1,
    suite: CryptoSuite = CryptoSuite.AES_CM_128_HMAC_SHA1_80,
) -> CryptoAttribute:
    """A fresh key from ``random_bytes`` (``os.urandom`` or ``secrets.token_bytes`` in
    production, a seeded source in tests)."""
    return CryptoAttribute(tag, suite, bytes(random_bytes(KEY_SALT_LENGTH)))


def pick_crypto(values: Iterable[str]) -> tuple[CryptoAttribute | None, list[str]]:
    """The first usable ``a=crypto`` value and the reasons the others before it were not."""
    reasons: list[str] = []
    for value in values:
        try:
            return CryptoAttribute.parse(value), reasons
        except CryptoError as exc:
            reasons.append(str(exc))
    return None, reasons


@dataclass(frozen=True, slots=True)
class LegCrypto:
    """The SDES keys of one relay leg: ``recv`` decrypts what the far end sends (its own
    ``a=crypto``), ``send`` encrypts what we send it (the ``a=crypto`` we gave it)."""

    recv: CryptoAttribute
    send: CryptoAttribute


class SrtpStream:
    """One direction of SRTP/SRTCP (any SSRC): ``outbound`` protects, else unprotects.

    ``auth_failures``, ``replays`` and ``errors`` count the packets dropped for each reason.
    """

    __slots__ = (
        "_rtcp", "_rtp", "auth_failures", "errors", "last_error", "outbound", "replays", "suite",
    )  # fmt: skip

    def __init__(self, crypto: CryptoAttribute, *, outbound: bool) -> None:
        policy = pylibsrtp.Policy(key=crypto.key, srtp_profile=crypto.suite.profile)
        if outbound:
            policy.ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND
            policy.allow_repeat_tx = True  # a retransmitted packet is not a replay we make
        else:
            policy.ssrc_type = pylibsrtp.Policy.SSRC_ANY_INBOUND
        session = pylibsrtp.Session(policy)
        # the direction's two calls, bound once (the relay calls them per packet)
        self._rtp = session.protect if outbound else session.unprotect
        self._rtcp = session.protect_rtcp if outbound else session.unprotect_rtcp
        self.outbound = outbound
        self.suite = crypto.suite
        self.auth_failures = 0
        self.replays = 0
        self.errors = 0
        self.last_error = ""  # libsrtp's words for the last dropped packet

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        if reason == _AUTH_FAILURE:
            self.auth_failures += 1
        elif reason.startswith(_REPLAY):
            self.replays += 1
        else:
            self.errors += 1

    def rtp(self, packet: bytes) -> bytes | None:
        """Protect (outbound) or unprotect an RTP/SRTP packet; None: dropped and counted."""
        try:
            return self._rtp(packet)
        except pylibsrtp.Error as exc:
            self._failed(str(exc))
        except ValueError as exc:  # too long for libsrtp's buffer
            self._failed(str(exc))
        return None

    def rtcp(self, packet: bytes) -> bytes | None:
        """The same for RTCP/SRTCP (RFC 3711 §3.4)."""
        try:
            return self._rtcp(packet)
        except pylibsrtp.Error as exc:
            self._failed(str(exc))
        except ValueError as exc:
            self._failed(str(exc))
        return None
