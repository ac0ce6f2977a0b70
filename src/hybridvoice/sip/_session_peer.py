"""What an INVITE session does with what comes in (``session``): the peer's requests, the
responses to our requests and the timer firings, each a table of handler functions over the
session core (as ``_txn_client`` does for transactions).

RFC 3261 §9.2 (CANCEL), §12.1.2 and §13.2.2.4 (forks: early dialogs, the first 2xx wins, the
ACK and BYE of a late fork), §13.3.1.4 (the ACK ends the 2xx retransmission; none within
64*T1 ends the session), §14.1/§14.2 (re-INVITE, 491 glare and its retry, 500 with
Retry-After), §15.1.2 (BYE), §12.2.1.2 (408/481 end the dialog); RFC 3311 §5.2 (UPDATE);
RFC 4028 §7.4, §8, §10 (422 and Min-SE, the refresh, the expiry); RFC 3515 (REFER, NOTIFY).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from . import _session_timer as rfc4028
from ._session_offer import glare_delay
from ._session_types import (
    CAPABILITIES,
    SETUP,
    Answered,
    Cause,
    Confirmed,
    EarlyMedia,
    Offer,
    OfferAnswered,
    OfferRejected,
    Refer,
    Ringing,
    Role,
    SendCancel,
    SendRequest,
    SendResponse,
    State,
    Trigger,
    allow_of,
    has_token,
)
from .dialog import Dialog
from .headers import CSeq
from .message import Request, Response, make_response

if TYPE_CHECKING:
    from ._session_core import SessionCore

__all__ = [
    "REQUEST_HANDLERS", "on_cancel", "on_expire_timer", "on_glare_timer", "on_invite_response",
    "on_other", "on_refresh_timer", "on_request_out_response", "on_retransmit_timer",
    "send_cancel_if_due", "too_small",
]  # fmt: skip


# --- the peer's requests --------------------------------------------------------------------------
def on_cancel(s: SessionCore, request: Request) -> None:
    """§9.2: the CANCEL gets 200, the INVITE it cancels 487 if still unanswered."""
    dialog, pending = s._dialog, s._offers.incoming
    ok = make_response(request, 200, to_tag=None if dialog is None else dialog.id.local_tag)
    s._events.append(SendResponse(ok, request))
    if request.cseq is None or dialog is None:
        return
    cancelled = CSeq(request.cseq.seq, "INVITE")
    if s.role is Role.UAS and s.state in SETUP and s.invite.cseq == cancelled:
        s._events.append(SendResponse(dialog.create_response(s.invite, 487), s.invite))
        s._finish(Cause.CANCELLED, 487, "remote")
    elif pending is not None and pending.cseq == cancelled:
        s._offers.reply()
        s._events.append(SendResponse(dialog.create_response(pending, 487), pending))


def _on_ack(s: SessionCore, dialog: Dialog, request: Request, now: float) -> None:
    acked = s._retransmit.ack(request.cseq)
    if acked is None:
        return  # a retransmitted ACK, or one for a 2xx we no longer track
    sdp = request.body or None
    if acked is not s.invite:
        if sdp is not None:  # the answer to the offer in our 2xx to an offer-less re-INVITE
            s._events.append(OfferAnswered(sdp))
        return
    s._move(Trigger.ACKED)
    s._events.append(Confirmed(sdp))
    if s._bye_pending:
        s._send_bye()
        s._finish(Cause.NORMAL, None, "local")


def _on_bye(s: SessionCore, dialog: Dialog, request: Request, now: float) -> None:
    """§15.1.2: answer 200; an unanswered INVITE gets 487 (UAS) or a CANCEL (UAC)."""
    s._events.append(SendResponse(dialog.create_response(request, 200), request))
    if s.state in SETUP and s.role is Role.UAS:
        s._events.append(SendResponse(dialog.create_response(s.invite, 487), s.invite))
    elif s.state in SETUP:
        send_cancel_if_due(s, s._cancel.want())
    s._finish(Cause.NORMAL, None, "remote")


def _on_offer(s: SessionCore, dialog: Dialog, request: Request, now: float) -> None:
    """re-INVITE (§14.2) and UPDATE (RFC 3311 §5.2)."""
    refusal = _conflict(s, dialog, request) or too_small(s, dialog, request)
    if refusal is not None:
        s._events.append(SendResponse(refusal, request))
    elif request.method == "UPDATE" and not request.body:
        s._send_2xx(request, None, now)  # no offer (a session refresh): 200 at once
    else:
        s._offers.receive(request)
        s._events.append(Offer(request.body or None))


def on_other(s: SessionCore, dialog: Dialog, request: Request, now: float) -> None:
    if request.method == "OPTIONS":
        response = dialog.create_response(request, 200, headers=CAPABILITIES)
    else:
        response = dialog.create_response(request, 501)
    s._events.append(SendResponse(response, request))


def _on_refer(s: SessionCore, dialog: Dialog, request: Request, now: float) -> None:
    if s.state is not State.CONFIRMED:
        s._events.append(SendResponse(dialog.create_response(request, 403), request))
        return
    outcome = s._refer.receive_refer(dialog, request)
    if isinstance(outcome, Refer):
        s._events.append(outcome)
    else:
        s._events.append(SendResponse(outcome, request))


def _on_notify(s: SessionCore, dialog: Dialog, request: Request, now: float) -> None:
    response, progress = s._refer.receive_notify(dialog, request)
    s._events.append(SendResponse(response, request))
    if progress is not None:
        s._events.append(progress)


def _conflict(s: SessionCore, dialog: Dialog, request: Request) -> Response | None:
    """An INVITE or offer crossing ours gets 491 (§14.2, RFC 3311 §5.2); one arriving
    while the peer's previous INVITE or offer is unanswered, 500 with Retry-After."""
    if request.method != "INVITE" and not request.body:
        return None
    if s._offers.outgoing is not None or (s.role is Role.UAC and s.state in SETUP):
        return dialog.create_response(request, 491)
    if s._busy() or (s.role is Role.UAS and s.state in SETUP):
        retry = [("Retry-After", s._rng.randint(0, 10))]
        return dialog.create_response(request, 500, headers=retry)
    return None


