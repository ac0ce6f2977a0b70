"""The UA core: transport -> transaction table -> dialog table -> INVITE sessions -> application.

RFC 3261 §8.2 (UAS request checks, via :func:`~hybridvoice.sip.validate.check_request`), §11.2
(OPTIONS answered by the UA), §12.2.2 (requests inside a dialog, 481 when none matches),
§13.2.2.4 (the ACK for every 2xx, stray 2xx retransmissions and forks by dialog set),
§13.3.1.4 (the UAS's 2xx retransmissions, through the INVITE server transaction while it is
in the RFC 6026 §7.1 Accepted state, directly afterwards), §9 (CANCEL), §15 (BYE) and
§8.1.2 / §18.1.1 (the next hop: first Route, else the Request-URI), RFC 3515 (REFER and its
NOTIFYs go to the dialog's session) and RFC 3891 §3 (an INVITE with Replaces reaches the
application with ``Call.replaces`` set to the matched call, or is refused 481/486/603/400),
§22.2 / §22.3 (a call placed with credentials answers the 401/407 to its INVITE and BYE, see
:mod:`hybridvoice.net.call`).

:class:`UserAgent` is the endpoint's transaction user. It feeds the sans-IO
:class:`~hybridvoice.sip.session.InviteSession` of each call, executes the session's actions
(``SendRequest``, ``SendResponse``, ``SendCancel``), keeps one ``loop.call_at`` handle per
session for its timers (2xx retransmission, glare retry, RFC 4028 refresh and expiry) and
delivers the SIP-independent call-control events (``Ringing``, ``EarlyMedia``, ``Answered``,
``Confirmed``, ``Offer``, ``OfferAnswered``, ``OfferRejected``, ``Disconnected``) to the
call's :class:`CallHandler`. A B2BUA is two :class:`Call` legs whose handler passes events
across; nothing SIP-specific crosses between them.

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
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from hybridvoice.sip.dialog import DialogId, DialogTable
from hybridvoice.sip.errors import LocalProtocolError, ParseError
from hybridvoice.sip.headers import Address, CSeq, Headers, parse_address
from hybridvoice.sip.message import Request, Response, make_response
from hybridvoice.sip.refer import match_replaces, replaces_of
from hybridvoice.sip.session import (
    InviteSession,
    Role,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    State,
)
from hybridvoice.sip.transaction import ClientTransaction, ServerState, ServerTransaction
from hybridvoice.sip.uri import SipUri, Uri, parse_uri
from hybridvoice.sip.validate import KNOWN_METHODS, UasPolicy, check_request, options_response

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
#: The methods the UA core handles; OPTIONS names UPDATE and timer (RFC 3311, RFC 4028).
DEFAULT_POLICY: Final = UasPolicy(
    allowed_methods=("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "REFER", "NOTIFY"),
    supported=("timer", "replaces"),
)
#: Requests that only make sense inside a dialog: 481 without one (§12.2.2, RFC 3311 §5.2).
_NEED_DIALOG: Final = frozenset({"BYE", "UPDATE", "PRACK", "INFO", "REFER", "NOTIFY"})
_SDP: Final = "application/sdp"


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


class UserAgent:
    """The UA core over one :class:`Endpoint` (it becomes the endpoint's TU).

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
        self.config = config or SessionConfig()
        self.policy = policy
        self.user = user
        self.resolver = resolver
        self.dialogs: DialogTable[Call] = DialogTable()
        self.calls: set[Call] = set()
        self._rng = rng or random.Random()
        self._loop = asyncio.get_running_loop()
        self._contacts: dict[tuple[str, int], Address] = {}
        #: calls ended because the application raised while handling them
        self.application_failures = 0

    def now(self) -> float:
        return self._loop.time()

    def _token(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def contact(self, transport: Transport, user: str | None = None) -> Address:
        """Our Contact on ``transport`` (§8.1.1.8): its sent-by, ``transport=`` unless UDP."""
        user = user or self.user
        key = (user, id(transport))
        address = self._contacts.get(key)
        if address is None:
            suffix = "" if transport.kind == "UDP" else f";transport={transport.kind.lower()}"
            address = parse_address(f"<sip:{user}@{transport.sent_by}{suffix}>")
            self._contacts[key] = address
        return address

    def close(self) -> None:
        """Stop every session timer (the endpoint is closed by its owner)."""
        for call in self.calls:
            if call._timer is not None:
                call._timer.cancel()
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
        routes = [str(v) for name, v in headers if name.lower() == "route"]
        if destination is None:
            hop = parse_address(routes[0]).uri if routes else uri
            destination = destination_of(hop)
        if destination is not None:
            transport = self.endpoint.transport_for(destination)
        else:  # a name: the resolver picks the address; the Contact goes on our UDP/first one
            udp = [t for t in self.endpoint.transports if t.kind == "UDP"]
            transport = (udp or self.endpoint.transports)[0]
        user = from_addr.uri.user if isinstance(from_addr.uri, SipUri) else None
        host = transport.advertised[0]
        h = Headers()
        h.add("Max-Forwards", 70)
        h.add("From", from_addr.with_tag(self._token()[:12]))
        h.add("To", to_addr)
        h.add("Call-ID", f"{self._token()}{self._token()[:8]}@{host}")
        h.add("CSeq", CSeq(1, "INVITE"))
        h.add("Contact", self.contact(transport, user))
        for name, value in headers:
            h.add(name, value)
        request = Request("INVITE", uri, h)
        request.set_body(sdp or b"", _SDP if sdp else None)
        session = InviteSession.outgoing(request, config=self.config, rng=self._rng)
        call = Call(self, session, transport)
        call.handler = handler
        call._destination = destination
        if credentials is not None:
            call._auth = DigestAuth(credentials)
        self.calls.add(call)
        self._run(call)
        return call

    # --- the endpoint's TransactionUser protocol --------------------------------------------------
    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        """Route a new server transaction: CANCEL to the INVITE's call (§9.2), To tag to the
        dialog (§12.2.2, else 481), otherwise §8.2 checks then a new call or the app."""
        try:
            if request.method == "CANCEL":
                self._on_cancel(transaction, request)
                return
            to = request.to
            if to is not None and to.tag is not None:
                call = self.dialogs.match_request(request)
                if call is None or call.disconnected:
                    endpoint.send_response(transaction, make_response(request, 481))
                    return
                call._server_txs[id(request)] = transaction
                call.session.receive_request(request, self.now())
                self._run(call)
                return
        except ParseError as exc:
            endpoint.send_response(transaction, make_response(request, 400, str(exc)[:80]))
            return
        self._out_of_dialog(transaction, request)

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        """The ACK for a 2xx goes to its dialog's session (§13.3.1.4); others are dropped."""
        try:
            call = self.dialogs.match_request(request)
        except ParseError:
            return
        if call is not None:
            call.session.receive_request(request, self.now())
            self._run(call)

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        """Not used: every request of ours has its call's callback."""

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        """A 2xx retransmission or a 2xx of another fork after the INVITE transaction ended:
        to the call of its dialog set (Call-ID + From tag) to ACK it, then BYE (§13.2.2.4)."""
        try:
            cseq = response.cseq
            dialog_id = DialogId.of_response(response)
        except ParseError:
            return
        if cseq is None or cseq.method != "INVITE" or dialog_id is None:
            return
        if not 200 <= response.status < 300:
            return
        forks = self.dialogs.dialog_set(dialog_id.call_id, dialog_id.local_tag)
        call = next(iter(forks.values()), None)
        if call is not None:
            call.session.receive_response(response, self.now())
            self._run(call)

    def on_timeout(
        self,
        endpoint: Endpoint,
        transaction: ClientTransaction | ServerTransaction,
        reason: str,
    ) -> None:
        """Timer H (no ACK for our non-2xx final response): nothing to clean up."""

    # --- routing helpers -------------------------------------------------------------------------
    def _on_cancel(self, transaction: ServerTransaction, request: Request) -> None:
        invite_tx = transaction.cancels
        call = None if invite_tx is None else invite_tx.tu_data
        if isinstance(call, Call) and not call.disconnected:
            call._server_txs[id(request)] = transaction
            call.session.receive_request(request, self.now())
            self._run(call)
        else:  # the INVITE was answered by us directly: nothing to cancel (§9.2)
            self.endpoint.send_response(transaction, make_response(request, 200))

    def _out_of_dialog(self, transaction: ServerTransaction, request: Request) -> None:
        tag = self._token()[:12]
        respond = functools.partial(self.endpoint.send_response, transaction)
        error = check_request(request, policy=self.policy, to_tag=tag)
        method = request.method
        if error is not None:
            if method != "ACK":
                respond(error)
        elif method == "INVITE":
            self._incoming(transaction, request, tag)
        elif method == "ACK":
            return  # an ACK for nothing we know (§17.2.3): dropped
        elif self.application.on_request(transaction, request):
            return
        elif method == "OPTIONS":
            respond(options_response(request, policy=self.policy, to_tag=tag))
        elif method in _NEED_DIALOG:
            respond(make_response(request, 481, to_tag=tag))
        else:
            status = 405 if method in KNOWN_METHODS else 501
            allow = [("Allow", ", ".join(self.policy.allowed_methods))]
            respond(make_response(request, status, to_tag=tag, headers=allow))

    def _incoming(self, transaction: ServerTransaction, request: Request, tag: str) -> None:
        source = transaction.context
        assert isinstance(source, Source)
        user = request.uri.user if isinstance(request.uri, SipUri) else None
        contact = self.contact(source.transport, user)
        session = InviteSession.incoming(request, tag, contact, config=self.config, rng=self._rng)
        call = Call(self, session, source.transport)
        call.source = source
        call._server_txs[id(request)] = transaction
        transaction.tu_data = call
        self.calls.add(call)
        self._run(call)
        if not call.disconnected and "Replaces" in request.headers:
            refusal = self._match_replaces(call, request)
            if refusal is not None:
                call.reject(refusal)
                return
        if not call.disconnected:
            try:
                self.application.on_incoming_call(call)
            except Exception as exc:  # ends this call only
                self.application_failed(call, exc, "new call")

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

    def _match_replaces(self, call: Call, request: Request) -> int | None:
        """RFC 3891 §3: find the dialog an INVITE with Replaces names (``call.replaces``),
        or the refusal: 400 malformed, 481 no such dialog (or an early one we initiated),
        603 already ended, 486 a confirmed one for ``early-only``."""
        try:
            replaces = replaces_of(request)
        except ParseError:
            return 400
        found = None if replaces is None else match_replaces(self.dialogs, replaces)
        if replaces is None or found is None or found is call:
            return 481
        if found.disconnected:
            return 603
        early = found.state is not State.CONFIRMED
        if early and not found.incoming:
            return 481
        if replaces.early_only and not early:
            return 486
        call.replaces = found
        return None

    # --- executing the session's actions ---------------------------------------------------------
    def _run(self, call: Call) -> None:
        """Drain the session's events: actions to the endpoint, call events to the handler.
        Re-entrant calls (a handler acting on its call) are picked up by the same loop."""
        if call._busy:
            return
        call._busy = True
        try:  # call.session is read each round: an authenticated retry starts a new one
            while events := call.session.events():
                for event in events:
                    if isinstance(event, SendResponse):
                        self._send_response(call, event.response, event.for_request)
                    elif isinstance(event, SendRequest):
                        self._send_request(call, event.request)
                    elif isinstance(event, SendCancel):
                        if call._invite_tx is not None:
                            self.endpoint.cancel(call._invite_tx)
                    else:
                        call._deliver(event)
        finally:
            call._busy = False
        self._settle(call)

    def _settle(self, call: Call) -> None:
        """Index the session's dialogs (§12) and keep one timer handle for its deadline."""
        session = call.session
        ids = session.dialog_ids
        if ids != call._dialog_ids:
            for old in call._dialog_ids:
                if old not in ids:
                    self.dialogs.remove(old)
            for new in ids:
                self.dialogs.add(new, call)
            call._dialog_ids = ids
        deadline = None if session.state is State.DISCONNECTED else session.next_deadline()
        if deadline != call._timer_when:
            if call._timer is not None:
                call._timer.cancel()
            call._timer_when = deadline
            call._timer = (
                None if deadline is None else self._loop.call_at(deadline, self._on_timer, call)
            )
        if session.state is State.DISCONNECTED and call in self.calls:
            self.calls.discard(call)
            # after the handlers have seen Disconnected: break call <-> transaction cycles
            self._loop.call_soon(call._release)

    def _on_timer(self, call: Call) -> None:
        when = call._timer_when or 0.0
        call._timer = None
        call._timer_when = None
        # call_at may fire up to one clock tick early: never pass a time before the deadline
        call.session.handle_timer(max(self.now(), when))
        self._run(call)

    def _send_request(self, call: Call, request: Request) -> None:
        """ACK for a 2xx: stateless (§13.2.2.4, §17.1.1.3); the rest in a client transaction
        (§17.1) to the first Route, else the Request-URI (§8.1.2); the initial INVITE to the
        call's destination."""
        if "Via" in request.headers:  # an ACK re-sent for a retransmitted 2xx: a new Via
            request = request.copy()
            request.headers.remove("Via")
        if call._bye_headers and request.method == "BYE":  # bye(headers=...): a Reason
            for name, value in call._bye_headers:
                request.headers.add(name, value)
        to = request.to
        destination = call._destination if to is None or to.tag is None else None
        if destination is None:
            routes = request.route
            hop = routes[0].uri if routes else request.uri
            try:
                destination = destination_of(hop)
            except TransportError:
                destination = None
            if destination is None and self.resolver is not None and isinstance(hop, SipUri):
                coro = self._resolve_and_send(call, request, hop)
                self._loop.create_task(coro, name=call_task_name(call.call_id))
                return
        self._dispatch(call, request, destination)

    async def _resolve_and_send(self, call: Call, request: Request, hop: SipUri) -> None:
        assert self.resolver is not None
        try:
            destination: Destination | None = await self.resolver(hop)
        except (NetError, OSError, ValueError) as exc:
            _log.info("cannot resolve %s: %s", hop, exc)
            destination = None
        self._dispatch(call, request, destination)
        self._run(call)

    def _dispatch(self, call: Call, request: Request, destination: Destination | None) -> None:
        try:
            if destination is None:
                raise TransportError(f"no address for {request.uri} (RFC 3263 needs a resolver)")
            if request.method == "ACK":
                self.endpoint.send_stateless(request, destination)
                return
            tx = self.endpoint.send_request(request, destination, call._on_client)
        except TransportError as exc:
            _log.info("%s %s not sent: %s", request.method, request.uri, exc)
            if request.method != "ACK":
                call.session.request_timeout(request, self.now())
            return
        if request.method == "INVITE" and call.session.role is Role.UAC:
            to = request.to
            if to is None or to.tag is None:
                call._invite_tx = tx  # the one SendCancel refers to (§9.1)

    def _send_response(self, call: Call, response: Response, request: Request) -> None:
        """In the request's server transaction; a 2xx to an INVITE whose transaction has left
        the Accepted state (RFC 6026 §7.1) goes out directly, as the TU's own (§13.3.1.4)."""
        key = id(request)
        tx = call._server_txs.get(key)
        if tx is None:
            return
        status = response.status
        invite_2xx = tx.is_invite and 200 <= status < 300
        if status >= 200 and not invite_2xx:
            del call._server_txs[key]
        if invite_2xx and tx.state not in (ServerState.PROCEEDING, ServerState.ACCEPTED):
            self._send_direct(tx, response)
            return
        try:
            self.endpoint.send_response(tx, response)
        except LocalProtocolError as exc:  # the transaction already ended
            _log.info("%s for %s not sent: %s", status, request.method, exc)

    def _send_direct(self, tx: ServerTransaction, response: Response) -> None:
        source = tx.context
        if isinstance(source, Source):
            self.endpoint.send_direct(source, response)
