"""The vocabulary of INVITE sessions (``session``): states, triggers and the one transition
table, end causes, the actions for the endpoint, the call-control events for the
application, and the session's configuration.

RFC 3261 §13 (INVITE session states), §9.1 (CANCEL as ``SendCancel``), §13.3.1.4 (the 2xx
retransmission timers T1/T2), §14.1 (re-INVITE offers and their rejection); RFC 4028 §4/§5
(Session-Expires and Min-SE wishes in ``SessionConfig``). Import these names from
``hybridvoice.sip.session``, which re-exports them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, TypedDict

from ._tables import TableKey, frozen_table
from .errors import LocalProtocolError
from .message import Message, Request, Response
from .refer import Refer, ReferNotify, ReferResult
from .sdp import SdpError, SessionDescription

__all__ = [
    "CAPABILITIES", "SDP", "SETUP", "TRANSITIONS", "Action", "Answered", "CallEvent", "Cause",
    "Confirmed", "Disconnected", "EarlyMedia", "Event", "Offer", "OfferAnswered",
    "OfferRejected", "Refer", "ReferNotify", "ReferResult", "Ringing", "Role", "SendCancel",
    "SendRequest", "SendResponse", "SessionConfig", "Side", "State", "Trigger",
]  # fmt: skip


class State(TableKey):
    """PJSIP's INVITE session states."""

    NULL = "null"
    CALLING = "calling"  # UAC: INVITE sent
    INCOMING = "incoming"  # UAS: INVITE received
    EARLY = "early"  # a 1xx sent or received
    CONNECTING = "connecting"  # 2xx sent or received, not yet acknowledged
    CONFIRMED = "confirmed"  # ACK sent or received
    DISCONNECTED = "disconnected"


class Trigger(TableKey):
    """What moves a session from one state to the next (``TRANSITIONS``)."""

    SEND_INVITE = "send INVITE"
    RECV_INVITE = "receive INVITE"
    PROVISIONAL = "1xx"
    ACCEPTED = "2xx"
    ACKED = "ACK"
    FAILED = "INVITE failed"  # final non-2xx, CANCEL, BYE in an early dialog
    ENDED = "session ended"  # BYE, no ACK, session expired, 481/408


_T, _S = Trigger, State
_SETTING_UP: Final[Mapping[Trigger, State]] = MappingProxyType(
    {
        _T.PROVISIONAL: _S.EARLY,
        _T.ACCEPTED: _S.CONNECTING,
        _T.FAILED: _S.DISCONNECTED,
    }
)
#: Every transition of an INVITE session, and only these.
TRANSITIONS: Final[Mapping[State, Mapping[Trigger, State]]] = frozen_table(
    {
        _S.NULL: {_T.SEND_INVITE: _S.CALLING, _T.RECV_INVITE: _S.INCOMING},
        _S.CALLING: _SETTING_UP,
        _S.INCOMING: _SETTING_UP,
        _S.EARLY: _SETTING_UP,
        _S.CONNECTING: {_T.ACKED: _S.CONFIRMED, _T.ENDED: _S.DISCONNECTED},
        _S.CONFIRMED: {_T.ENDED: _S.DISCONNECTED},
        _S.DISCONNECTED: {},
    }
)


SETUP: Final = frozenset({State.CALLING, State.INCOMING, State.EARLY})
SDP: Final = "application/sdp"
_ALLOW: Final = "INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS, REFER, NOTIFY"
#: what our requests and 2xx say we can do (§20.5 Allow, RFC 4028 §3 Supported: timer)
CAPABILITIES: Final = (("Allow", _ALLOW), ("Supported", "timer"))


def has_token(message: Message, header: str, token: str) -> bool:
    return token.lower() in (v.lower() for v in message.headers.values(header))


def allow_of(message: Message) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in message.headers.values("Allow"))


class _Body(TypedDict):
    body: bytes
    content_type: str | None


def body(sdp: bytes | None) -> _Body:
    """Keyword arguments putting ``sdp`` (or nothing) in a message."""
    return {"body": sdp or b"", "content_type": SDP if sdp else None}


class Role(TableKey):
    UAC = "uac"
    UAS = "uas"


class Cause(enum.StrEnum):
    """Why a session ended (``Disconnected.cause``)."""

    NORMAL = "normal"  # BYE (§15)
    REJECTED = "rejected"  # a 3xx-6xx final response (§13.2.2.3)
    CANCELLED = "cancelled"  # CANCEL (§9)
    TIMEOUT = "timeout"  # 408 or no response (§12.2.1.2)
    NO_ACK = "no-ack"  # the 2xx was never acknowledged (§13.3.1.4)
    SESSION_EXPIRED = "session-expired"  # no refresh in time (RFC 4028 §10)
    DIALOG_GONE = "dialog-gone"  # 481 to an in-dialog request (§12.2.1.2)