def too_small(s: SessionCore, dialog: Dialog, request: Request) -> Response | None:
    """422 with our Min-SE for a too short Session-Expires (RFC 4028 §8)."""
    se = rfc4028.session_expires(request)
    if se is None or se[0] >= s._config.min_se:
        return None
    return dialog.create_response(request, 422, headers=[("Min-SE", s._config.min_se)])


Handler = Callable[["SessionCore", Dialog, Request, float], None]
#: The peer's in-dialog requests by method; others get ``on_other`` (CANCEL comes first).
REQUEST_HANDLERS: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "ACK": _on_ack,
        "NOTIFY": _on_notify,
        "REFER": _on_refer,
        "BYE": _on_bye,
        "INVITE": _on_offer,
        "UPDATE": _on_offer,
    }
)


# --- responses to our INVITE (the caller) ---------------------------------------------------------
def send_cancel_if_due(s: SessionCore, due: bool) -> None:
    if due:
        s._events.append(SendCancel(s.invite))


def on_invite_response(
    s: SessionCore, response: Response, now: float, detail: str | None = None
) -> None:
    """``detail``: the transport's words when the response is the 408 of a failed send."""
    status = response.status
    if status < 200:
        _on_provisional(s, response)
    elif status < 300:
        _on_invite_2xx(s, response, now)
    elif s.state in SETUP and not (status == 422 and _retry_invite(s, response)):
        for fork in s._forks.values():
            fork.terminate()
        if s._cancel.wanted:
            s._finish(Cause.CANCELLED, status, "local", detail)
        else:
            cause = Cause.TIMEOUT if status == 408 else Cause.REJECTED
            s._finish(cause, status, "remote", detail)


def _on_provisional(s: SessionCore, response: Response) -> None:
    send_cancel_if_due(s, s._cancel.provisional())
    tag = None if response.to is None else response.to.tag
    if response.status == 100 or s.state not in SETUP:
        return
    if tag is not None:  # an early dialog per fork (§12.1.2), the latest last
        fork = s._forks.pop(tag, None)
        if fork is None:
            fork = Dialog.from_uac(s.invite, response)
        else:
            fork.receive_response(response)
        s._forks[tag] = fork
    s._move(Trigger.PROVISIONAL)
    sdp = response.body or None
    if response.status == 180:
        s._events.append(Ringing(sdp))
    elif sdp is not None:
        s._events.append(EarlyMedia(sdp))


