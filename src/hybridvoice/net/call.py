"""Call legs of the UA core (:mod:`hybridvoice.net.ua`) and the application's interface.

A :class:`Call` wraps one sans-IO :class:`~hybridvoice.sip.session.InviteSession` (RFC 3261
§13, §14, §15, RFC 3311, RFC 4028): the application's calls (ring, answer, reject, cancel,
bye, re-INVITE, UPDATE, offer/answer per RFC 3264) run the session's actions through the
UA at once, and its call-control events go to a :class:`CallHandler` (sippy's idea: events
independent of SIP between the two legs of a B2BUA) and into ``history`` for ``await``.

A caller's call with credentials answers a 401/407 to its INVITE by sending the INVITE again
(RFC 3261 §8.1.3.5, §22.2, §22.3): same Call-ID, From tag and body, CSeq + 1, a new branch,
the Authorization / Proxy-Authorization of :class:`~hybridvoice.net.register.DigestAuth`,
once per realm; the application only sees the outcome of the last INVITE. A challenged BYE
goes again the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from hybridvoice.sip.headers import Address, CSeq
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.refer import ReferTo, Replaces
from hybridvoice.sip.session import (
    Answered,
    CallEvent,
    Confirmed,
    Disconnected,
    InviteSession,
    Role,
    State,
)
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction, TransactionTimeout
from hybridvoice.sip.uri import Uri, parse_uri

from .register import DigestAuth
from .transport import Destination, NetError, Source, Transport

if TYPE_CHECKING:
    from hybridvoice.sip.dialog import DialogId

    from .ua import UserAgent

__all__ = [
    "Application",
    "Call",
    "CallFailedError",
    "CallHandler",
    "CallUpdate",
    "RejectingApplication",
]

_log = logging.getLogger("hybridvoice.net.ua")

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
    """One call leg: an :class:`InviteSession` with the UA's bookkeeping and the methods an
    application uses. ``handler`` gets the events; ``data`` is free for the application
    (a B2BUA keeps the other leg there)."""

    __slots__ = (
        "_auth", "_busy", "_bye_headers", "_cancel_asked", "_cursor", "_destination", "_dialog_ids",
        "_invite_tx", "_server_txs", "_timer", "_timer_when", "_ua", "_waiters", "data",
        "handler", "history", "replaces", "session", "source", "transport",
    )  # fmt: skip

    def __init__(self, ua: UserAgent, session: InviteSession, transport: Transport | None) -> None:
        self._ua = ua
        self.session = session
        self.transport = transport  # where the INVITE came in or went out
        #: an incoming call: where its INVITE came from (the peer's address as received,
        #: §18.2.1); None for a call of ours
        self.source: Source | None = None
        self.handler: CallHandler | None = None
        self.data: object = None
        #: an INVITE with Replaces (RFC 3891): the call it replaces, matched by the UA
        self.replaces: Call | None = None
        self.history: list[CallUpdate] = []
        self._busy = False
        self._cursor: dict[type, int] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._destination: Destination | None = None  # UAC: the initial INVITE's next hop
        self._dialog_ids: tuple[DialogId, ...] = ()  # what the dialog table holds for us
        self._invite_tx: ClientTransaction | None = None
        self._server_txs: dict[int, ServerTransaction] = {}  # id(request) -> its transaction
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._auth: DigestAuth | None = None  # UAC: answers 401/407 (§22.2)
        self._cancel_asked = False  # UAC: cancel() or bye() before the answer
        self._bye_headers: tuple[tuple[str, object], ...] = ()  # bye(headers=...): on the BYE

    def __repr__(self) -> str:
        return f"<Call {self.session.role.value} {self.call_id} {self.state.value}>"

    @property
    def call_id(self) -> str:
        return self.session.invite.call_id or ""

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def incoming(self) -> bool:
        return self.session.role is Role.UAS

    @property
    def invite(self) -> Request:
        """The initial INVITE (received, or as sent)."""
        return self.session.invite

    @property
    def disconnected(self) -> bool:
        return self.session.state is State.DISCONNECTED

    # --- the application's calls (each runs the session's actions at once) --------------------
    def ring(self, sdp: bytes | None = None, *, status: int = 180) -> None:
        """UAS: 180 Ringing, or 183 with early-media ``sdp`` (§13.3.1.1)."""
        self.session.ring(sdp, status=status)
        self._ua._run(self)

    def answer(self, sdp: bytes | None) -> None:
        """UAS: 200 with ``sdp``, retransmitted until the ACK (§13.3.1.4)."""
        self.session.answer(sdp, self._ua.now())
        self._ua._run(self)

    def reject(
        self, status: int, reason: str | None = None, *, headers: Sequence[tuple[str, object]] = ()
    ) -> None:
        """UAS: a 3xx-6xx final response (§13.3.1.3)."""
        self.session.reject(status, reason, headers=headers)
        self._ua._run(self)

    def cancel(self) -> None:
        """UAC: CANCEL the unanswered INVITE (§9.1)."""
        self.session.cancel()
        self._cancel_asked = True
        self._ua._run(self)

    def bye(self, *, headers: Sequence[tuple[str, object]] = ()) -> None:
        """Hang up in any state: CANCEL, 603 or BYE as the state requires (§15). ``headers``
        (a Reason, RFC 3326 §2) go on the BYE."""
        if not self.incoming and self.state in _SETUP:
            self._cancel_asked = True
        self._bye_headers = tuple(headers)
        self.session.bye()
        self._ua._run(self)

    def reinvite(self, sdp: bytes | None) -> None:
        """A re-INVITE offering ``sdp`` (hold/resume, §14.1); ``OfferAnswered`` follows."""
        self.session.reinvite(sdp)
        self._ua._run(self)

    def update(self, sdp: bytes | None = None) -> None:
        """An UPDATE (RFC 3311), with or without an offer."""
        self.session.update(sdp)
        self._ua._run(self)

    def accept_offer(self, sdp: bytes | None) -> None:
        """Answer the peer's ``Offer`` (re-INVITE, UPDATE or an offer in a 2xx)."""
        self.session.accept_offer(sdp, self._ua.now())
        self._ua._run(self)

    def reject_offer(self, status: int = 488) -> None:
        """Refuse the peer's ``Offer``; the session goes on (§14.2)."""
        self.session.reject_offer(status)
        self._ua._run(self)

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
        self.session.refer(
            ReferTo(address, replaces), referred_by=referred_by, subscription=subscription
        )
        self._ua._run(self)

    def accept_refer(self) -> None:
        """202 to the peer's ``Refer`` and the first NOTIFY (100 Trying)."""
        self.session.accept_refer()
        self._ua._run(self)

    def reject_refer(self, status: int = 603) -> None:
        self.session.reject_refer(status)
        self._ua._run(self)

    def notify_refer(self, status: int, reason: str | None = None) -> None:
        """A NOTIFY with the referenced call's status; a final one ends the subscription."""
        self.session.notify_refer(status, reason)
        self._ua._run(self)

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

    def _release(self) -> None:
        """Drop this ended call's transaction bookkeeping. Its INVITE client transaction and
        the server transactions it answered point back at it (``tu_data``) and live on for
        up to 64*T1 (RFC 3261 §17, RFC 6026): without this, every call would be a reference
        cycle left to the cyclic collector, whose full passes stall the loop at high call
        rates."""
        self._invite_tx = None
        for tx in self._server_txs.values():
            if tx.tu_data is self:
                tx.tu_data = None
        self._server_txs.clear()

    def _deliver(self, event: CallUpdate) -> None:
        self.history.append(event)
        handler = self.handler
        if handler is not None:
            try:
                handler.on_call_event(self, event)
            except Exception as exc:  # the application's bug ends this call only
                self._ua.application_failed(self, exc, f"call handler on {type(event).__name__}")
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_client(self, tx: ClientTransaction, outcome: Response | TransactionTimeout) -> None:
        """Responses and timeouts of our client transactions (the endpoint's callback)."""
        if tx.method == "CANCEL":
            return  # the INVITE's 487 (or 2xx) tells the session what happened (§9.1)
        ua = self._ua
        if isinstance(outcome, Response):
            if (
                outcome.status in (401, 407)
                and self._auth is not None
                and self._authenticate(tx.request, outcome)
            ):
                return
            self.session.receive_response(outcome, ua.now())
        else:
            self.session.request_timeout(tx.request, ua.now(), outcome.cause)
        ua._run(self)

    def _authenticate(self, request: Request, response: Response) -> bool:
        """Send ``request`` again with credentials for ``response``'s challenge (§22.2):
        the initial INVITE while the call is being set up and not cancelled (the session
        starts over with the new INVITE, §8.1.3.5), or a BYE. False: the session takes the
        401/407 as the final response."""
        auth = self._auth
        assert auth is not None
        session = self.session
        method = request.method
        if method == "INVITE":
            if (
                self.incoming
                or self._cancel_asked
                or self.state not in _SETUP
                or response.cseq != session.invite.cseq
                or not auth.answer(response)
            ):
                return False
            invite = _next(session.invite)
            auth.apply(invite)
            ua = self._ua
            self.session = InviteSession.outgoing(invite, config=ua.config, rng=ua._rng)
            self._invite_tx = None
            ua._run(self)
            return True
        if method == "BYE":
            headers = request.headers
            if "Authorization" not in headers and "Proxy-Authorization" not in headers:
                auth.begin()  # a new request: the INVITE's realms may challenge it once
            if not auth.answer(response):
                return False
            bye = _next(request)
            auth.apply(bye)
            self._ua._send_request(self, bye)
            return True
        return False


#: The states of a call being set up (no final response yet).
_SETUP = frozenset({State.CALLING, State.INCOMING, State.EARLY})


def _next(request: Request) -> Request:
    """The same request with CSeq + 1 and no Via (the endpoint adds one with a new branch)."""
    cseq = request.cseq
    assert cseq is not None
    again = request.copy()
    again.headers.remove("Via")
    again.headers.set("CSeq", CSeq(cseq.seq + 1, cseq.method))
    return again
