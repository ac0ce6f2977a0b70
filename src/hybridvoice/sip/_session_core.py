"""The core of an INVITE session (``session``): its state, its dialogs, the machines it
composes, the timers, and the primitives that build and queue messages.

RFC 3261 §13 (the session states, ``TRANSITIONS``), §12.1.2 (one early dialog per fork),
§13.2.2.4 (the ACK of every 2xx), §13.3.1.4 (the 2xx retransmission), §14 (re-INVITE),
§15 (BYE), §15.1.2 (a pending request gets 487 when the session ends); RFC 3311 (UPDATE);
RFC 4028 §9-§10 (session timers); RFC 3515 (the REFER state lives in ``refer``).

The hidden state machines are small classes, each with its table: ``Retransmit2xx`` and
``AckMemory`` (``_session_ack``), ``OfferAnswer`` with the glare retry (``_session_offer``),
``Refresher`` (``_session_refresh``), ``UacCancel`` (``_session_cancel``) and ``ReferState``
(``refer``). The handlers of the peer's requests, of the responses to ours and of the timers
are tables of functions in ``_session_peer``; the application's calls are on
``InviteSession`` in ``session``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from . import _session_peer as peer
from . import _session_timer as rfc4028
from ._session_ack import AckMemory, Retransmit2xx
from ._session_cancel import UacCancel
from ._session_offer import OfferAnswer
from ._session_refresh import Refresher
from ._session_types import (
    CAPABILITIES,
    SETUP,
    TRANSITIONS,
    Cause,
    Disconnected,
    Event,
    Role,
    SendRequest,
    SendResponse,
    SessionConfig,
    Side,
    State,
    Trigger,
    body,
)
from .dialog import Dialog, DialogId, DialogState, ack_credentials
from .errors import LocalProtocolError
from .message import Message, Request, Response
from .refer import ReferState

__all__ = ["SessionCore"]


class SessionCore:
    """State, dialogs, sub-machines and primitives of one INVITE session."""

    __slots__ = (
        "_acks", "_bye_pending", "_cancel", "_config", "_dialog", "_events", "_forks",
        "_offers", "_peer_allows_update", "_refer_state", "_refresh", "_retransmit", "_rng",
        "_ticket", "invite", "peer_allow", "role", "state",
    )  # fmt: skip

    def __init__(self, role: Role, invite: Request, config: SessionConfig, rng: random.Random):
        self.role, self.invite, self.state = role, invite, State.NULL
        self._config, self._rng = config, rng
        self._events: list[Event] = []
        self._dialog: Dialog | None = None  # UAS: from the start; UAC: from the first 2xx
        self._forks: dict[str, Dialog] = {}  # UAC early dialogs by To tag, latest last
        #: timers armed later fire later among equal deadlines (as §17 timers do)
        self._ticket = ticket = itertools.count().__next__
        self._retransmit = Retransmit2xx(ticket)  # UAS, §13.3.1.4
        self._acks = AckMemory()  # UAC, §13.2.2.4
        self._offers = OfferAnswer((invite.body or None) if role is Role.UAC else None, ticket)
        self._refresh = Refresher(ticket)  # RFC 4028
        self._cancel = UacCancel()  # §9.1
        self._refer_state: ReferState | None = None  # RFC 3515: made at its first use
        self._peer_allows_update = self._bye_pending = False
        #: the methods the peer's INVITE (UAS) or 2xx (UAC) listed in Allow, upper case
        self.peer_allow: frozenset[str] = frozenset()

    @property
    def _refer(self) -> ReferState:
        """The REFER state of this session's dialog (RFC 3515), made when first needed: most
        sessions never see a REFER, and a fresh one abandons as a no-op."""
        refer = self._refer_state
        if refer is None:
            refer = self._refer_state = ReferState()
        return refer

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
        """The live dialogs' IDs, to index this session in a ``DialogTable`` (read after
        every message: without forks, no list is built)."""
        if self._forks:
            return tuple([d.id for d in self._dialogs()])
        dialog = self._dialog
        if dialog is None or dialog.state is DialogState.TERMINATED:
            return ()
        return (dialog.id,)

    @property
    def session_interval(self) -> int | None:
        """The negotiated RFC 4028 session interval; None without session timer."""
        return self._refresh.interval

    @property
    def is_refresher(self) -> bool:
        return self._refresh.is_refresher

    def _timers(self) -> list[tuple[float, int, Callable[[SessionCore, float], None]]]:
        """The armed timers: deadline, when armed, handler."""
        retransmit, offers, refresh = self._retransmit, self._offers, self._refresh
        armed = (
            (retransmit.deadline, retransmit.armed, peer.on_retransmit_timer),
            (offers.deadline, offers.armed, peer.on_glare_timer),
            (refresh.refresh_at, refresh.refresh_armed, peer.on_refresh_timer),
            (refresh.expire_at, refresh.expire_armed, peer.on_expire_timer),
        )
        return [(due, seq, handler) for due, seq, handler in armed if due is not None]

    def next_deadline(self) -> float | None:
        """The earliest armed deadline (read after every message: no list of handlers, no
        tuple to loop over)."""
        first = self._retransmit.deadline
        due = self._offers.deadline
        if due is not None and (first is None or due < first):
            first = due
        refresh = self._refresh
        due = refresh.refresh_at
        if due is not None and (first is None or due < first):
            first = due
        due = refresh.expire_at
        if due is not None and (first is None or due < first):
            first = due
        return first

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first (the earlier armed on a tie)."""
        while timers := self._timers():
            due, _, handler = min(timers, key=lambda item: item[:2])
            if due > now:
                return
            handler(self, now)

    # --- state ------------------------------------------------------------------------------
    def _check(self, trigger: Trigger) -> State:
        try:
            return TRANSITIONS[self.state][trigger]
        except KeyError:
            msg = f"{trigger.value} is not allowed in state {self.state.value}"
            raise LocalProtocolError(msg) from None

    def _move(self, trigger: Trigger) -> None:
        self.state = self._check(trigger)

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

    def _busy(self) -> bool:
        """An INVITE or offer is in progress in either direction (§14.1)."""
        offers = self._offers
        return (
            offers.outgoing is not None
            or offers.incoming is not None
            or self._retransmit.pending
            or self._acks.late
        )

    # --- sending ----------------------------------------------------------------------------
    def _send_offer(self, method: str, sdp: bytes | None, *, refresh: bool = False) -> None:
        dialog = self._current_dialog()
        assert dialog is not None
        refresher = self._refresh
        se = rfc4028.request_headers(refresher.interval, refresher.we_refresh, self._config.min_se)
        request = dialog.create_request(method, headers=[*CAPABILITIES, *se], **body(sdp))
        self._offers.send(request, sdp, refresh)
        self._events.append(SendRequest(request))

    def _send_2xx(self, request: Request, sdp: bytes | None, now: float) -> None:
        """A 2xx (§13.3.1.4 retransmitted when it answers an INVITE) with the session timer
        headers: without Session-Expires in the request we impose ours (or the running
        interval) once the session is set up (RFC 4028 §9)."""
        dialog = self._dialog if request is self.invite else self._dialog_for(request)
        assert dialog is not None
        wanted = self._config.session_expires
        imposed = None if self.state in SETUP else self._refresh.interval or wanted
        se = rfc4028.response_headers(request, wanted, imposed)
        response = dialog.create_response(request, 200, headers=[*CAPABILITIES, *se], **body(sdp))
        self._offers.local_sdp = sdp or self._offers.local_sdp
        self._events.append(SendResponse(response, request))
        if request.method == "INVITE":
            config = self._config
            self._retransmit.start(response, request, now, t1=config.t1, t2=config.t2)
        self._apply_session_timer(response, False, now)

    def _send_ack(self, dialog: Dialog, response: Response, sdp: bytes | None) -> None:
        """The ACK for a 2xx (§13.2.2.4), kept to answer its retransmissions."""
        cseq = response.cseq
        assert cseq is not None
        credentials = ack_credentials(self.invite) if cseq == self.invite.cseq else []
        ack = dialog.create_ack(cseq.seq, headers=credentials, **body(sdp))
        self._acks.remember(dialog.id.remote_tag, cseq.seq, ack)
        self._events.append(SendRequest(ack))

    def _ack_late(self, sdp: bytes | None) -> None:
        dialog, response = self._acks.take()
        self._send_ack(dialog, response, sdp)
        if self.state is State.CONNECTING:
            self._move(Trigger.ACKED)

    def _send_bye(self) -> None:
        dialog = self._dialog
        if dialog is not None and dialog.state is not DialogState.TERMINATED:
            self._events.append(SendRequest(dialog.create_request("BYE")))

    def _apply_session_timer(self, message: Message, we_requested: bool, now: float) -> None:
        """RFC 4028 §10, from the 2xx that (re)negotiated it. Timers start with the
        session, not in an early dialog."""
        if self.state not in SETUP:
            self._refresh.negotiated(rfc4028.session_expires(message), we_requested, now)

    def _finish(
        self, cause: Cause, status: int | None, side: Side, detail: str | None = None
    ) -> None:
        """To DISCONNECTED: a pending request gets 487 (§15.1.2), timers stop, dialogs end.
        ``detail``: the transport's words when a request of ours could not be sent."""
        self._move(Trigger.FAILED if self.state in SETUP else Trigger.ENDED)
        pending, dialog = self._offers.incoming, self._dialog
        if pending is not None and dialog is not None:
            self._events.append(SendResponse(dialog.create_response(pending, 487), pending))
        refer = self._refer_state
        if dialog is not None and refer is not None and (refused := refer.abandon(dialog)):
            self._events.append(SendResponse(*refused))
        self._offers.reset()
        self._retransmit.stop()
        self._acks.stop()
        self._refresh.stop()
        for each in self._dialogs():
            each.terminate()
        self._events.append(Disconnected(cause, status, side, detail))