def _on_invite_2xx(s: SessionCore, response: Response, now: float) -> None:
    tag = "" if response.to is None else response.to.tag or ""
    if s._dialog is not None and s._dialog.id.remote_tag == tag:
        return  # retransmitted while the application prepares the answer for our ACK
    if s._dialog is not None or s.state not in SETUP:
        # §13.2.2.4: a 2xx from another fork (or after we gave up): ACK it, then BYE
        extra = Dialog.from_uac(s.invite, response)
        s._send_ack(extra, response, None)
        s._events.append(SendRequest(extra.create_request("BYE")))
        return
    dialog = s._forks.pop(tag, None) or Dialog.from_uac(s.invite, response)
    dialog.receive_response(response)
    for fork in s._forks.values():
        fork.terminate()  # the other early dialogs end with the first 2xx (§13.2.2.4)
    s._forks.clear()
    s._dialog = dialog
    s._move(Trigger.ACCEPTED)
    s._peer_allows_update = has_token(response, "Allow", "UPDATE")
    s.peer_allow = allow_of(response)
    if s._cancel.wanted:  # the 2xx won the race with our CANCEL (§9.1): hang up
        s._send_ack(dialog, response, None)
        s._send_bye()
        s._finish(Cause.CANCELLED, None, "local")
        return
    s._apply_session_timer(response, True, now)
    if not s.invite.body and response.body:  # an offer in the 2xx: answer in the ACK
        s._acks.hold(dialog, response)
        s._events.append(Answered(None))
        s._events.append(Offer(response.body))
        return
    s._send_ack(dialog, response, None)
    s._move(Trigger.ACKED)
    s._events.append(Answered(response.body or None))


def _retry_invite(s: SessionCore, response: Response) -> bool:
    """After a 422, send the INVITE again with the peer's Min-SE (RFC 4028 §7.4)."""
    min_se, cseq = rfc4028.min_se(response), s.invite.cseq
    current = rfc4028.session_expires(s.invite)
    if min_se is None or cseq is None or (current is not None and current[0] >= min_se):
        return False
    s.invite = s.invite.copy()
    s.invite.headers.set("CSeq", CSeq(cseq.seq + 1, "INVITE"))
    s.invite.headers.set("Session-Expires", min_se)
    s.invite.headers.set("Min-SE", min_se)
    s._forks.clear()
    s._cancel.new_transaction()
    s._events.append(SendRequest(s.invite))
    return True


# --- responses to our re-INVITE / UPDATE ----------------------------------------------------------
def on_request_out_response(
    s: SessionCore, request: Request, response: Response, now: float, detail: str | None = None
) -> None:
    status, dialog = response.status, s._current_dialog()
    if status < 200 or dialog is None:
        return
    offers = s._offers
    if status == 491:  # glare: the same offer again after a random time (§14.1)
        offers.glare(request, offers.refreshing, now + glare_delay(s.role is Role.UAC, s._rng))
        dialog.receive_response(response)
        return
    refresh = offers.finish()
    if status in (408, 481):  # the dialog is gone (§12.2.1.2, RFC 4028 §10)
        if status == 408:
            s._send_bye()
        cause = Cause.TIMEOUT if status == 408 else Cause.DIALOG_GONE
        s._finish(cause, status, "remote", detail)
        return
    dialog.receive_response(response)
    if 200 <= status < 300:
        s._apply_session_timer(response, True, now)
        if request.method == "INVITE" and not request.body and response.body:
            s._acks.hold(dialog, response)  # an offer in the 2xx: answer in the ACK
            s._events.append(Offer(response.body))
            return
        if request.method == "INVITE":
            s._send_ack(dialog, response, None)
        if not refresh:
            s._events.append(OfferAnswered(response.body or None))
    elif status == 422 and (min_se := rfc4028.min_se(response) or 0) > (s._refresh.interval or 0):
        s._refresh.raise_to(min_se)  # RFC 4028 §7.4: ask again with the peer's minimum
        s._send_offer(request.method, request.body or None, refresh=refresh)
    elif not refresh:
        s._events.append(OfferRejected(status))


# --- timers ---------------------------------------------------------------------------------------
def on_retransmit_timer(s: SessionCore, now: float) -> None:
    response = s._retransmit.fire(now)
    if response is None:  # §13.3.1.4: no ACK within 64*T1: end the session
        s._send_bye()
        s._finish(Cause.NO_ACK, None, "local")
        return
    request = s._retransmit.request
    assert request is not None
    s._events.append(SendResponse(response, request))


def on_glare_timer(s: SessionCore, now: float) -> None:
    if s._busy():  # the peer's request went first: try again later
        s._offers.postpone(now + glare_delay(s.role is Role.UAC, s._rng))
        return
    retry = s._offers.take_retry()
    s._send_offer(retry.method, retry.sdp, refresh=retry.refresh)


def on_refresh_timer(s: SessionCore, now: float) -> None:
    if s._busy() or s._offers.glare_pending:
        s._refresh.postpone(now + s._config.t2)
        return
    s._refresh.refresh_due()
    if s._peer_allows_update:  # RFC 4028 §9: an offer-less UPDATE is the cheap refresh
        s._send_offer("UPDATE", None, refresh=True)
    else:
        s._send_offer("INVITE", s._offers.local_sdp, refresh=True)


def on_expire_timer(s: SessionCore, now: float) -> None:
    s._refresh.expired()
    if s._acks.late:
        s._ack_late(None)
    s._send_bye()
    s._finish(Cause.SESSION_EXPIRED, None, "local")
