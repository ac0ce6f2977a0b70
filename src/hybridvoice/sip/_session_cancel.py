"""The caller's CANCEL of an unanswered INVITE (``session``), one machine with its table.

RFC 3261 §9.1: a CANCEL must not be sent before a provisional response arrived for the
INVITE; the wish to cancel is kept until one does, and the CANCEL goes out once. If a 2xx
wins the race, the session ACKs it and hangs up with BYE (§9.1, §15). A 422 retry of the
INVITE (RFC 4028 §7.4) is a new transaction: it needs its own provisional first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ._tables import TableKey, frozen_table, step

__all__ = ["CANCEL_TABLE", "CancelPhase", "UacCancel"]


class CancelPhase(TableKey):
    NONE = "no cancel wanted"
    WANTED = "cancel wanted, waiting for a provisional"
    SENT = "CANCEL sent"


class _C(TableKey):
    WANT = "cancel"
    SEND = "provisional seen"


_N, _W, _S = CancelPhase.NONE, CancelPhase.WANTED, CancelPhase.SENT
#: Every transition of the caller's CANCEL (§9.1), and only these.
CANCEL_TABLE: Final[Mapping[CancelPhase, Mapping[_C, CancelPhase]]] = frozen_table(
    {
        _N: {_C.WANT: _W},
        _W: {_C.WANT: _W, _C.SEND: _S},
        _S: {_C.WANT: _S},
    }
)


class UacCancel:
    """Whether the caller wants its INVITE cancelled, and whether the CANCEL may go now."""

    __slots__ = ("phase", "provisional_seen")

    def __init__(self) -> None:
        self.phase = _N
        self.provisional_seen = False  # for the current INVITE transaction

    def _move(self, trigger: _C) -> None:
        self.phase = step(CANCEL_TABLE, self.phase, trigger, "CANCEL")

    @property
    def wanted(self) -> bool:
        """The application (or the peer's BYE) asked to cancel the call."""
        return self.phase is not _N

    def want(self) -> bool:
        """Cancel the INVITE: whether the CANCEL may be sent now."""
        self._move(_C.WANT)
        return self._due()

    def provisional(self) -> bool:
        """A provisional arrived: whether the awaited CANCEL may be sent now."""
        self.provisional_seen = True
        return self._due()

    def new_transaction(self) -> None:
        """The INVITE was sent again (422 retry): wait for its own provisional."""
        self.provisional_seen = False

    def _due(self) -> bool:
        if self.phase is _W and self.provisional_seen:
            self._move(_C.SEND)
            return True
        return False