Side = Literal["local", "remote"]


# --- outputs: actions for the endpoint ----------------------------------------------------
# Slotted dataclasses, read-only by contract but not frozen (as the UA core's actions): one is
# built for every message a session sends, and a frozen __init__ pays object.__setattr__ per
# field.


@dataclass(slots=True)
class SendRequest:
    """Send ``request``: an ACK outside any transaction, others in a client transaction."""

    request: Request


@dataclass(slots=True)
class SendCancel:
    """Cancel the client transaction of ``invite`` (§9.1)."""

    invite: Request


@dataclass(slots=True)
class SendResponse:
    """Send ``response`` in the server transaction of ``for_request``."""

    response: Response
    for_request: Request

    def __post_init__(self) -> None:
        cseq = self.response.cseq
        if cseq is not None and cseq.method != self.for_request.method:
            raise LocalProtocolError("a response must answer a request of its method")


# --- outputs: call-control events for the application ----------------------------------------
class _Unparsed(enum.Enum):
    TOKEN = "not parsed yet"


@dataclass(frozen=True, slots=True)
class _Described:
    """An event carrying an SDP body: ``sdp`` the bytes as they arrived, ``description`` the
    same parsed (RFC 4566) at most once, on first use, and kept in the event: every reader
    shares that one parse, and one that reads only the bytes costs none."""

    _description: SessionDescription | _Unparsed | None = field(
        default=_Unparsed.TOKEN, init=False, compare=False, repr=False
    )

    @property
    def description(self) -> SessionDescription | None:
        """The SDP parsed; None without a body or when it is not valid SDP (the bytes stay
        in ``sdp`` either way: what a bad body means is the application's call)."""
        parsed = self._description
        if parsed is _Unparsed.TOKEN:
            parsed = _parse(getattr(self, "sdp", None))
            object.__setattr__(self, "_description", parsed)  # a cache of a pure function
        return parsed


def _parse(sdp: bytes | None) -> SessionDescription | None:
    if not sdp:
        return None
    try:
        return SessionDescription.parse(sdp)
    except SdpError:
        return None


@dataclass(frozen=True, slots=True)
class Ringing(_Described):
    """A 180 arrived, with its SDP if any."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class EarlyMedia(_Described):
    """Another provisional (usually 183) carried SDP."""

    sdp: bytes


@dataclass(frozen=True, slots=True)
class Answered(_Described):
    """UAC: a 2xx established the session; ``sdp`` is the answer in it."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Confirmed(_Described):
    """UAS: the ACK arrived; ``sdp`` is the answer in it after an offer-less INVITE."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class Offer(_Described):
    """The peer offers (re-INVITE, UPDATE, or a 2xx to our offer-less INVITE); ``None``
    asks for our offer. Answer with ``accept_offer`` or ``reject_offer``."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class OfferAnswered(_Described):
    """Our re-INVITE/UPDATE succeeded; ``sdp`` is the peer's answer."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class OfferRejected:
    """Our re-INVITE/UPDATE failed; the session goes on with the previous SDP (§14.1)."""

    status: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The session is over: why, the status that ended it (if any) and who ended it."""

    cause: Cause
    status: int | None
    side: Side
    #: when a request of ours could not be sent (the 408 of §8.1.3.1 is then our own): what
    #: the transport said, e.g. "TLS certificate of 192.0.2.7:5067 not accepted ..."
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.side not in ("local", "remote"):
            raise ValueError(f"side must be 'local' or 'remote', not {self.side!r}")


Action = SendRequest | SendCancel | SendResponse
CallEvent = (  # the last three: RFC 3515 (``refer``)
    Ringing | EarlyMedia | Answered | Confirmed | Offer | OfferAnswered | OfferRejected
    | Refer | ReferResult | ReferNotify
)  # fmt: skip
Event = Action | CallEvent | Disconnected


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timers (RFC 3261 §17.1.1.1) and session timer wishes (RFC 4028 §4)."""

    t1: float = 0.5
    t2: float = 4.0
    #: the Session-Expires we ask for and the most we grant; None: we do not ask
    session_expires: int | None = 1800
    #: the shortest interval we accept (RFC 4028 §5: at least 90 s)
    min_se: int = 90

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError("timers need 0 < T1 <= T2")
        if self.min_se < 90:
            raise ValueError("Min-SE must be at least 90 seconds (RFC 4028 §5)")
        if self.session_expires is not None and self.session_expires < self.min_se:
            raise ValueError("Session-Expires must not be below Min-SE (RFC 4028 §4)")
