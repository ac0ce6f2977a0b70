"""The ACK side of an INVITE session (``session``): two small machines, each with its table.

- ``Retransmit2xx``, the UAS: a 2xx to an INVITE is retransmitted at T1, 2*T1, 4*T1, ...
  capped at T2, until its ACK arrives; without an ACK within 64*T1 the session ends
  (RFC 3261 §13.3.1.4).
- ``AckMemory``, the UAC: the ACK sent for each 2xx, kept to answer every retransmission of
  that 2xx (§13.2.2.4), and the "late" ACK that waits for our answer when the 2xx carried the
  offer (RFC 3264 §5, RFC 3261 §13.2.2.4: the answer goes in the ACK).

Both take ``now`` where a timer starts and never read a clock; an illegal transition raises
``LocalProtocolError``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Final

from ._tables import TableKey, frozen_table, step
from .dialog import Dialog
from .headers import CSeq
from .message import Request, Response

__all__ = ["AckMemory", "Retransmit2xx", "RetransmitPhase", "Ticket"]

#: Hands out increasing numbers: a timer armed later fires later among equal deadlines.
Ticket = Callable[[], int]


class RetransmitPhase(TableKey):
    IDLE = "idle"
    WAITING = "waiting for the ACK"


class _R(TableKey):
    SENT = "2xx sent"
    ACKED = "ACK received"
    RESENT = "retransmitted"
    GAVE_UP = "no ACK within 64*T1"
    STOPPED = "session over"


_IDLE, _WAITING = RetransmitPhase.IDLE, RetransmitPhase.WAITING
#: Every transition of the UAS's 2xx retransmission (§13.3.1.4), and only these.
RETRANSMIT_TABLE: Final[Mapping[RetransmitPhase, Mapping[_R, RetransmitPhase]]] = frozen_table(
    {
        _IDLE: {_R.SENT: _WAITING, _R.STOPPED: _IDLE},
        _WAITING: {
            _R.SENT: _WAITING,  # a new 2xx replaces the one we retransmit
            _R.ACKED: _IDLE,
            _R.RESENT: _WAITING,
            _R.GAVE_UP: _IDLE,
            _R.STOPPED: _IDLE,
        },
    }
)


class Retransmit2xx:
    """The UAS's 2xx to an INVITE, retransmitted until its ACK (RFC 3261 §13.3.1.4)."""

    __slots__ = (
        "_give_up", "_interval", "_t2", "_ticket", "armed", "deadline", "phase", "request",
        "response",
    )  # fmt: skip

    def __init__(self, ticket: Ticket | None = None) -> None:
        self._ticket = ticket or itertools.count().__next__
        self.armed = 0  # when the deadline was set (``ticket``)
        self._t2 = 4.0
        self.phase = _IDLE
        self.response: Response | None = None
        self.request: Request | None = None  # the INVITE the 2xx answers
        self.deadline: float | None = None  # the next retransmission (or the give-up)
        self._interval = 0.5
        self._give_up = 0.0

    @property
    def pending(self) -> bool:
        return self.phase is _WAITING

    def _move(self, trigger: _R) -> None:
        self.phase = step(RETRANSMIT_TABLE, self.phase, trigger, "2xx retransmission")

    def start(
        self, response: Response, request: Request, now: float, *, t1: float, t2: float
    ) -> None:
        """The 2xx was sent at ``now``: retransmit at now+T1, then doubling up to T2, and
        give up at now+64*T1."""
        self._move(_R.SENT)
        self.response, self.request = response, request
        self._interval, self._t2, self._give_up = t1, t2, now + 64 * t1
        self.deadline, self.armed = now + t1, self._ticket()

    def ack(self, cseq: CSeq | None) -> Request | None:
        """An ACK arrived: the INVITE whose 2xx it acknowledges, or None when it is a
        retransmitted ACK or one for a 2xx we no longer retransmit."""
        request = self.request
        if not self.pending or cseq is None or request is None:
            return None
        if request.cseq != CSeq(cseq.seq, "INVITE"):
            return None
        self._move(_R.ACKED)
        self._clear()
        return request

    def fire(self, now: float) -> Response | None:
        """The timer fired: the 2xx to send again, or None when 64*T1 passed without an
        ACK (the session must end, §13.3.1.4)."""
        response = self.response
        assert response is not None, "the timer and the pending 2xx go together"
        if now >= self._give_up:
            self._move(_R.GAVE_UP)
            self._clear()
            return None
        self._move(_R.RESENT)
        self._interval = min(2 * self._interval, self._t2)
        self.deadline = min(now + self._interval, self._give_up)
        self.armed = self._ticket()
        return response

    def stop(self) -> None:
        self._move(_R.STOPPED)
        self._clear()

    def _clear(self) -> None:
        self.response = self.request = self.deadline = None


class LatePhase(TableKey):
    NONE = "no late ACK"
    AWAITING_ANSWER = "a 2xx offer awaits our answer"


class _L(TableKey):
    OFFER_IN_2XX = "offer in a 2xx"
    ANSWERED = "ACK sent"
    STOPPED = "session over"


_NONE, _AWAITING = LatePhase.NONE, LatePhase.AWAITING_ANSWER
#: Every transition of the UAC's late ACK (RFC 3264 §5, RFC 3261 §13.2.2.4).
LATE_ACK_TABLE: Final[Mapping[LatePhase, Mapping[_L, LatePhase]]] = frozen_table(
    {
        _NONE: {_L.OFFER_IN_2XX: _AWAITING, _L.STOPPED: _NONE},
        _AWAITING: {_L.ANSWERED: _NONE, _L.STOPPED: _NONE},
    }
)


class AckMemory:
    """The UAC's ACKs: the one sent per (remote tag, CSeq), to answer retransmitted 2xx
    (§13.2.2.4), and the late ACK of a 2xx carrying an offer, sent with our answer."""

    __slots__ = ("_late", "_sent", "phase")

    def __init__(self) -> None:
        self._sent: dict[tuple[str, int], Request] = {}
        self._late: tuple[Dialog, Response] | None = None
        self.phase = _NONE

    def _move(self, trigger: _L) -> None:
        self.phase = step(LATE_ACK_TABLE, self.phase, trigger, "late ACK")

    def remember(self, tag: str, seq: int, ack: Request) -> None:
        """The ACK sent for the 2xx of CSeq ``seq`` from the fork ``tag`` (the latest only)."""
        self._sent = {key: value for key, value in self._sent.items() if key[0] != tag}
        self._sent[(tag, seq)] = ack

    def __len__(self) -> int:
        """How many ACKs are kept (one per fork)."""
        return len(self._sent)

    def sent(self, tag: str, seq: int) -> Request | None:
        return self._sent.get((tag, seq))

    @property
    def late(self) -> bool:
        """A 2xx carrying an offer waits for our answer in its ACK."""
        return self.phase is _AWAITING

    def hold(self, dialog: Dialog, response: Response) -> None:
        """Keep the ACK of ``response`` (an offer in a 2xx) until the answer is known."""
        self._move(_L.OFFER_IN_2XX)
        self._late = (dialog, response)

    def take(self) -> tuple[Dialog, Response]:
        """The dialog and 2xx whose ACK is now sent with the answer."""
        late = self._late
        assert late is not None
        self._move(_L.ANSWERED)
        self._late = None
        return late

    def stop(self) -> None:
        self._move(_L.STOPPED)
        self._late = None
