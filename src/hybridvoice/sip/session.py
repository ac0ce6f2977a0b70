"""INVITE sessions over dialogs (PJSIP's inv_session), sans-IO.

RFC 3261 §13 (INVITE; the ACK for every 2xx of every fork, §13.2.2.4; the UAS's 2xx
retransmission until the ACK, §13.3.1.4), §9 (CANCEL), §14 (re-INVITE, glare §14.1/§14.2),
§15 (BYE); RFC 3311 (UPDATE); RFC 4028 (session timers); RFC 3264 offer/answer with the SDP
as opaque bytes; RFC 6141 §4 (target refresh); RFC 3515 (REFER and the NOTIFYs of its implicit
subscription in the confirmed dialog, the state and messages in ``refer``).

Inputs: ``receive_request``, ``receive_response``, ``request_timeout``, ``handle_timer``
and the application's calls, always with ``now`` where a timer may start. Outputs, drained
with ``events()``: actions for the endpoint and SIP-independent call-control events for the
application (sippy's idea). The endpoint sends a ``SendRequest`` ACK outside any transaction
(§17.1.1.3) and any other request in a new client transaction, adding the top Via (requests
built here have none); ``SendCancel(invite)`` is ``layer.cancel`` of that INVITE's
transaction (§9.1); ``SendResponse(response, for_request)`` goes to the server transaction
of ``for_request`` (2xx retransmissions included: this session times them). It feeds our
client transactions' responses, stray 2xx retransmissions and in-dialog requests (ACKs
included) back, and a transaction timeout as ``request_timeout``. Every state change is in
``TRANSITIONS``; an illegal call raises ``LocalProtocolError``.

The vocabulary (states, triggers, ``TRANSITIONS``, actions, events, ``SessionConfig``) lives
in ``_session_types`` and is re-exported here; the RFC 4028 header rules and deadlines are
pure functions in ``_session_timer``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from typing import Final, TypedDict

from . import _session_timer as rfc4028
from ._session_types import (
    TRANSITIONS,
    Action,
    Answered,
    CallEvent,
    Cause,
    Confirmed,
    Disconnected,
    EarlyMedia,
    Event,
    Offer,
    OfferAnswered,
    OfferRejected,
    Ringing,
    Role,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    Side,
    State,
    Trigger,
)
from .dialog import Dialog, DialogError, DialogId, DialogState, ack_credentials
from .errors import LocalProtocolError
from .headers import Address, CSeq, parse_address
from .message import Message, Request, Response, make_response
from .refer import Refer, ReferNotify, ReferResult, ReferState, ReferTo

__all__ = [
    "TRANSITIONS", "Action", "Answered", "CallEvent", "Cause", "Confirmed", "Disconnected",
    "EarlyMedia", "Event", "InviteSession", "Offer", "OfferAnswered", "OfferRejected", "Refer",
    "ReferNotify", "ReferResult", "Ringing",
    "Role", "SendCancel", "SendRequest", "SendResponse", "SessionConfig", "State", "Trigger",
]  # fmt: skip

SDP: Final = "application/sdp"
_ALLOW: Final = "INVITE, ACK, CANCEL, BYE, UPDATE, OPTIONS, REFER, NOTIFY"
_CAPABILITIES: Final = (("Allow", _ALLOW), ("Supported", "timer"))
_SETUP: Final = frozenset({State.CALLING, State.INCOMING, State.EARLY})


def _has_token(message: Message, header: str, token: str) -> bool:
    return token.lower() in (v.lower() for v in message.headers.values(header))


def _allow(message: Message) -> frozenset[str]:
    return frozenset(v.strip().upper() for v in message.headers.values("Allow"))


class _Body(TypedDict):
    body: bytes
    content_type: str | None


def _body(sdp: bytes | None) -> _Body:
    """Keyword arguments putting ``sdp`` (or nothing) in a message."""
    return {"body": sdp or b"", "content_type": SDP if sdp else None}


class _Timer(enum.Enum):
    RETRANSMIT_2XX = "2xx retransmission"  # §13.3.1.4
    GLARE_RETRY = "glare retry"  # §14.1
    REFRESH = "session refresh"  # RFC 4028 §10
    EXPIRE = "session expiry"  # RFC 4028 §10


class _Pending2xx:
    """A 2xx to an INVITE, retransmitted until its ACK (§13.3.1.4)."""

    __slots__ = ("give_up", "interval", "request", "response")

    def __init__(self, response: Response, request: Request, interval: float, give_up: float):
        self.response, self.request = response, request
        self.interval, self.give_up = interval, give_up


class InviteSession:
    """One INVITE session, caller (``outgoing``) or callee (``incoming``) side."""

    __slots__ = (
        "_acks", "_bye_pending", "_cancel_sent", "_cancelling", "_config", "_dialog", "_events",
        "_forks", "_glare_retry", "_interval", "_late_ack", "_local_sdp", "_peer_allows_update",
        "_pending_2xx", "_provisional_seen", "_refer", "_refresher", "_refreshing", "_request_in",
        "_request_out", "_rng", "_timeout_detail", "_timers", "invite", "peer_allow", "role",
        "state",
    )  # fmt: skip

    def __init__(self, role: Role, invite: Request, config: SessionConfig, rng: random.Random):
        self.role, self.invite, self.state = role, invite, State.NULL
        self._config, self._rng = config, rng
        self._events: list[Event] = []
        self._timers: dict[_Timer, float] = {}
        self._dialog: Dialog | None = None  # UAS: from the start; UAC: from the first 2xx
        self._forks: dict[str, Dialog] = {}  # UAC early dialogs by To tag, latest last
        self._acks: dict[tuple[str, int], Request] = {}  # (remote tag, CSeq) -> our ACK
        self._late_ack: tuple[Dialog, Response] | None = None  # a 2xx offer awaiting our answer
        self._pending_2xx: _Pending2xx | None = None
        self._request_out: Request | None = None  # our re-INVITE/UPDATE in progress
        self._request_in: Request | None = None  # the peer's, awaiting accept/reject_offer
        self._refreshing = False  # _request_out is our own session refresh
        self._glare_retry: tuple[str, bytes | None, bool] | None = None
        self._local_sdp = (invite.body or None) if role is Role.UAC else None
        self._interval: int | None = None  # the RFC 4028 session interval, once negotiated
        self._refresher = self._peer_allows_update = self._bye_pending = False
        self._provisional_seen = self._cancelling = self._cancel_sent = False
        self._refer = ReferState()  # RFC 3515 in this session's dialog
        self._timeout_detail: str | None = None  # see request_timeout()
        #: the methods the peer's INVITE (UAS) or 2xx (UAC) listed in Allow, upper case
        self.peer_allow: frozenset[str] = frozenset()

    # --- creation -------------------------------------------------------------------------
    @classmethod
    def outgoing(
        cls,
        invite: Request,
        *,
        config: SessionConfig | None = None,
        rng: random.Random | None = None,
    ) -> InviteSession:
        """Start a call with ``invite`` (From tag, Call-ID, CSeq, Contact; To without tag).
        Adds ``Allow``, ``Supported: timer`` and Session-Expires/Min-SE when missing."""
        from_, to = invite.from_, invite.to
        if invite.method != "INVITE" or invite.cseq is None or invite.call_id is None:
            raise LocalProtocolError("an initial INVITE needs a Call-ID and a CSeq")
        if from_ is None or from_.tag is None or to is None or to.tag or not invite.contact:
            raise LocalProtocolError("an initial INVITE needs a From tag, no To tag, a Contact")
        config = config or SessionConfig()
        invite = invite.copy()
        for name, value in _CAPABILITIES:
            if name not in invite.headers:
                invite.headers.add(name, value)
        if config.session_expires is not None and "Session-Expires" not in invite.headers:
            invite.headers.add("Session-Expires", config.session_expires)
            invite.headers.add("Min-SE", config.min_se)
        session = cls(Role.UAC, invite, config, rng or random.Random())
        session._move(Trigger.SEND_INVITE)
        session._emit(SendRequest(invite))
        return session

    @classmethod
    def incoming(
        cls,
        invite: Request,
        local_tag: str,
        local_contact: Address | str,
        *,
        config: SessionConfig | None = None,
        rng: random.Random | None = None,
    ) -> InviteSession:
        """Take an initial INVITE; our responses carry To tag ``local_tag``. One that
        cannot form a dialog is answered 400 and one whose Session-Expires is below our
        Min-SE 422 (RFC 4028 §8): the session is then already disconnected."""
        if invite.to is not None and invite.to.tag is not None:
            raise LocalProtocolError("an INVITE with a To tag belongs to an existing session")
        contact = parse_address(local_contact) if isinstance(local_contact, str) else local_contact
        session = cls(Role.UAS, invite, config or SessionConfig(), rng or random.Random())
        session._move(Trigger.RECV_INVITE)
        session._peer_allows_update = _has_token(invite, "Allow", "UPDATE")
        session.peer_allow = _allow(invite)
        try:
            session._dialog = dialog = Dialog.from_uas(invite, local_tag, contact)
        except DialogError as exc:
            bad = make_response(invite, 400, str(exc), to_tag=local_tag)
            session._emit(SendResponse(bad, invite))
            session._finish(Cause.REJECTED, 400, "local")
            return session
        too_small = session._too_small(dialog, invite)
        if too_small is not None:
            session._emit(SendResponse(too_small, invite))
            session._finish(Cause.REJECTED, 422, "local")
        return session

    # --- outputs and timers -----------------------------------------------------------------
    def events(self) -> list[Event]:
        """Return and clear the queued actions and events."""
        events, self._events = self._events, []
        return events

    @property
    def dialog(self) -> Dialog | None:
        """The session's dialog (UAC: once a 2xx arrived)."""
        return self._dialog

    @property
    def early_dialogs(self) -> tuple[Dialog, ...]:
        """UAC: the early dialogs of the forks that sent a 1xx with a To tag (§12.1.2)."""
        return tuple(self._forks.values())

    @property
    def dialog_ids(self) -> tuple[DialogId, ...]:
        """The live dialogs' IDs, to index this session in a ``DialogTable``."""
        return tuple(d.id for d in self._dialogs())

    @property
    def session_interval(self) -> int | None:
        """The negotiated RFC 4028 session interval; None without session timer."""
        return self._interval

    @property
    def is_refresher(self) -> bool:
        return self._interval is not None and self._refresher

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        while self._timers:
            timer, due = min(self._timers.items(), key=lambda item: item[1])
            if due > now:
                return
            del self._timers[timer]
            _TIMER_HANDLERS[timer](self, now)

    # --- the application's calls ------------------------------------------------------------
    def ring(self, sdp: bytes | None = None, *, status: int = 180) -> None:
        """UAS: send a provisional response (180, or 183 with early-media SDP)."""
        dialog = self._uas_dialog()
        if not 100 < status < 200:
            raise LocalProtocolError(f"{status} is not a provisional status")
        self._move(Trigger.PROVISIONAL)
        response = dialog.create_response(self.invite, status, **_body(sdp))
        self._emit(SendResponse(response, self.invite))

    def answer(self, sdp: bytes | None, now: float) -> None:
        """UAS: send the 2xx, retransmitted until the ACK arrives (§13.3.1.4)."""
        self._uas_dialog()
        self._move(Trigger.ACCEPTED)
        self._send_2xx(self.invite, sdp, now)

    def reject(
        self, status: int, reason: str | None = None, *, headers: Sequence[tuple[str, object]] = ()
    ) -> None:
        """UAS: refuse the call with a 3xx-6xx final response."""
        dialog = self._uas_dialog()
        if not 300 <= status < 700:
            raise LocalProtocolError(f"{status} is not a failure status")
        self._check(Trigger.FAILED)
        response = dialog.create_response(self.invite, status, reason, headers=headers)
        self._emit(SendResponse(response, self.invite))
        self._finish(Cause.REJECTED, status, "local")

    def cancel(self) -> None:
        """UAC: cancel the unanswered INVITE; the CANCEL waits for a provisional (§9.1)."""
        if self.role is not Role.UAC or self.state not in _SETUP:
            raise LocalProtocolError(f"cannot cancel a {self.role.value} call in {self.state}")
        self._cancelling = True
        self._send_cancel_if_allowed()

    def bye(self) -> None:
        """Hang up: CANCEL (UAC) or 603 (UAS) before the answer, else BYE (§15). A callee
        waiting for the ACK sends its BYE once the ACK arrives or times out (§15)."""
        if self.state is State.DISCONNECTED:
            return
        if self.state in _SETUP and self.role is Role.UAC:
            self.cancel()
        elif self.state in _SETUP:
            self.reject(603)
        elif self._pending_2xx is not None and self.state is State.CONNECTING:
            self._bye_pending = True
        else:
            if self._late_ack is not None:
                self._ack_late(None)
            self._send_bye()
            self._finish(Cause.NORMAL, None, "local")

    def reinvite(self, sdp: bytes | None) -> None:
        """Send a re-INVITE offering ``sdp`` (hold/resume, §14.1); None asks for an offer."""
        if self.state is not State.CONFIRMED:
            raise LocalProtocolError("a re-INVITE needs a confirmed session (§14.1)")
        self._check_idle()
        self._send_offer("INVITE", sdp)

    def update(self, sdp: bytes | None = None) -> None:
        """Send an UPDATE (RFC 3311) in an early or confirmed dialog. Without 100rel an
        early UPDATE cannot carry an offer (RFC 3311 §5.1)."""
        if self._current_dialog() is None or self.state not in _UPDATABLE:
            raise LocalProtocolError(f"no dialog to send an UPDATE in ({self.state})")
        if sdp is not None and self.state is State.EARLY:
            raise LocalProtocolError("no offer in an early UPDATE before the initial answer")
        self._check_idle()
        self._send_offer("UPDATE", sdp)

    def accept_offer(self, sdp: bytes | None, now: float) -> None:
        """Answer the peer's ``Offer`` with ``sdp``: in a 2xx, or in the ACK of its 2xx."""
        if self._late_ack is not None:
            self._ack_late(sdp)
            return
        request = self._request_in
        if request is None:
            raise LocalProtocolError("there is no offer to answer")
        self._request_in = None
        self._send_2xx(request, sdp, now)

    def reject_offer(self, status: int = 488) -> None:
        """Refuse the peer's ``Offer``; the session goes on (§14.2). An offer in a 2xx
        cannot be refused: it is acknowledged and the call ended (RFC 3264 §6)."""
        request, dialog = self._request_in, self._dialog
        if self._late_ack is not None:
            self._ack_late(None)
            self._send_bye()
            self._finish(Cause.REJECTED, status, "local")
        elif request is None or dialog is None:
            raise LocalProtocolError("there is no offer to reject")
        else:
            self._request_in = None
            self._emit(SendResponse(dialog.create_response(request, status), request))

    # --- REFER (RFC 3515, RFC 4488; the state and messages are in ``refer``) -----------------
    def refer(
        self,
        refer_to: ReferTo,
        *,
        referred_by: Address | None = None,
        subscription: bool = True,
        headers: Sequence[tuple[str, object]] = (),
    ) -> None:
        """Send a REFER in the confirmed dialog; ``ReferResult`` then ``ReferNotify`` follow."""
        dialog = self._confirmed_dialog()
        self._emit(SendRequest(self._refer.send_refer(
            dialog, refer_to, referred_by=referred_by, subscription=subscription, headers=headers,
        )))  # fmt: skip

    def accept_refer(self) -> None:
        """Answer the peer's ``Refer`` 202 and send the first NOTIFY (100 Trying)."""
        dialog = self._confirmed_dialog()
        pending = self._refer.incoming
        response, notify = self._refer.accept(dialog)
        assert pending is not None
        self._emit(SendResponse(response, pending))
        if notify is not None:
            self._emit(SendRequest(notify))

    def reject_refer(self, status: int = 603) -> None:
        dialog = self._confirmed_dialog()
        pending = self._refer.incoming
        response = self._refer.reject(dialog, status)
        assert pending is not None
        self._emit(SendResponse(response, pending))

    def notify_refer(self, status: int, reason: str | None = None) -> None:
        """Report the referenced request's progress; a final ``status`` ends the subscription."""
        self._emit(SendRequest(self._refer.notify(self._confirmed_dialog(), status, reason)))

    def _confirmed_dialog(self) -> Dialog:
        dialog = self._dialog
        if self.state is not State.CONFIRMED or dialog is None:
            raise LocalProtocolError("REFER and its NOTIFYs need a confirmed session")
        return dialog

    def _on_refer(self, dialog: Dialog, request: Request, now: float) -> None:
        if self.state is not State.CONFIRMED:
            self._emit(SendResponse(dialog.create_response(request, 403), request))
            return
        outcome = self._refer.receive_refer(dialog, request)
        if isinstance(outcome, Refer):
            self._emit(outcome)
        else:
            self._emit(SendResponse(outcome, request))

    def _on_notify(self, dialog: Dialog, request: Request, now: float) -> None:
        response, progress = self._refer.receive_notify(dialog, request)
        self._emit(SendResponse(response, request))
        if progress is not None:
            self._emit(progress)

    # --- requests from the peer -------------------------------------------------------------
    def receive_request(self, request: Request, now: float) -> None:
        """A request of this session: CANCEL, ACK, BYE, re-INVITE, UPDATE, others."""
        if request.method == "CANCEL":
            self._on_cancel(request)
            return
        dialog = self._dialog_for(request)
        if dialog is None:
            if request.method != "ACK":
                self._emit(SendResponse(make_response(request, 481), request))
            return
        error = dialog.receive_request(request)
        if error is not None:
            self._emit(SendResponse(error, request))
            return
        _REQUEST_HANDLERS.get(request.method, InviteSession._on_other)(self, dialog, request, now)

    def _on_cancel(self, request: Request) -> None:
        """§9.2: the CANCEL gets 200, the INVITE it cancels 487 if still unanswered."""
        dialog, pending = self._dialog, self._request_in
        ok = make_response(request, 200, to_tag=None if dialog is None else dialog.id.local_tag)
        self._emit(SendResponse(ok, request))
        if request.cseq is None or dialog is None:
            return
        cancelled = CSeq(request.cseq.seq, "INVITE")
        if self.role is Role.UAS and self.state in _SETUP and self.invite.cseq == cancelled:
            self._emit(SendResponse(dialog.create_response(self.invite, 487), self.invite))
            self._finish(Cause.CANCELLED, 487, "remote")
        elif pending is not None and pending.cseq == cancelled:
            self._request_in = None
            self._emit(SendResponse(dialog.create_response(pending, 487), pending))

    def _on_ack(self, dialog: Dialog, request: Request, now: float) -> None:
        pending, cseq = self._pending_2xx, request.cseq
        if pending is None or cseq is None or pending.request.cseq != CSeq(cseq.seq, "INVITE"):
            return  # a retransmitted ACK, or one for a 2xx we no longer track
        self._pending_2xx = None
        self._timers.pop(_Timer.RETRANSMIT_2XX, None)
        sdp = request.body or None
        if pending.request is not self.invite:
            if sdp is not None:  # the answer to the offer in our 2xx to an offer-less re-INVITE
                self._emit(OfferAnswered(sdp))
            return
        self._move(Trigger.ACKED)
        self._emit(Confirmed(sdp))
        if self._bye_pending:
            self._send_bye()
            self._finish(Cause.NORMAL, None, "local")

    def _on_bye(self, dialog: Dialog, request: Request, now: float) -> None:
        """§15.1.2: answer 200; an unanswered INVITE gets 487 (UAS) or a CANCEL (UAC)."""
        self._emit(SendResponse(dialog.create_response(request, 200), request))
        if self.state in _SETUP and self.role is Role.UAS:
            self._emit(SendResponse(dialog.create_response(self.invite, 487), self.invite))
        elif self.state in _SETUP:
            self._cancelling = True
            self._send_cancel_if_allowed()
        self._finish(Cause.NORMAL, None, "remote")

    def _on_offer(self, dialog: Dialog, request: Request, now: float) -> None:
        """re-INVITE (§14.2) and UPDATE (RFC 3311 §5.2)."""
        refusal = self._conflict(dialog, request) or self._too_small(dialog, request)
        if refusal is not None:
            self._emit(SendResponse(refusal, request))
        elif request.method == "UPDATE" and not request.body:
            self._send_2xx(request, None, now)  # no offer (a session refresh): 200 at once
        else:
            self._request_in = request
            self._emit(Offer(request.body or None))

    def _on_other(self, dialog: Dialog, request: Request, now: float) -> None:
        if request.method == "OPTIONS":
            response = dialog.create_response(request, 200, headers=_CAPABILITIES)
        else:
            response = dialog.create_response(request, 501)
        self._emit(SendResponse(response, request))

    def _conflict(self, dialog: Dialog, request: Request) -> Response | None:
        """An INVITE or offer crossing ours gets 491 (§14.2, RFC 3311 §5.2); one arriving
        while the peer's previous INVITE or offer is unanswered, 500 with Retry-After."""
        if request.method != "INVITE" and not request.body:
            return None
        if self._request_out is not None or (self.role is Role.UAC and self.state in _SETUP):
            return dialog.create_response(request, 491)
        if self._busy() or (self.role is Role.UAS and self.state in _SETUP):
            retry = [("Retry-After", self._rng.randint(0, 10))]
            return dialog.create_response(request, 500, headers=retry)
        return None

    def _too_small(self, dialog: Dialog, request: Request) -> Response | None:
        """422 with our Min-SE for a too short Session-Expires (RFC 4028 §8)."""
        se = rfc4028.session_expires(request)
        if se is None or se[0] >= self._config.min_se:
            return None
        return dialog.create_response(request, 422, headers=[("Min-SE", self._config.min_se)])

    # --- responses to our requests -----------------------------------------------------------
    def receive_response(self, response: Response, now: float) -> None:
        """A response to a request of this session, stray 2xx retransmissions included."""
        cseq, status = response.cseq, response.status
        if cseq is None or response.to is None:
            return  # no dialog can be found or formed (§8.1.3.3)
        tag = response.to.tag or ""
        if cseq.method in ("REFER", "NOTIFY"):
            if (result := self._refer.receive_response(response)) is not None:
                self._emit(result)
            return
        is_invite_2xx = cseq.method == "INVITE" and 200 <= status < 300
        ack = self._acks.get((tag, cseq.seq)) if is_invite_2xx else None
        out = self._request_out
        if ack is not None:  # §13.2.2.4: every retransmission of a 2xx is ACKed
            self._emit(SendRequest(ack))
        elif out is not None and out.cseq == cseq:
            self._on_request_out_response(out, response, now)
        elif self.role is Role.UAC and cseq == self.invite.cseq:
            self._on_invite_response(response, now)
        elif is_invite_2xx and self._dialog is not None and self._dialog.id.remote_tag == tag:
            self._send_ack(self._dialog, response, None)  # a 2xx we stopped waiting for

    def request_timeout(self, request: Request, now: float, detail: str | None = None) -> None:
        """The transaction of ``request`` timed out or failed: a 408 (§8.1.3.1). ``detail``:
        the transport's words when it could not send it; a session this ends carries it on
        :class:`Disconnected`."""
        self._timeout_detail = detail
        try:
            self.receive_response(make_response(request, 408), now)
        finally:
            self._timeout_detail = None

    def _on_invite_response(self, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            self._on_provisional(response)
        elif status < 300:
            self._on_invite_2xx(response, now)
        elif self.state in _SETUP and not (status == 422 and self._retry_invite(response)):
            for fork in self._forks.values():
                fork.terminate()
            if self._cancelling:
                self._finish(Cause.CANCELLED, status, "local")
            else:
                self._finish(Cause.TIMEOUT if status == 408 else Cause.REJECTED, status, "remote")

    def _on_provisional(self, response: Response) -> None:
        self._provisional_seen = True
        self._send_cancel_if_allowed()
        tag = None if response.to is None else response.to.tag
        if response.status == 100 or self.state not in _SETUP:
            return
        if tag is not None:  # an early dialog per fork (§12.1.2), the latest last
            fork = self._forks.pop(tag, None)
            if fork is None:
                fork = Dialog.from_uac(self.invite, response)
            else:
                fork.receive_response(response)
            self._forks[tag] = fork
        self._move(Trigger.PROVISIONAL)
        sdp = response.body or None
        if response.status == 180:
            self._emit(Ringing(sdp))
        elif sdp is not None:
            self._emit(EarlyMedia(sdp))

    def _on_invite_2xx(self, response: Response, now: float) -> None:
        tag = "" if response.to is None else response.to.tag or ""
        if self._dialog is not None and self._dialog.id.remote_tag == tag:
            return  # retransmitted while the application prepares the answer for our ACK
        if self._dialog is not None or self.state not in _SETUP:
            # §13.2.2.4: a 2xx from another fork (or after we gave up): ACK it, then BYE
            extra = Dialog.from_uac(self.invite, response)
            self._send_ack(extra, response, None)
            self._emit(SendRequest(extra.create_request("BYE")))
            return
        dialog = self._forks.pop(tag, None) or Dialog.from_uac(self.invite, response)
        dialog.receive_response(response)
        for fork in self._forks.values():
            fork.terminate()  # the other early dialogs end with the first 2xx (§13.2.2.4)
        self._forks.clear()
        self._dialog = dialog
        self._move(Trigger.ACCEPTED)
        self._peer_allows_update = _has_token(response, "Allow", "UPDATE")
        self.peer_allow = _allow(response)
        if self._cancelling:  # the 2xx won the race with our CANCEL (§9.1): hang up
            self._send_ack(dialog, response, None)
            self._send_bye()
            self._finish(Cause.CANCELLED, None, "local")
            return
        self._apply_session_timer(response, True, now)
        if not self.invite.body and response.body:  # an offer in the 2xx: answer in the ACK
            self._late_ack = (dialog, response)
            self._emit(Answered(None))
            self._emit(Offer(response.body))
            return
        self._send_ack(dialog, response, None)
        self._move(Trigger.ACKED)
        self._emit(Answered(response.body or None))

    def _retry_invite(self, response: Response) -> bool:
        """After a 422, send the INVITE again with the peer's Min-SE (RFC 4028 §7.4)."""
        min_se, cseq = rfc4028.min_se(response), self.invite.cseq
        current = rfc4028.session_expires(self.invite)
        if min_se is None or cseq is None or (current is not None and current[0] >= min_se):
            return False
        self.invite = self.invite.copy()
        self.invite.headers.set("CSeq", CSeq(cseq.seq + 1, "INVITE"))
        self.invite.headers.set("Session-Expires", min_se)
        self.invite.headers.set("Min-SE", min_se)
        self._forks.clear()
        self._provisional_seen = False
        self._emit(SendRequest(self.invite))
        return True

    def _on_request_out_response(self, request: Request, response: Response, now: float) -> None:
        status, dialog = response.status, self._current_dialog()
        if status < 200 or dialog is None:
            return
        self._request_out = None
        refresh, self._refreshing = self._refreshing, False
        if status in (408, 481):  # the dialog is gone (§12.2.1.2, RFC 4028 §10)
            if status == 408:
                self._send_bye()
            self._finish(Cause.TIMEOUT if status == 408 else Cause.DIALOG_GONE, status, "remote")
            return
        dialog.receive_response(response)
        if 200 <= status < 300:
            self._apply_session_timer(response, True, now)
            if request.method == "INVITE" and not request.body and response.body:
                self._late_ack = (dialog, response)  # an offer in the 2xx: answer in the ACK
                self._emit(Offer(response.body))
                return
            if request.method == "INVITE":
                self._send_ack(dialog, response, None)
            if not refresh:
                self._emit(OfferAnswered(response.body or None))
        elif status == 491:  # glare: the same offer again after a random time (§14.1)
            self._glare_retry = (request.method, request.body or None, refresh)
            self._timers[_Timer.GLARE_RETRY] = now + self._glare_delay()
        elif status == 422 and (min_se := rfc4028.min_se(response) or 0) > (self._interval or 0):
            self._interval = min_se  # RFC 4028 §7.4: ask again with the peer's minimum
            self._send_offer(request.method, request.body or None, refresh=refresh)
        elif not refresh:
            self._emit(OfferRejected(status))

    # --- timers -------------------------------------------------------------------------------
    def _on_retransmit_timer(self, now: float) -> None:
        pending = self._pending_2xx
        assert pending is not None, "the timer and the pending 2xx go together"
        if now >= pending.give_up:  # §13.3.1.4: no ACK within 64*T1: end the session
            self._pending_2xx = None
            self._send_bye()
            self._finish(Cause.NO_ACK, None, "local")
            return
        self._emit(SendResponse(pending.response, pending.request))
        pending.interval = min(2 * pending.interval, self._config.t2)
        self._timers[_Timer.RETRANSMIT_2XX] = min(now + pending.interval, pending.give_up)

    def _glare_delay(self) -> float:
        """§14.1: 2.1-4 s for the Call-ID's owner (the caller), else 0-2 s, in 10 ms units."""
        if self.role is Role.UAC:
            return self._rng.randint(210, 400) / 100
        return self._rng.randint(0, 200) / 100

    def _on_glare_timer(self, now: float) -> None:
        assert self._glare_retry is not None, "the timer and the retry go together"
        if self._busy():  # the peer's request went first: try again later
            self._timers[_Timer.GLARE_RETRY] = now + self._glare_delay()
            return
        (method, sdp, refresh), self._glare_retry = self._glare_retry, None
        self._send_offer(method, sdp, refresh=refresh)

    def _on_refresh_timer(self, now: float) -> None:
        if self._busy() or self._glare_retry is not None:
            self._timers[_Timer.REFRESH] = now + self._config.t2
        elif self._peer_allows_update:  # RFC 4028 §9: an offer-less UPDATE is the cheap refresh
            self._send_offer("UPDATE", None, refresh=True)
        else:
            self._send_offer("INVITE", self._local_sdp, refresh=True)

    def _on_expire_timer(self, now: float) -> None:
        if self._late_ack is not None:
            self._ack_late(None)
        self._send_bye()
        self._finish(Cause.SESSION_EXPIRED, None, "local")

    def _apply_session_timer(self, message: Message, we_requested: bool, now: float) -> None:
        """RFC 4028 §10, from the 2xx that (re)negotiated it: the refresher refreshes at
        half the interval; without a refresh either side sends BYE at the interval minus
        min(32 s, interval/3). "uac" names the requester of that transaction. Timers
        start with the session, not in an early dialog."""
        if self.state in _SETUP:
            return
        self._timers.pop(_Timer.REFRESH, None)
        self._timers.pop(_Timer.EXPIRE, None)
        se = rfc4028.session_expires(message)
        self._interval = None if se is None else se[0]
        if se is None:
            return
        interval, refresher = se
        self._refresher = refresher is None or (refresher == "uac") == we_requested
        if self._refresher:
            self._timers[_Timer.REFRESH] = rfc4028.refresh_deadline(interval, now)
        self._timers[_Timer.EXPIRE] = rfc4028.expiry_deadline(interval, now)

    def _se_response_headers(self, request: Request) -> list[tuple[str, object]]:
        """A 2xx's session timer headers (RFC 4028 §9); without Session-Expires in the
        request we impose ours (or the running interval) once the session is set up."""
        wanted = self._config.session_expires
        imposed = None if self.state in _SETUP else self._interval or wanted
        return rfc4028.response_headers(request, wanted, imposed)

    def _se_request_headers(self) -> list[tuple[str, object]]:
        return rfc4028.request_headers(self._interval, self._refresher, self._config.min_se)

    # --- helpers --------------------------------------------------------------------------------
    def _check(self, trigger: Trigger) -> State:
        target = TRANSITIONS[self.state].get(trigger)
        if target is None:
            raise LocalProtocolError(f"{trigger.value} is not allowed in state {self.state.value}")
        return target

    def _move(self, trigger: Trigger) -> None:
        self.state = self._check(trigger)

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _dialogs(self) -> list[Dialog]:
        dialog = self._dialog
        live = [] if dialog is None or dialog.state is DialogState.TERMINATED else [dialog]
        if self._forks:
            live += [d for d in self._forks.values() if d.state is not DialogState.TERMINATED]
        return live

    def _dialog_for(self, request: Request) -> Dialog | None:
        dialog_id = DialogId.of_received_request(request)
        return next((d for d in self._dialogs() if d.id == dialog_id), None)

    def _current_dialog(self) -> Dialog | None:
        return self._dialog or next(reversed(self._forks.values()), None)

    def _uas_dialog(self) -> Dialog:
        if self.role is not Role.UAS or self._dialog is None:
            raise LocalProtocolError("only the called side can ring, answer or reject")
        return self._dialog

    def _busy(self) -> bool:
        """An INVITE or offer is in progress in either direction (§14.1)."""
        return any(
            pending is not None
            for pending in (self._request_out, self._request_in, self._pending_2xx, self._late_ack)
        )

    def _check_idle(self) -> None:
        if self._busy() or self._glare_retry is not None:
            raise LocalProtocolError("another offer or INVITE is in progress (§14.1)")

    def _send_offer(self, method: str, sdp: bytes | None, *, refresh: bool = False) -> None:
        dialog = self._current_dialog()
        assert dialog is not None
        headers = [*_CAPABILITIES, *self._se_request_headers()]
        self._request_out = dialog.create_request(method, headers=headers, **_body(sdp))
        self._refreshing = refresh
        self._local_sdp = sdp or self._local_sdp
        self._emit(SendRequest(self._request_out))

    def _send_2xx(self, request: Request, sdp: bytes | None, now: float) -> None:
        dialog = self._dialog if request is self.invite else self._dialog_for(request)
        assert dialog is not None
        headers = [*_CAPABILITIES, *self._se_response_headers(request)]
        response = dialog.create_response(request, 200, headers=headers, **_body(sdp))
        self._local_sdp = sdp or self._local_sdp
        self._emit(SendResponse(response, request))
        if request.method == "INVITE":
            t1 = self._config.t1
            self._pending_2xx = _Pending2xx(response, request, t1, now + 64 * t1)
            self._timers[_Timer.RETRANSMIT_2XX] = now + t1
        self._apply_session_timer(response, False, now)

    def _send_ack(self, dialog: Dialog, response: Response, sdp: bytes | None) -> None:
        """The ACK for a 2xx (§13.2.2.4), kept to answer its retransmissions."""
        cseq = response.cseq
        assert cseq is not None
        credentials = ack_credentials(self.invite) if cseq == self.invite.cseq else []
        ack = dialog.create_ack(cseq.seq, headers=credentials, **_body(sdp))
        tag = dialog.id.remote_tag
        self._acks = {key: value for key, value in self._acks.items() if key[0] != tag}
        self._acks[(tag, cseq.seq)] = ack
        self._emit(SendRequest(ack))

    def _ack_late(self, sdp: bytes | None) -> None:
        assert self._late_ack is not None
        (dialog, response), self._late_ack = self._late_ack, None
        self._send_ack(dialog, response, sdp)
        if self.state is State.CONNECTING:
            self._move(Trigger.ACKED)

    def _send_bye(self) -> None:
        dialog = self._dialog
        if dialog is not None and dialog.state is not DialogState.TERMINATED:
            self._emit(SendRequest(dialog.create_request("BYE")))

    def _send_cancel_if_allowed(self) -> None:
        if self._cancelling and self._provisional_seen and not self._cancel_sent:
            self._cancel_sent = True
            self._emit(SendCancel(self.invite))

    def _finish(self, cause: Cause, status: int | None, side: Side) -> None:
        """To DISCONNECTED: a pending request gets 487 (§15.1.2), timers stop, dialogs end."""
        self._move(Trigger.FAILED if self.state in _SETUP else Trigger.ENDED)
        pending, dialog = self._request_in, self._dialog
        if pending is not None and dialog is not None:
            self._emit(SendResponse(dialog.create_response(pending, 487), pending))
        if dialog is not None and (refused := self._refer.abandon(dialog)) is not None:
            self._emit(SendResponse(*refused))
        self._request_in = self._request_out = self._pending_2xx = None
        self._glare_retry = self._late_ack = None
        self._timers.clear()
        for each in self._dialogs():
            each.terminate()
        detail = self._timeout_detail if status == 408 else None
        self._emit(Disconnected(cause, status, side, detail))


_UPDATABLE: Final = frozenset({State.EARLY, State.CONNECTING, State.CONFIRMED})
_REQUEST_HANDLERS: Final[dict[str, Callable[[InviteSession, Dialog, Request, float], None]]] = {
    "ACK": InviteSession._on_ack,
    "NOTIFY": InviteSession._on_notify,
    "REFER": InviteSession._on_refer,
    "BYE": InviteSession._on_bye,
    "INVITE": InviteSession._on_offer,
    "UPDATE": InviteSession._on_offer,
}
_TIMER_HANDLERS: Final[dict[_Timer, Callable[[InviteSession, float], None]]] = {
    _Timer.RETRANSMIT_2XX: InviteSession._on_retransmit_timer,
    _Timer.GLARE_RETRY: InviteSession._on_glare_timer,
    _Timer.REFRESH: InviteSession._on_refresh_timer,
    _Timer.EXPIRE: InviteSession._on_expire_timer,
}
