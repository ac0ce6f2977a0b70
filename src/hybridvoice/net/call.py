"""Call legs of the UA (:mod:`hybridvoice.net.ua`) and the application's interface.

A :class:`Call` is the application's handle on one sans-IO :class:`~hybridvoice.sip.ua_core.Leg`
(an :class:`~hybridvoice.sip.session.InviteSession`, RFC 3261 §13, §14, §15, RFC 3311,
RFC 4028): the application's calls (ring, answer, reject, cancel, bye, re-INVITE, UPDATE,
offer/answer per RFC 3264, REFER per RFC 3515) run the leg's command and the UA carries out
its actions at once; its call-control events go to a :class:`CallHandler` (sippy's idea:
events independent of SIP between the two legs of a B2BUA) and into ``history`` for
``await``. A call placed with credentials answers a 401/407 to its INVITE or BYE (RFC 3261
§22.2, §22.3) in the core (:meth:`~hybridvoice.sip.ua_core.UaCore.response_for`); the
application only sees the outcome of the last INVITE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from hybridvoice.sip.headers import Address
from hybridvoice.sip.message import Request
from hybridvoice.sip.refer import Replaces
from hybridvoice.sip.session import (
    Answered,
    CallEvent,
    Confirmed,
    Disconnected,
    InviteSession,
    Role,
    State,
)
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction
from hybridvoice.sip.ua_core import Leg, UaAction
from hybridvoice.sip.uri import Uri, parse_uri

from .transport import NetError, Source, Transport

if TYPE_CHECKING:
    from .ua import UserAgent

__all__ = [
    "Application",
    "Call",
    "CallFailedError",
    "CallHandler",
    "CallUpdate",
    "RejectingApplication",
]

#: What a :class:`CallHandler` receives: a call-control event or the end of the call.
CallUpdate = CallEvent | Disconnected

E = TypeVar("E", bound=CallEvent | Disconnected)


class CallFailedError(NetError):
    """The call ended before the event awaited (``answered()``): ``disconnected`` says why."""

    def __init__(self, disconnected: Disconnected) -> None:
        d = disconnected
        super().__init__(f"call ended: {d.cause} {d.status or ''} ({d.side})".replace("  ", " "))
        self.disconnected = disconnected


class CallHandler(Protocol):
    """Gets every call-control event of the calls it is the handler of, in order."""

    def on_call_event(self, call: Call, event: CallUpdate) -> None: ...


class Application(Protocol):
    """What the UA hands to the application: new calls and out-of-dialog requests."""

    def on_incoming_call(self, call: Call) -> None:
        """A new INVITE passed the §8.2 checks: ``ring``/``answer``/``reject`` it, now or
        later, and set ``call.handler`` to get its events. The 100 Trying is automatic."""

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        """An out-of-dialog request other than INVITE (OPTIONS, MESSAGE...): answer it with
        ``ua.respond`` and return True, or return False to let the UA answer (OPTIONS 200,
        BYE/UPDATE 481, others 405/501)."""


class RejectingApplication:
    """The default application: every call is refused with 480 (§21.4.18)."""

    def on_incoming_call(self, call: Call) -> None:
        call.reject(480)

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False


class Call:
    """One call leg: the application's side of a sans-IO :class:`~hybridvoice.sip.ua_core.Leg`.
    ``handler`` gets the events; ``data`` is free for the application (a B2BUA keeps the
    other leg there). Each method runs the leg's command and carries out its actions at once
    (``UserAgent._run``)."""

    __slots__ = (
        "_busy", "_cursor", "_invite_tx", "_leg", "_pending", "_ua", "_waiters", "data",
        "handler", "history", "replaces", "source", "transport",
    )  # fmt: skip

    def __init__(
        self, ua: UserAgent, leg: Leg, transport: Transport | None, source: Source | None = None
    ) -> None:
        self._ua = ua
        self._leg = leg
        leg.owner = self
        self.transport = transport  # where the INVITE came in or went out
        #: an incoming call: where its INVITE came from (the peer's address as received,
        #: §18.2.1); None for a call of ours
        self.source = source
        self.handler: CallHandler | None = None
        self.data: object = None
        #: an INVITE with Replaces (RFC 3891): the call it replaces, matched by the UA
        self.replaces: Call | None = None
        self.history: list[CallUpdate] = []
        self._busy = False  # the UA is carrying out this call's actions
        self._pending: list[UaAction] = []  # actions of a re-entrant command, run next
        self._cursor: dict[type, int] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._invite_tx: ClientTransaction | None = None  # UAC: what CancelInvite cancels

    def __repr__(self) -> str:
        return f"<Call {self.session.role.value} {self.call_id} {self.state.value}>"

    @property
    def session(self) -> InviteSession:
        """The leg's INVITE session (a new one after an authenticated INVITE, §22.2)."""
        return self._leg.session

    @property
    def call_id(self) -> str:
        return self._leg.session.invite.call_id or ""

    @property
    def state(self) -> State:
        return self._leg.session.state

    @property
    def incoming(self) -> bool:
        return self._leg.session.role is Role.UAS

    @property
    def invite(self) -> Request:
        """The initial INVITE (received, or as sent)."""
        return self._leg.session.invite

    @property
    def disconnected(self) -> bool:
        return self._leg.session.state is State.DISCONNECTED

    # --- the application's calls (each runs the session's actions at once) --------------------
    def ring(self, sdp: bytes | None = None, *, status: int = 180) -> None:
        """UAS: 180 Ringing, or 183 with early-media ``sdp`` (§13.3.1.1)."""
        self._ua._run(self, self._leg.ring(sdp, status=status))

    def answer(self, sdp: bytes | None) -> None:
        """UAS: 200 with ``sdp``, retransmitted until the ACK (§13.3.1.4)."""
        self._ua._run(self, self._leg.answer(sdp, self._ua.now()))

    def reject(
        self, status: int, reason: str | None = None, *, headers: Sequence[tuple[str, object]] = ()
    ) -> None:
        """UAS: a 3xx-6xx final response (§13.3.1.3)."""
        self._ua._run(self, self._leg.reject(status, reason, headers=headers))

    def cancel(self) -> None:
        """UAC: CANCEL the unanswered INVITE (§9.1)."""
        self._ua._run(self, self._leg.cancel())

    def bye(self, *, headers: Sequence[tuple[str, object]] = ()) -> None:
        """Hang up in any state: CANCEL, 603 or BYE as the state requires (§15). ``headers``
        (a Reason, RFC 3326 §2) go on the BYE."""
        self._ua._run(self, self._leg.bye(headers=headers))

    def reinvite(self, sdp: bytes | None) -> None:
        """A re-INVITE offering ``sdp`` (hold/resume, §14.1); ``OfferAnswered`` follows."""
        self._ua._run(self, self._leg.reinvite(sdp))

    def update(self, sdp: bytes | None = None) -> None:
        """An UPDATE (RFC 3311), with or without an offer."""
        self._ua._run(self, self._leg.update(sdp))

    def accept_offer(self, sdp: bytes | None) -> None:
        """Answer the peer's ``Offer`` (re-INVITE, UPDATE or an offer in a 2xx)."""
        self._ua._run(self, self._leg.accept_offer(sdp, self._ua.now()))

    def reject_offer(self, status: int = 488) -> None:
        """Refuse the peer's ``Offer``; the session goes on (§14.2)."""
        self._ua._run(self, self._leg.reject_offer(status))

    # --- transfer (RFC 3515 REFER, RFC 3891 Replaces) -------------------------------------------
    def refer(
        self,
        target: str | Uri | Address,
        *,
        replaces: Replaces | None = None,
        referred_by: Address | None = None,
        subscription: bool = True,
    ) -> None:
        """Ask the peer to call ``target`` (with ``replaces``: attended transfer); the
        ``ReferResult`` and ``ReferNotify`` events follow."""
        address = target if isinstance(target, Address) else Address(
            parse_uri(target) if isinstance(target, str) else target
        )  # fmt: skip
        actions = self._leg.refer(
            address, replaces=replaces, referred_by=referred_by, subscription=subscription
        )
        self._ua._run(self, actions)

    def accept_refer(self) -> None:
        """202 to the peer's ``Refer`` and the first NOTIFY (100 Trying)."""
        self._ua._run(self, self._leg.accept_refer())

    def reject_refer(self, status: int = 603) -> None:
        self._ua._run(self, self._leg.reject_refer(status))

    def notify_refer(self, status: int, reason: str | None = None) -> None:
        """A NOTIFY with the referenced call's status; a final one ends the subscription."""
        self._ua._run(self, self._leg.notify_refer(status, reason))

    # --- waiting (tests, the CLI) -------------------------------------------------------------
    async def wait_for(self, kind: type[E], timeout: float | None = None) -> E:
        """The next event of type ``kind`` not yet returned by ``wait_for`` (history first).
        Raises :class:`CallFailedError` when the call ends without one."""
        n = self._cursor.get(kind, 0)
        async with asyncio.timeout(timeout):
            while True:
                seen = [event for event in self.history if isinstance(event, kind)]
                if len(seen) > n:
                    self._cursor[kind] = n + 1
                    return seen[n]
                last = self.history[-1] if self.history else None
                if isinstance(last, Disconnected):
                    raise CallFailedError(last)
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    async def answered(self, timeout: float | None = None) -> Answered | Confirmed:
        """UAC: the 2xx arrived (``Answered``); UAS: the ACK arrived (``Confirmed``)."""
        if self.incoming:
            return await self.wait_for(Confirmed, timeout)
        return await self.wait_for(Answered, timeout)

    async def ended(self, timeout: float | None = None) -> Disconnected:
        """The ``Disconnected`` event, whenever it comes."""
        async with asyncio.timeout(timeout):
            while not self.history or not isinstance(self.history[-1], Disconnected):
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        last = self.history[-1]
        assert isinstance(last, Disconnected)
        return last
