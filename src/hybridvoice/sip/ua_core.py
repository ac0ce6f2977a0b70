"""The UA core, sans-IO: RFC 3261 §8.2 request checks and §12.2.2 dispatch over INVITE sessions.

What reaches it (always with ``now``, monotonic seconds): new server transactions
(:meth:`UaCore.receive_request`), ACKs for 2xx (:meth:`~UaCore.receive_ack`, §13.3.1.4),
stray 2xx retransmissions and forks (:meth:`~UaCore.stray_response`, §13.2.2.4), the outcome of
our client transactions (:meth:`~UaCore.response_for`, :meth:`~UaCore.timeout_for`), timer
firings (:meth:`~UaCore.handle_timers` at :meth:`~UaCore.next_deadline`), and the application's
commands (:meth:`~UaCore.invite`, then the :class:`Leg` methods ``ring``, ``answer``, ``bye``...).
What comes out: a list of :data:`UaAction` for the adapter to carry out, in order.

- §8.2: a new request passes :func:`~hybridvoice.sip.validate.check_request`; OPTIONS is
  answered per §11.2 (``options_response``) unless the application takes it.
- §12.2.2: a request with a To tag goes to its dialog's session, 481 when none matches;
  BYE, UPDATE, PRACK, INFO, REFER and NOTIFY outside a dialog get 481 too (RFC 3311 §5.2).
- §9.2: a CANCEL goes to the session of the INVITE server transaction it matches (200 when
  that INVITE was answered by us already, so there is nothing to cancel).
- RFC 3891 §3: an INVITE with Replaces reaches the application with ``leg.replaces`` set to
  the matched leg, or is refused: 400 malformed, 481 no such dialog (or an early one we
  initiated), 603 already ended, 486 a confirmed one for ``early-only``.
- §13.2.2.4 / §17.1.1.3: the ACK for a 2xx goes out statelessly with a fresh Via; §8.1.2: a
  request goes to the first Route, else the Request-URI (``NewTransaction.hop``).
- §13.3.1.4 / RFC 6026 §7.1: a 2xx is retransmitted through the INVITE server transaction
  while it is Accepted, directly (``RespondDirect``) once it has ended.
- §22.2 / §22.3 / §8.1.3.5: a leg placed with an :class:`Authenticator` answers a 401/407 to
  its INVITE (the INVITE again, CSeq + 1, once per realm: the session starts over) and BYE.
- The sessions' timers (2xx retransmission, glare retry, RFC 4028 refresh and expiry) are
  kept on one heap: :meth:`~UaCore.next_deadline` is the earliest, for one loop timer.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Sequence
from typing import Final

from ._ua_actions import (
    Authenticator,
    CallEnded,
    CancelInvite,
    Deliver,
    IncomingCall,
    NewTransaction,
    Respond,
    RespondDirect,
    SendAck,
    SourceLike,
    TransportLike,
    UaAction,
    Unhandled,
)
from ._ua_leg import SETUP, Leg
from .dialog import DialogId, DialogTable
from .errors import ParseError
from .headers import Address, CSeq, Headers, parse_address
from .message import Request, Response, make_response
from .refer import match_replaces, replaces_of
from .session import (
    InviteSession,
    Role,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    State,
)
from .transaction import ServerState, ServerTransaction
from .uri import SipUri, Uri
from .validate import KNOWN_METHODS, UasPolicy, check_request, options_response

__all__ = [
    "DEFAULT_POLICY",
    "Authenticator",
    "CallEnded",
    "CancelInvite",
    "Deliver",
    "IncomingCall",
    "Leg",
    "NewTransaction",
    "Respond",
    "RespondDirect",
    "SendAck",
    "SourceLike",
    "TransportLike",
    "UaAction",
    "UaCore",
    "Unhandled",
]

#: The methods the UA core handles; OPTIONS names UPDATE and timer (RFC 3311, RFC 4028).
DEFAULT_POLICY: Final = UasPolicy(
    allowed_methods=("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "REFER", "NOTIFY"),
    supported=("timer", "replaces"),
)
#: Requests that only make sense inside a dialog: 481 without one (§12.2.2, RFC 3311 §5.2).
_NEED_DIALOG: Final = frozenset({"BYE", "UPDATE", "PRACK", "INFO", "REFER", "NOTIFY"})
_SDP: Final = "application/sdp"
#: An INVITE server transaction that still carries our 2xx (RFC 6026 §7.1).
_IN_TRANSACTION: Final = frozenset({ServerState.PROCEEDING, ServerState.ACCEPTED})


class UaCore:
    """The UA core of one endpoint: its legs' dialogs, their timers and the §8.2 policy.

    ``config`` is every session's (timers, RFC 4028 wishes); ``policy`` the §8.2 checks and
    the OPTIONS answer; ``user`` the user part of our Contact; ``rng`` makes tags, Call-IDs
    and glare delays.
    """

    __slots__ = (
        "_contacts",
        "_heap",
        "_live",
        "_seq",
        "config",
        "dialogs",
        "earliest_new",
        "policy",
        "rng",
        "user",
    )

    def __init__(
        self,
        *,
        config: SessionConfig | None = None,
        policy: UasPolicy = DEFAULT_POLICY,
        user: str = "hybridvoice",
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or SessionConfig()
        self.policy = policy
        self.user = user
        self.rng = rng or random.Random()
        self.dialogs: DialogTable[Leg] = DialogTable()
        self._contacts: dict[tuple[str, int], Address] = {}
        self._heap: list[tuple[float, int, Leg]] = []  # (deadline, order, leg), stale ones too
        self._seq = itertools.count()
        self._live = 0  # legs with a deadline: the heap's valid entries
        #: the earliest deadline queued since the adapter last looked (it sets this back to
        #: None): while None, the loop timer it armed at ``next_deadline()`` still stands
        self.earliest_new: float | None = None

    def _token(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def contact(self, transport: TransportLike, user: str | None = None) -> Address:
        """Our Contact on ``transport`` (§8.1.1.8): its sent-by, ``transport=`` unless UDP."""
        user = user or self.user
        key = (user, id(transport))
        address = self._contacts.get(key)
        if address is None:
            suffix = "" if transport.kind == "UDP" else f";transport={transport.kind.lower()}"
            address = parse_address(f"<sip:{user}@{transport.sent_by}{suffix}>")
            self._contacts[key] = address
        return address

    # --- timers ---------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The earliest deadline of every live session, None without any."""
        heap = self._heap
        while heap:
            when, _, leg = heap[0]
            if leg.deadline == when:
                return when
            heapq.heappop(heap)  # superseded: the session moved its deadline
        return None

    def handle_timers(self, now: float) -> list[UaAction]:
        """Fire the timers of every session due at ``now``."""
        out: list[UaAction] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, leg = heapq.heappop(heap)
            if leg.deadline != when:
                continue
            self._queue(leg, None)
            leg.session.handle_timer(now)
            out += self.drain(leg)
        if heap:  # the adapter's timer has fired: the deadlines still queued are news to it
            first = heap[0][0]
            new = self.earliest_new
            if new is None or first < new:
                self.earliest_new = first
        return out

    # --- outgoing calls (§8.1.1, §13.2.1) -------------------------------------------------
    def invite(
        self,
        uri: Uri,
        *,
        from_: Address,
        to: Address,
        sdp: bytes | None,
        transport: TransportLike,
        destination: object = None,
        headers: Sequence[tuple[str, object]] = (),
        auth: Authenticator | None = None,
    ) -> tuple[Leg, list[UaAction]]:
        """A new call to ``uri``: an INVITE with a fresh Call-ID, From tag, CSeq 1,
        Max-Forwards 70 and our Contact on ``transport`` (§8.1.1), sent to ``destination``
        when given, else to its first Route or ``uri`` (§8.1.2). ``sdp`` None sends an
        offer-less INVITE. With ``auth`` a 401/407 is answered once per realm (§22.2)."""
        user = from_.uri.user if isinstance(from_.uri, SipUri) else None
        host = transport.advertised[0]
        # the transport's cache of parsed values (when it has one): the typed views of the
        # INVITE, and of the requests of its dialog, hit what its messages parse
        h = Headers(None, getattr(transport, "values", None))
        h.add("Max-Forwards", 70)
        h.add("From", from_.with_tag(self._token()[:12]))
        h.add("To", to)
        h.add("Call-ID", f"{self._token()}{self._token()[:8]}@{host}")
        h.add("CSeq", CSeq(1, "INVITE"))
        h.add("Contact", self.contact(transport, user))
        for name, value in headers:
            h.add(name, value)
        request = Request("INVITE", uri, h)
        request.set_body(sdp or b"", _SDP if sdp else None)
        session = InviteSession.outgoing(request, config=self.config, rng=self.rng)
        leg = Leg(self, session, transport)
        leg.destination = destination
        leg.auth = auth
        return leg, self.drain(leg)

    # --- requests (§8.2, §12.2.2, §9.2) ---------------------------------------------------
    def receive_request(
        self, tx: ServerTransaction, request: Request, source: SourceLike, now: float
    ) -> list[UaAction]:
        """A new server transaction: CANCEL to the INVITE's leg (§9.2), a To tag to its
        dialog (§12.2.2, else 481), otherwise the §8.2 checks then a new call or the app."""
        try:
            if request.method == "CANCEL":
                return self._cancel(tx, request, now)
            to = request.to
            if to is not None and to.tag is not None:
                leg = self.dialogs.match_request(request)
                if leg is None or leg.disconnected:
                    return [Respond(None, tx, make_response(request, 481))]
                leg.server_txs[id(request)] = tx
                leg.session.receive_request(request, now)
                return self.drain(leg)
        except ParseError as exc:
            return [Respond(None, tx, make_response(request, 400, str(exc)[:80]))]
        return self._out_of_dialog(tx, request, source, now)

    def receive_ack(self, request: Request, source: object, now: float) -> list[UaAction]:
        """The ACK for a 2xx goes to its dialog's session (§13.3.1.4); others are dropped."""
        try:
            leg = self.dialogs.match_request(request)
        except ParseError:
            return []
        if leg is None:
            return []
        leg.session.receive_request(request, now)
        return self.drain(leg)

    def stray_response(self, response: Response, now: float) -> list[UaAction]:
        """A 2xx retransmission or a 2xx of another fork after the INVITE transaction ended:
        to the leg of its dialog set (Call-ID + From tag) to ACK it, then BYE (§13.2.2.4)."""
        try:
            cseq = response.cseq
            dialog_id = DialogId.of_response(response)
        except ParseError:
            return []
        if cseq is None or cseq.method != "INVITE" or dialog_id is None:
            return []
        if not 200 <= response.status < 300:
            return []
        forks = self.dialogs.dialog_set(dialog_id.call_id, dialog_id.local_tag)
        leg = next(iter(forks.values()), None)
        if leg is None:
            return []
        leg.session.receive_response(response, now)
        return self.drain(leg)

    def default_response(self, request: Request, to_tag: str) -> Response:
        """The UA's answer to an ``Unhandled`` request the application did not take: OPTIONS
        200 (§11.2), 481 for a method that needs a dialog, else 405/501 with Allow (§8.2.1)."""
        method = request.method
        if method == "OPTIONS":
            return options_response(request, policy=self.policy, to_tag=to_tag)
        if method in _NEED_DIALOG:
            return make_response(request, 481, to_tag=to_tag)
        status = 405 if method in KNOWN_METHODS else 501
        allow = [("Allow", ", ".join(self.policy.allowed_methods))]
        return make_response(request, status, to_tag=to_tag, headers=allow)

    def _cancel(self, tx: ServerTransaction, request: Request, now: float) -> list[UaAction]:
        invite_tx = tx.cancels
        leg = None if invite_tx is None else invite_tx.tu_data
        if isinstance(leg, Leg) and not leg.disconnected:
            leg.server_txs[id(request)] = tx
            leg.session.receive_request(request, now)
            return self.drain(leg)
        # the INVITE was answered by us directly: nothing to cancel (§9.2)
        return [Respond(None, tx, make_response(request, 200))]

    def _out_of_dialog(
        self, tx: ServerTransaction, request: Request, source: SourceLike, now: float
    ) -> list[UaAction]:
        tag = self._token()[:12]
        error = check_request(request, policy=self.policy, to_tag=tag)
        method = request.method
        if error is not None:
            return [] if method == "ACK" else [Respond(None, tx, error)]
        if method == "INVITE":
            return self._incoming(tx, request, source, tag)
        if method == "ACK":
            return []  # an ACK for nothing we know (§17.2.3): dropped
        return [Unhandled(tx, request, tag)]

    def _incoming(
        self, tx: ServerTransaction, request: Request, source: SourceLike, tag: str
    ) -> list[UaAction]:
        user = request.uri.user if isinstance(request.uri, SipUri) else None
        transport = source.transport
        contact = self.contact(transport, user)
        session = InviteSession.incoming(request, tag, contact, config=self.config, rng=self.rng)
        leg = Leg(self, session, transport, source)
        leg.server_txs[id(request)] = tx
        tx.tu_data = leg
        out = self.drain(leg)
        if not leg.disconnected and "Replaces" in request.headers:
            refusal = self._match_replaces(leg, request)
            if refusal is not None:
                out += leg.reject(refusal)
                return out
        if not leg.disconnected:
            out.append(IncomingCall(leg))
        return out

    def _match_replaces(self, leg: Leg, request: Request) -> int | None:
        """RFC 3891 §3: find the dialog an INVITE with Replaces names (``leg.replaces``),
        or the refusal: 400 malformed, 481 no such dialog (or an early one we initiated),
        603 already ended, 486 a confirmed one for ``early-only``."""
        try:
            replaces = replaces_of(request)
        except ParseError:
            return 400
        found = None if replaces is None else match_replaces(self.dialogs, replaces)
        if replaces is None or found is None or found is leg:
            return 481
        if found.disconnected:
            return 603
        early = found.session.state is not State.CONFIRMED
        if early and not found.incoming:
            return 481
        if replaces.early_only and not early:
            return 486
        leg.replaces = found
        return None

    # --- our client transactions ----------------------------------------------------------
    def response_for(
        self, leg: Leg, request: Request, response: Response, now: float
    ) -> list[UaAction]:
        """A response to ``request``, sent by ``leg`` in a client transaction. The CANCEL's
        own response is ignored: the INVITE's 487 (or 2xx) tells the session (§9.1)."""
        if request.method == "CANCEL":
            return []
        if response.status in (401, 407) and leg.auth is not None:
            retried = self._authenticate(leg, request, response)
            if retried is not None:
                return retried
        leg.session.receive_response(response, now)
        return self.drain(leg)

    def timeout_for(
        self, leg: Leg, request: Request, cause: str | None, now: float
    ) -> list[UaAction]:
        """``request`` got no response (Timer B/F) or could not be sent (``cause``, §8.1.3.1:
        a 408 to the session)."""
        if request.method == "CANCEL":
            return []
        leg.session.request_timeout(request, now, cause)
        return self.drain(leg)

    def _authenticate(
        self, leg: Leg, request: Request, response: Response
    ) -> list[UaAction] | None:
        """Send ``request`` again with credentials for ``response``'s challenge (§22.2):
        the initial INVITE while the call is being set up and not cancelled (the session
        starts over with the new INVITE, §8.1.3.5), or a BYE. None: the session takes the
        401/407 as the final response."""
        auth = leg.auth
        assert auth is not None
        session = leg.session
        method = request.method
        if method == "INVITE":
            if (
                leg.incoming
                or leg.cancel_asked
                or session.state not in SETUP
                or response.cseq != session.invite.cseq
                or not auth.answer(response)
            ):
                return None
            invite = _next(session.invite)
            auth.apply(invite)
            leg.session = InviteSession.outgoing(invite, config=self.config, rng=self.rng)
            return self.drain(leg)
        if method == "BYE":
            headers = request.headers
            if "Authorization" not in headers and "Proxy-Authorization" not in headers:
                auth.begin()  # a new request: the INVITE's realms may challenge it once
            if not auth.answer(response):
                return None
            bye = _next(request)
            auth.apply(bye)
            out: list[UaAction] = []
            self._send_request(leg, bye, out)
            return out
        return None

    # --- the session's actions, as the UA's -----------------------------------------------
    def drain(self, leg: Leg) -> list[UaAction]:
        """The actions for what ``leg``'s session queued; then index its dialogs (§12) and
        queue its deadline."""
        out: list[UaAction] = []
        session = leg.session
        for event in session.events():
            if isinstance(event, SendResponse):
                self._send_response(leg, event.response, event.for_request, out)
            elif isinstance(event, SendRequest):
                request = event.request
                if leg.bye_headers and request.method == "BYE":  # bye(headers=...): a Reason,
                    for name, value in leg.bye_headers:  # once: a challenged BYE's copy has it
                        request.headers.add(name, value)
                self._send_request(leg, request, out)
            elif isinstance(event, SendCancel):
                out.append(CancelInvite(leg))
            else:
                out.append(Deliver(leg, event))
        ids = session.dialog_ids
        if ids != leg.dialog_ids:
            dialogs = self.dialogs
            for old in leg.dialog_ids:
                if old not in ids:
                    dialogs.remove(old)
            for new in ids:
                dialogs.add(new, leg)
            leg.dialog_ids = ids
        if session.state is State.DISCONNECTED:
            deadline = None
            if not leg.ended:
                leg.ended = True
                out.append(CallEnded(leg))
        else:
            deadline = session.next_deadline()
        if deadline != leg.deadline:
            self._queue(leg, deadline)
        return out

    def _queue(self, leg: Leg, deadline: float | None) -> None:
        """Move ``leg``'s deadline; the heap keeps superseded entries until they surface,
        or until they are half of it (then it is rebuilt: a call that ended with an RFC 4028
        refresh due in 15 minutes is not kept that long)."""
        before = leg.deadline
        leg.deadline = deadline
        if before is None:
            self._live += 1
        elif deadline is None:
            self._live -= 1
        if deadline is None:
            return
        new = self.earliest_new
        if new is None or deadline < new:
            self.earliest_new = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._seq), leg))
        if len(heap) > 2 * self._live + 64:
            heap[:] = [entry for entry in heap if entry[2].deadline == entry[0]]
            heapq.heapify(heap)

    def _send_request(self, leg: Leg, request: Request, out: list[UaAction]) -> None:
        """ACK for a 2xx: stateless (§13.2.2.4, §17.1.1.3); the rest in a client transaction
        (§17.1) to the first Route, else the Request-URI (§8.1.2); the initial INVITE to the
        leg's destination when it has one."""
        if "Via" in request.headers:  # an ACK re-sent for a retransmitted 2xx: a new Via
            request = request.copy()
            request.headers.remove("Via")
        method = request.method
        to = request.to
        initial = to is None or to.tag is None
        destination = leg.destination if initial else None
        hop: Uri | None = None
        if destination is None:
            routes = request.route
            hop = routes[0].uri if routes else request.uri
        if method == "ACK":
            assert hop is not None  # an ACK has a To tag
            out.append(SendAck(leg, request, hop))
            return
        first = initial and method == "INVITE" and leg.session.role is Role.UAC
        out.append(NewTransaction(leg, request, destination, hop, first))

    def _send_response(
        self, leg: Leg, response: Response, request: Request, out: list[UaAction]
    ) -> None:
        """In the request's server transaction; a 2xx to an INVITE whose transaction has left
        the Accepted state (RFC 6026 §7.1) goes out directly, as the TU's own (§13.3.1.4)."""
        key = id(request)
        tx = leg.server_txs.get(key)
        if tx is None:
            return
        status = response.status
        invite_2xx = tx.is_invite and 200 <= status < 300
        if status >= 200 and not invite_2xx:
            del leg.server_txs[key]
        if invite_2xx and tx.state not in _IN_TRANSACTION:
            if tx.context is not None:
                out.append(RespondDirect(leg, tx.context, response))
            return
        out.append(Respond(leg, tx, response))


def _next(request: Request) -> Request:
    """The same request with CSeq + 1 and no Via (the adapter adds one with a new branch)."""
    cseq = request.cseq
    assert cseq is not None
    again = request.copy()
    again.headers.remove("Via")
    again.headers.set("CSeq", CSeq(cseq.seq + 1, cseq.method))
    return again
