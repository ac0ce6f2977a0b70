"""An ICE-lite agent's answers to connectivity checks (RFC 8445 §2.5, §7.3; sans-IO).

A lite agent (as a Direct Routing SBC, or the edge's media anchor) gathers only host
candidates, is always the controlled agent, never sends checks of its own, and answers the
full agent's checks on its candidates. Per RFC 8445 §7.3 and the STUN of RFC 8489 (codec:
:mod:`.stun`), :meth:`IceLite.on_stun` takes one datagram that arrived on a candidate (first
byte 0..3: STUN, RFC 7983) and returns the answer to send back to its source, and whether
the check nominates that source (the relay then sends the component's media there):

- only Binding requests are answered; indications (RFC 8445 §11 keepalives) and anything
  else are dropped silently;
- short-term credentials (RFC 8489 §9.1): USERNAME ``<our ufrag>:<their ufrag>`` (their
  ufrag checked once known from their SDP), MESSAGE-INTEGRITY keyed with our ``ice-pwd``,
  a FINGERPRINT that, when present, must be right (a bad one: dropped, §7.3 of RFC 8489);
  missing USERNAME or MESSAGE-INTEGRITY: 400; a wrong username or integrity: 401, both
  without MESSAGE-INTEGRITY (RFC 8489 §9.1.3);
- a request with ICE-CONTROLLED (the peer thinks it is controlled too): 487 Role Conflict
  (RFC 8445 §7.3.1.1; a lite agent never takes the controlling role);
- a valid check: a success answer with XOR-MAPPED-ADDRESS (the source), MESSAGE-INTEGRITY
  and FINGERPRINT; with USE-CANDIDATE the source is nominated (RFC 8445 §7.3.1.5, §8.2);
- error answers go to whatever source address a packet claims, so anyone can make the agent
  send them toward a third party: they are rate limited per agent (a token bucket of
  :data:`ERROR_BURST` answers refilled at :data:`ERROR_RATE` per second, ``now`` passed in);
  beyond it a refused check is dropped and counted in ``rate_limited``. A peer with the right
  credentials is never limited.

A STUN packet is never media: whatever the answer, the caller must not relay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .stun import (
    Attr,
    Method,
    StunClass,
    StunError,
    StunMessage,
    encode,
    encode_error_code,
    encode_xor_address,
    fingerprint_ok,
    integrity_ok,
    parse,
)

__all__ = ["ERROR_BURST", "ERROR_RATE", "IceCounters", "IceCredentials", "IceLite", "host_priority"]

Addr = tuple[str, int]

#: RFC 8445 §5.1.2.2: type preference of a host candidate, the local preference of the only one
_HOST_TYPE_PREFERENCE: Final = 126
_LOCAL_PREFERENCE: Final = 65535
_SOFTWARE: Final = b"hybridvoice"
#: RFC 8839 §5.4: ice-char, ufrag 4-256 chars, pwd 22-256 chars
#: error answers per agent: at most this many at once, refilled at ERROR_RATE per second
ERROR_BURST: Final = 20
ERROR_RATE: Final = 10.0
_ICE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")


def host_priority(component: int) -> int:
    """The priority of a host candidate of ``component`` (RFC 8445 §5.1.2.1)."""
    return (_HOST_TYPE_PREFERENCE << 24) + (_LOCAL_PREFERENCE << 8) + (256 - component)


@dataclass(frozen=True, slots=True)
class IceCredentials:
    """``a=ice-ufrag`` and ``a=ice-pwd`` (RFC 8839 §5.4)."""

    ufrag: str
    pwd: str

    def __post_init__(self) -> None:
        if not 4 <= len(self.ufrag) <= 256 or not set(self.ufrag) <= _ICE_CHARS:
            raise ValueError(f"ice-ufrag must be 4-256 ice-chars, got {self.ufrag!r}")
        if not 22 <= len(self.pwd) <= 256 or not set(self.pwd) <= _ICE_CHARS:
            raise ValueError("ice-pwd must be 22-256 ice-chars")


@dataclass(slots=True)
class IceCounters:
    """Checks answered with success, checks refused (an error answer or dropped), nominations,
    refused checks dropped unanswered by the error rate limit (counted in ``refused`` too),
    shared by the agents of one relay."""

    answered: int = 0
    refused: int = 0
    nominations: int = 0
    rate_limited: int = 0


class IceLite:
    """The answering side of one media stream's ICE (all its components)."""

    __slots__ = ("_budget", "_key", "_prefix", "_refilled", "counters", "local", "remote_ufrag",
                 "selected")  # fmt: skip

    def __init__(self, local: IceCredentials, counters: IceCounters | None = None) -> None:
        self.local = local
        self._key = local.pwd.encode()
        self._prefix = local.ufrag + ":"
        #: the peer's ufrag from its SDP (None: not known yet, any is taken)
        self.remote_ufrag: str | None = None
        self.counters = counters if counters is not None else IceCounters()
        #: component -> the source its last nominating check came from
        self.selected: dict[int, Addr] = {}
        self._budget = float(ERROR_BURST)  # error answers that may still go out
        self._refilled: float | None = None  # when the budget was last refilled

    def set_remote(self, ufrag: str | None) -> None:
        """The peer's ``a=ice-ufrag`` (a new one: an ICE restart, RFC 8445 §9)."""
        self.remote_ufrag = ufrag

    def on_stun(
        self, data: bytes, source: Addr, component: int, now: float
    ) -> tuple[bytes | None, bool]:
        """(the answer to send back to ``source`` or None, whether ``source`` is nominated);
        ``now``: a monotonic clock in seconds, for the error answers' rate limit."""
        try:
            message = parse(data)
        except StunError:
            self.counters.refused += 1
            return None, False
        if message.method != Method.BINDING or message.cls != StunClass.REQUEST:
            return None, False
        if message.has(Attr.FINGERPRINT) and not fingerprint_ok(message):
            self.counters.refused += 1
            return None, False
        try:
            username = message.text(Attr.USERNAME)
        except StunError:
            username = ""
        if username is None or not message.has(Attr.MESSAGE_INTEGRITY):
            return self._error(message, 400, "Bad Request", now), False
        ours, colon, theirs = username.partition(":")
        expected = self.remote_ufrag
        if (
            not colon
            or ours + ":" != self._prefix
            or (expected is not None and theirs != expected)
            or not integrity_ok(message, self._key)
        ):
            return self._error(message, 401, "Unauthorized", now), False
        if message.has(Attr.ICE_CONTROLLED):
            return self._error(message, 487, "Role Conflict", now, signed=True), False
        answer = StunMessage(
            Method.BINDING,
            StunClass.SUCCESS,
            message.transaction_id,
            (
                (Attr.XOR_MAPPED_ADDRESS, encode_xor_address(source, message.transaction_id)),
                (Attr.SOFTWARE, _SOFTWARE),
            ),
        )
        self.counters.answered += 1
        nominated = message.has(Attr.USE_CANDIDATE)
        if nominated:
            self.counters.nominations += 1
            self.selected[component] = source
        return encode(answer, self._key, fingerprint=True), nominated

    def _error(
        self, message: StunMessage, code: int, reason: str, now: float, *, signed: bool = False
    ) -> bytes | None:
        self.counters.refused += 1
        last = self._refilled
        self._refilled = now
        if last is not None and now > last:
            self._budget = min(float(ERROR_BURST), self._budget + (now - last) * ERROR_RATE)
        if self._budget < 1.0:
            self.counters.rate_limited += 1
            return None
        self._budget -= 1.0
        answer = StunMessage(
            Method.BINDING,
            StunClass.ERROR,
            message.transaction_id,
            ((Attr.ERROR_CODE, encode_error_code(code, reason)), (Attr.SOFTWARE, _SOFTWARE)),
        )
        return encode(answer, self._key if signed else None, fingerprint=True)
