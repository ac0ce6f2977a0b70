"""INVITE sessions over dialogs (PJSIP's inv_session), sans-IO.

RFC 3261 §13 (INVITE; the ACK for every 2xx of every fork, §13.2.2.4; the UAS's 2xx
retransmission until the ACK, §13.3.1.4), §9 (CANCEL), §14 (re-INVITE, glare §14.1/§14.2),
§15 (BYE); RFC 3311 (UPDATE); RFC 4028 (session timers); RFC 3264 offer/answer, the SDP
carried as bytes and parsed at most once, on first use (the events' ``description``, RFC 4566);
RFC 6141 §4 (target refresh); RFC 3515 (REFER and the NOTIFYs of its implicit subscription in
the confirmed dialog, the state and messages in ``refer``).

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
pure functions in ``_session_timer``. The session's hidden machines are small classes, each
with its table: the 2xx retransmission and the ACKs (``_session_ack``), offer/answer and glare
(``_session_offer``), the RFC 4028 refresher (``_session_refresh``), the caller's CANCEL
(``_session_cancel``) and REFER (``refer``). ``_session_core`` composes them with the dialogs
and timers, ``_session_peer`` holds the handler tables of what comes in, and this module the
application's calls.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

from . import _session_peer as peer
from ._session_core import SessionCore
from ._session_types import (
    CAPABILITIES,
    SDP,
    SETUP,
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
    State,
    Trigger,
    allow_of,
    body,
    has_token,
)
from .dialog import Dialog, DialogError
from .errors import LocalProtocolError
from .headers import Address, parse_address
from .message import Request, Response, make_response
from .refer import Refer, ReferNotify, ReferResult, ReferTo

__all__ = [
    "SDP", "TRANSITIONS", "Action", "Answered", "CallEvent", "Cause", "Confirmed", "Disconnected",
    "EarlyMedia", "Event", "InviteSession", "Offer", "OfferAnswered", "OfferRejected", "Refer",
    "ReferNotify", "ReferResult", "Ringing",
    "Role", "SendCancel", "SendRequest", "SendResponse", "SessionConfig", "State", "Trigger",
]  # fmt: skip

_UPDATABLE: Final = frozenset({State.EARLY, State.CONNECTING, State.CONFIRMED})


class InviteSession(SessionCore):
    """One INVITE session, caller (``outgoing``) or callee (``incoming``) side."""

    __slots__ = ()

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
        for name, value in CAPABILITIES:
            if name not in invite.headers:
                invite.headers.add(name, value)
        if config.session_expires is not None and "Session-Expires" not in invite.headers:
            invite.headers.add("Session-Expires", config.session_expires)
            invite.headers.add("Min-SE", config.min_se)
        session = cls(Role.UAC, invite, config, rng or random.Random())
        session._move(Trigger.SEND_INVITE)
        session._events.append(SendRequest(invite))
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
        session._peer_allows_update = has_token(invite, "Allow", "UPDATE")
        session.peer_allow = allow_of(invite)
        try:
            session._dialog = dialog = Dialog.from_uas(invite, local_tag, contact)
        except DialogError as exc:
            bad = make_response(invite, 400, str(exc), to_tag=local_tag)
            session._events.append(SendResponse(bad, invite))
            session._finish(Cause.REJECTED, 400, "local")
            return session
        too_small = peer.too_small(session, dialog, invite)
        if too_small is not None:
            session._events.append(SendResponse(too_small, invite))
            session._finish(Cause.REJECTED, 422, "local")
        return session

    # --- the application's calls ------------------------------------------------------------
    def ring(self, sdp: bytes | None = None, *, status: int = 180) -> None:
        """UAS: send a provisional response (180, or 183 with early-media SDP)."""
        dialog = self._uas_dialog()
        if not 100 < status < 200:
            raise LocalProtocolError(f"{status} is not a provisional status")
        self._move(Trigger.PROVISIONAL)
        response = dialog.create_response(self.invite, status, **body(sdp))
        self._events.append(SendResponse(response, self.invite))

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
        self._events.append(SendResponse(response, self.invite))
        self._finish(Cause.REJECTED, status, "local")

    def cancel(self) -> None:
        """UAC: cancel the unanswered INVITE; the CANCEL waits for a provisional (§9.1)."""
        if self.role is not Role.UAC or self.state not in SETUP:
            raise LocalProtocolError(f"cannot cancel a {self.role.value} call in {self.state}")
        peer.send_cancel_if_due(self, self._cancel.want())

    def bye(self) -> None:
        """Hang up: CANCEL (UAC) or 603 (UAS) before the answer, else BYE (§15). A callee
        waiting for the ACK sends its BYE once the ACK arrives or times out (§15)."""
        if self.state is State.DISCONNECTED:
            return
        if self.state in SETUP and self.role is Role.UAC:
            self.cancel()
        elif self.state in SETUP:
            self.reject(603)
        elif self._retransmit.pending and self.state is State.CONNECTING:
            self._bye_pending = True
        else:
            if self._acks.late:
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
        if self._acks.late:
            self._ack_late(sdp)
            return
        if self._offers.incoming is None:
            raise LocalProtocolError("there is no offer to answer")
        self._send_2xx(self._offers.reply(), sdp, now)

    def reject_offer(self, status: int = 488) -> None:
        """Refuse the peer's ``Offer``; the session goes on (§14.2). An offer in a 2xx
        cannot be refused: it is acknowledged and the call ended (RFC 3264 §6)."""
        request, dialog = self._offers.incoming, self._dialog
        if self._acks.late:
            self._ack_late(None)
            self._send_bye()
            self._finish(Cause.REJECTED, status, "local")
        elif request is None or dialog is None:
            raise LocalProtocolError("there is no offer to reject")
        else:
            self._offers.reply()
            self._events.append(SendResponse(dialog.create_response(request, status), request))

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
        self._events.append(SendRequest(self._refer.send_refer(
            dialog, refer_to, referred_by=referred_by, subscription=subscription, headers=headers,
        )))  # fmt: skip

    def accept_refer(self) -> None:
        """Answer the peer's ``Refer`` 202 and send the first NOTIFY (100 Trying)."""
        dialog = self._confirmed_dialog()
        pending = self._refer.incoming
        response, notify = self._refer.accept(dialog)
        assert pending is not None
        self._events.append(SendResponse(response, pending))
        if notify is not None:
            self._events.append(SendRequest(notify))

    def reject_refer(self, status: int = 603) -> None:
        dialog = self._confirmed_dialog()
        pending = self._refer.incoming
        response = self._refer.reject(dialog, status)
        assert pending is not None
        self._events.append(SendResponse(response, pending))

    def notify_refer(self, status: int, reason: str | None = None) -> None:
        """Report the referenced request's progress; a final ``status`` ends the subscription."""
        self._events.append(
            SendRequest(self._refer.notify(self._confirmed_dialog(), status, reason))
        )

    # --- what comes in ----------------------------------------------------------------------
    def receive_request(self, request: Request, now: float) -> None:
        """A request of this session: CANCEL, ACK, BYE, re-INVITE, UPDATE, others."""
        if request.method == "CANCEL":
            peer.on_cancel(self, request)
            return
        dialog = self._dialog_for(request)
        if dialog is None:
            if request.method != "ACK":
                self._events.append(SendResponse(make_response(request, 481), request))
            return
        error = dialog.receive_request(request)
        if error is not None:
            self._events.append(SendResponse(error, request))
            return
        peer.REQUEST_HANDLERS.get(request.method, peer.on_other)(self, dialog, request, now)

    def receive_response(self, response: Response, now: float) -> None:
        """A response to a request of this session, stray 2xx retransmissions included."""
        self._on_response(response, now, None)

    def request_timeout(self, request: Request, now: float, detail: str | None = None) -> None:
        """The transaction of ``request`` timed out or failed: a 408 (§8.1.3.1). ``detail``:
        the transport's words when it could not send it; a session this ends carries it on
        :class:`Disconnected`."""
        self._on_response(make_response(request, 408), now, detail)

    def _on_response(self, response: Response, now: float, detail: str | None) -> None:
        """``detail``: the transport's words for a 408 of ``request_timeout``, else None."""
        cseq, status = response.cseq, response.status
        if cseq is None or response.to is None:
            return  # no dialog can be found or formed (§8.1.3.3)
        tag = response.to.tag or ""
        if cseq.method in ("REFER", "NOTIFY"):
            if (result := self._refer.receive_response(response)) is not None:
                self._events.append(result)
            return
        is_invite_2xx = cseq.method == "INVITE" and 200 <= status < 300
        ack = self._acks.sent(tag, cseq.seq) if is_invite_2xx else None
        out = self._offers.outgoing
        if ack is not None:  # §13.2.2.4: every retransmission of a 2xx is ACKed
            self._events.append(SendRequest(ack))
        elif out is not None and out.cseq == cseq:
            peer.on_request_out_response(self, out, response, now, detail)
        elif self.role is Role.UAC and cseq == self.invite.cseq:
            peer.on_invite_response(self, response, now, detail)
        elif is_invite_2xx and self._dialog is not None and self._dialog.id.remote_tag == tag:
            self._send_ack(self._dialog, response, None)  # a 2xx we stopped waiting for

    # --- checks -----------------------------------------------------------------------------
    def _uas_dialog(self) -> Dialog:
        if self.role is not Role.UAS or self._dialog is None:
            raise LocalProtocolError("only the called side can ring, answer or reject")
        return self._dialog

    def _confirmed_dialog(self) -> Dialog:
        dialog = self._dialog
        if self.state is not State.CONFIRMED or dialog is None:
            raise LocalProtocolError("REFER and its NOTIFYs need a confirmed session")
        return dialog

    def _check_idle(self) -> None:
        if self._busy() or self._offers.glare_pending:
            raise LocalProtocolError("another offer or INVITE is in progress (§14.1)")
