"""The UA's asyncio adapter: transport -> transaction table -> UA core -> application.

RFC 3261 §8.2 (UAS request checks, via :func:`~hybridvoice.sip.validate.check_request`), §11.2
(OPTIONS answered by the UA), §12.2.2 (requests inside a dialog, 481 when none matches),
§13.2.2.4 (the ACK for every 2xx, stray 2xx retransmissions and forks by dialog set),
§13.3.1.4 (the UAS's 2xx retransmissions, through the INVITE server transaction while it is
in the RFC 6026 §7.1 Accepted state, directly afterwards), §9 (CANCEL), §15 (BYE) and
§8.1.2 / §18.1.1 (the next hop: first Route, else the Request-URI), RFC 3515 (REFER and its
NOTIFYs go to the dialog's session) and RFC 3891 §3 (an INVITE with Replaces reaches the
application with ``Call.replaces`` set to the matched call, or is refused 481/486/603/400),
§22.2 / §22.3 (a call placed with credentials answers the 401/407 to its INVITE and BYE, in
:meth:`~hybridvoice.sip.ua_core.UaCore.response_for`).

:class:`UserAgent` is the endpoint's transaction user and a thin adapter over the sans-IO
:class:`~hybridvoice.sip.ua_core.UaCore` (where the checks, the dispatch, Replaces matching,
digest retries and the sessions' timers live): it feeds the core with ``now = loop.time()``,
carries out its actions on the endpoint (``NewTransaction``, ``SendAck``, ``CancelInvite``,
``Respond``, ``RespondDirect``), keeps ONE ``loop.call_at`` handle for the whole UA at
``core.next_deadline()``, and delivers the SIP-independent call-control events (``Ringing``,
``EarlyMedia``, ``Answered``, ``Confirmed``, ``Offer``, ``OfferAnswered``, ``OfferRejected``,
``Disconnected``) to the call's :class:`CallHandler`. A B2BUA is two :class:`Call` legs whose
handler passes events across; nothing SIP-specific crosses between them.

Next hops are resolved here when the URI's host is an IP literal. A host name goes to the
``resolver`` hook (an ``async`` callable, e.g. one built on :func:`hybridvoice.net.dns.locate`
for RFC 3263 §4); without one the request fails as a transport error (a 408 to the session).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from hybridvoice.sip.dialog import DialogId, DialogTable
from hybridvoice.sip.errors import LocalProtocolError
from hybridvoice.sip.headers import Address, parse_address
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.session import SessionConfig, State
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction, TransactionTimeout
from hybridvoice.sip.ua_core import (
    DEFAULT_POLICY,
    CallEnded,
    CancelInvite,
    Deliver,
    IncomingCall,
    Leg,
    NewTransaction,
    Respond,
    RespondDirect,
    SendAck,
    UaAction,
    UaCore,
    Unhandled,
)
from hybridvoice.sip.uri import SipUri, Uri, parse_uri
from hybridvoice.sip.validate import UasPolicy

from .call import (
    Application,
    Call,
    CallFailedError,
    CallHandler,
    CallUpdate,
    RejectingApplication,
)
from .endpoint import Endpoint
from .loop import call_task_name
from .register import DigestAuth, DigestCredentials
from .transport import DEFAULT_PORTS, Destination, NetError, Source, Transport, TransportError

__all__ = [
    "DEFAULT_POLICY",
    "Application",
    "Call",
    "CallFailedError",
    "CallHandler",
    "CallUpdate",
    "DigestCredentials",
    "RejectingApplication",
    "Resolver",
    "UserAgent",
    "destination_of",
]

_log = logging.getLogger("hybridvoice.net.ua")

#: RFC 3263 hook: the destination of a ``sip:``/``sips:`` URI whose host is a name.
Resolver = Callable[[SipUri], Awaitable[Destination]]


@functools.lru_cache(maxsize=1024)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def destination_of(uri: Uri) -> Destination | None:
    """The destination of a ``sip:``/``sips:`` URI with an IP host (RFC 3263 §4.1-4.2 when
    everything is explicit: the ``transport`` parameter, else UDP, TLS for sips; the port,
    else the transport's default). None when the host is a name (needs DNS)."""
    if not isinstance(uri, SipUri):
        raise TransportError(f"cannot send to a {uri.scheme}: URI")
    host = uri.maddr or uri.host_bare
    if not _is_ip(host):
        return None
    kind = (uri.transport or ("tls" if uri.secure else "udp")).upper()
    return Destination(kind, host, uri.port or DEFAULT_PORTS.get(kind, 5060))


class CallDialogs(DialogTable[Call]):
    """The core's dialog table (§12) seen with the application's :class:`Call` objects
    (RFC 3891 ``match_replaces`` on ``UserAgent.dialogs``): a read-only view."""

    __slots__ = ("_legs",)

    def __init__(self, legs: DialogTable[Leg]) -> None:
        super().__init__()
        self._legs = legs

    def __len__(self) -> int:
        return len(self._legs)

    def __iter__(self) -> Iterator[DialogId]:
        return iter(self._legs)

    def add(self, dialog_id: DialogId, entry: Call) -> None:
        raise TypeError("the UA core indexes the dialogs of its calls")

    def remove(self, dialog_id: DialogId) -> Call | None:
        raise TypeError("the UA core indexes the dialogs of its calls")

    def get(self, dialog_id: DialogId) -> Call | None:
        leg = self._legs.get(dialog_id)
        return None if leg is None else leg.owner

    def dialog_set(self, call_id: str, local_tag: str) -> dict[str, Call]:
        forks = self._legs.dialog_set(call_id, local_tag).items()
        return {tag: leg.owner for tag, leg in forks if leg.owner is not None}


class UserAgent:
    """The UA over one :class:`Endpoint` (it becomes the endpoint's TU).

    ``application`` gets new calls and out-of-dialog requests (default: calls refused 480).
    ``config`` is every session's (timers, RFC 4028 wishes); ``policy`` the §8.2 checks
    and the OPTIONS answer; ``user`` the user part of our Contact; ``resolver`` the RFC 3263
    hook for next hops named by a host name.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        application: Application | None = None,
        *,
        config: SessionConfig | None = None,
        policy: UasPolicy = DEFAULT_POLICY,
        user: str = "hybridvoice",
        resolver: Resolver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        endpoint.tu = self
        self.application: Application = application or RejectingApplication()
        self.core = UaCore(config=config, policy=policy, user=user, rng=rng)
        self.config, self.policy, self.user = self.core.config, policy, user  # read-only
        self.resolver = resolver
        self.dialogs = CallDialogs(self.core.dialogs)
        self.calls: set[Call] = set()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None  # the one timer, at _timer_when
        self._timer_when: float | None = None
        self._do: dict[type, Callable[[Call | None, Any], None]] = {
            Respond: self._respond,
            NewTransaction: self._send,
            Deliver: self._deliver,
            SendAck: self._send,
            RespondDirect: self._respond,
            CancelInvite: self._send,
            CallEnded: self._ended,
            IncomingCall: self._offer,
            Unhandled: self._offer,
        }
        #: calls ended because the application raised while handling them
        self.application_failures = 0

    def now(self) -> float:
        return self._loop.time()

    def contact(self, transport: Transport, user: str | None = None) -> Address:
        """Our Contact on ``transport`` (§8.1.1.8): its sent-by, ``transport=`` unless UDP."""
        return self.core.contact(transport, user)

    def close(self) -> None:
        """Stop the sessions' timer (the endpoint is closed by its owner)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_when = None
        self.calls.clear()

    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        """Answer an out-of-dialog request the application took (``Application.on_request``)."""
        self.endpoint.send_response(transaction, response)

    # --- outgoing calls (§8.1.1, §13.2.1) ------------------------------------------------------
    def invite(
        self,
        target: str | Uri,
        *,
        from_: str | Address,
        to: str | Address | None = None,
        sdp: bytes | None,
        destination: Destination | None = None,
        headers: Sequence[tuple[str, object]] = (),
        handler: CallHandler | None = None,
        credentials: DigestCredentials | None = None,
    ) -> Call:
        """Place a call to ``target``: an INVITE with a fresh Call-ID, From tag, CSeq 1,
        Max-Forwards 70 and our Contact, sent to ``destination`` (default: the first Route
        of ``headers``, else ``target``; §8.1.2). ``sdp`` None sends an offer-less INVITE
        (the offer then comes in the 2xx as an ``Offer`` event). With ``credentials`` a
        401/407 is answered by the INVITE sent again with Digest credentials, once per realm
        (§22.2); only the outcome of that INVITE reaches the handler."""
        uri = parse_uri(target) if isinstance(target, str) else target
        from_addr = parse_address(from_) if isinstance(from_, str) else from_
        to_addr = Address(uri) if to is None else parse_address(to) if isinstance(to, str) else to
        if destination is None:
            routes = [str(v) for name, v in headers if name.lower() == "route"]
            hop = parse_address(routes[0]).uri if routes else uri
            destination = destination_of(hop)
        if destination is not None:
            transport = self.endpoint.transport_for(destination)
        else:  # a name: the resolver picks the address; the Contact goes on our UDP/first one
            udp = [t for t in self.endpoint.transports if t.kind == "UDP"]
            transport = (udp or self.endpoint.transports)[0]
        leg, actions = self.core.invite(
            uri,
            from_=from_addr,
            to=to_addr,
            sdp=sdp,
            transport=transport,
            destination=destination,
            headers=headers,
            auth=None if credentials is None else DigestAuth(credentials),
        )
        call = Call(self, leg, transport)
        call.handler = handler
        self.calls.add(call)
        self._run(call, actions)
        return call

    # --- the endpoint's TransactionUser protocol --------------------------------------------------
    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        """A new server transaction, to the core (§8.2, §9.2, §12.2.2)."""
        source = transaction.context
        assert isinstance(source, Source)
        self._apply(self.core.receive_request(transaction, request, source, self._loop.time()))

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        """The ACK for a 2xx goes to its dialog's session (§13.3.1.4); others are dropped."""
        self._apply(self.core.receive_ack(request, source, self._loop.time()))

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        """Not used: every request of ours has its call's callback."""

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        """A 2xx retransmission or a 2xx of another fork after the INVITE transaction ended
        (§13.2.2.4): to the core."""
        self._apply(self.core.stray_response(response, self._loop.time()))

    def on_timeout(
        self,
        endpoint: Endpoint,
        transaction: ClientTransaction | ServerTransaction,
        reason: str,
    ) -> None:
        """Timer H (no ACK for our non-2xx final response): nothing to clean up."""

    def _on_client(
        self, call: Call, tx: ClientTransaction, outcome: Response | TransactionTimeout
    ) -> None:
        """Responses and timeouts of a call's client transactions (the endpoint's callback)."""
        leg, now = call._leg, self._loop.time()
        if isinstance(outcome, Response):
            self._run(call, self.core.response_for(leg, tx.request, outcome, now))
        else:
            self._run(call, self.core.timeout_for(leg, tx.request, outcome.cause, now))

    def application_failed(self, call: Call, exc: Exception, where: str) -> None:
        """The application raised while handling ``call`` (``where``): the last line of the
        invariant that one bad call costs only itself. It is logged with its Call-ID,
        counted, and ended: 500 with a Warning (RFC 3261 §21.5.1, §20.43) before the answer,
        else a BYE; the SIP stack and the other calls go on."""
        self.application_failures += 1
        _log.error("call %s: %s failed", call.call_id, where, exc_info=exc)
        if call.disconnected:
            return
        text = f"internal error ({type(exc).__name__})"
        try:
            if call.incoming and call.state in (State.INCOMING, State.EARLY):
                agent = "hybridvoice" if call.transport is None else call.transport.sent_by
                call.reject(500, headers=[("Warning", f'399 {agent} "{text}"')])
            else:
                call.bye(headers=[("Reason", f'SIP;cause=500;text="{text}"')])
        except Exception:  # a session already ending: nothing more to do
            _log.exception("call %s: could not be ended", call.call_id)

    # --- carrying out the core's actions ---------------------------------------------------------
    def _run(self, call: Call, actions: list[UaAction]) -> None:
        """Carry out one call's actions (a command's, a client transaction's outcome)."""
        self._batch(call, actions)
        self._arm()

    def _batch(self, call: Call, actions: list[UaAction]) -> None:
        """One call's actions in order. A re-entrant command (a handler acting on its call)
        queues its actions behind the batch in progress, as the session would."""
        if call._busy:
            call._pending += actions
            return
        call._busy = True
        do = self._do
        try:
            while actions:
                for action in actions:
                    do[type(action)](call, action)
                actions, call._pending = call._pending, []
        finally:
            call._busy = False

    def _apply(self, actions: list[UaAction]) -> None:
        """Carry out the actions of a core input: each call's run of actions as one batch."""
        n, i, do = len(actions), 0, self._do
        while i < n:
            action = actions[i]
            leg = action.leg
            call: Call | None = None if leg is None else leg.owner
            if call is None:
                do[type(action)](None, action)
                i += 1
                continue
            j = i + 1
            while j < n and actions[j].leg is leg:
                j += 1
            self._batch(call, actions if i == 0 and j == n else actions[i:j])
            i = j
        self._arm()

    def _arm(self) -> None:
        """Keep the one loop timer at (or before) the core's earliest deadline. Only a
        deadline queued since the last look can need an earlier timer (a superseded one
        makes it fire early, harmlessly: the core says what is due then)."""
        core = self.core
        new = core.earliest_new
        if new is None:
            return
        core.earliest_new = None
        when = self._timer_when
        if when is not None and when <= new:
            return  # fires first
        deadline = core.next_deadline()
        if deadline is None:
            return
        if when is not None and when <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_when = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        when = self._timer_when or 0.0
        self._timer = self._timer_when = None
        # call_at may fire up to one clock tick early: never pass a time before the deadline
        self._apply(self.core.handle_timers(max(self._loop.time(), when)))

    def _respond(self, call: Call | None, action: Respond | RespondDirect) -> None:
        """In the server transaction, or directly (RFC 6026 §7.1)."""
        if isinstance(action, RespondDirect):
            if isinstance(action.source, Source):
                self.endpoint.send_direct(action.source, action.response)
            return
        if action.leg is None:
            self.endpoint.send_response(action.transaction, action.response)
            return
        try:
            self.endpoint.send_response(action.transaction, action.response)
        except LocalProtocolError as exc:  # the transaction already ended
            _log.info("%s not sent: %s", action.response.status, exc)

    def _deliver(self, call: Call | None, action: Deliver) -> None:
        if call is None:
            return  # a call the application never saw (a refused Replaces)
        event = action.event
        call.history.append(event)
        handler = call.handler
        if handler is not None:
            try:
                handler.on_call_event(call, event)
            except Exception as exc:  # the application's bug ends this call only
                self.application_failed(call, exc, f"call handler on {type(event).__name__}")
        waiters, call._waiters = call._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _offer(self, call: Call | None, action: IncomingCall | Unhandled) -> None:
        """A new call for the application, or an out-of-dialog request it may take (else
        the UA's answer: OPTIONS 200, 481, 405/501)."""
        if isinstance(action, Unhandled):
            if not self.application.on_request(action.transaction, action.request):
                response = self.core.default_response(action.request, action.to_tag)
                self.endpoint.send_response(action.transaction, response)
            return
        leg = action.leg
        source = leg.source
        assert isinstance(source, Source)
        new = Call(self, leg, source.transport, source)
        replaced = leg.replaces
        new.replaces = None if replaced is None else replaced.owner
        self.calls.add(new)
        try:
            self.application.on_incoming_call(new)
        except Exception as exc:  # ends this call only
            self.application_failed(new, exc, "new call")

    def _ended(self, call: Call | None, action: CallEnded) -> None:
        if call is not None:
            self.calls.discard(call)
            # after the handlers have seen Disconnected: break call <-> transaction cycles
            self._loop.call_soon(_release, call)
        else:
            action.leg.release()

    # --- sending requests (§8.1.2, RFC 3263) -----------------------------------------------------
    def _send(self, call: Call | None, action: NewTransaction | SendAck | CancelInvite) -> None:
        """A request of a call: CANCEL of its INVITE (§9.1), or to its destination, else to
        the hop's (an IP literal, or the resolver's answer: RFC 3263)."""
        if call is None:
            return
        if isinstance(action, CancelInvite):
            if call._invite_tx is not None:
                self.endpoint.cancel(call._invite_tx)
            return
        if isinstance(action, NewTransaction):
            if action.initial:
                call._invite_tx = None
            destination = action.destination  # what invite() gave the core (no cast(): a call)
            assert destination is None or isinstance(destination, Destination)
            hop = action.hop
        else:
            destination, hop = None, action.hop
        if destination is None and hop is not None:
            try:
                destination = destination_of(hop)
            except TransportError:
                destination = None
            if destination is None and self.resolver is not None and isinstance(hop, SipUri):
                coro = self._resolve_and_send(call, action, hop)
                self._loop.create_task(coro, name=call_task_name(call.call_id))
                return
        self._dispatch(call, action, destination)

    async def _resolve_and_send(
        self, call: Call, action: NewTransaction | SendAck, hop: SipUri
    ) -> None:
        assert self.resolver is not None
        try:
            destination: Destination | None = await self.resolver(hop)
        except (NetError, OSError, ValueError) as exc:
            _log.info("cannot resolve %s: %s", hop, exc)
            destination = None
        self._dispatch(call, action, destination)
        self._arm()

    def _dispatch(
        self, call: Call, action: NewTransaction | SendAck, destination: Destination | None
    ) -> None:
        request = action.request
        try:
            if destination is None:
                raise TransportError(f"no address for {request.uri} (RFC 3263 needs a resolver)")
            if isinstance(action, SendAck):
                self.endpoint.send_stateless(request, destination)
                return
            callback = functools.partial(self._on_client, call)
            tx = self.endpoint.send_request(request, destination, callback)
        except TransportError as exc:
            _log.info("%s %s not sent: %s", request.method, request.uri, exc)
            if isinstance(action, NewTransaction):
                self._run(call, self.core.timeout_for(call._leg, request, None, self.now()))
            return
        if action.initial:
            call._invite_tx = tx


def _release(call: Call) -> None:
    """Drop an ended call's transaction bookkeeping. Its INVITE client transaction and the
    server transactions it answered point back at it and live on for up to 64*T1 (RFC 3261
    §17, RFC 6026): without this, every call would be a reference cycle left to the cyclic
    collector, whose full passes stall the loop at high call rates."""
    call._invite_tx = None
    call._leg.release()
