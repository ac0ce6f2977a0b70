"""The RFC 4028 session-timer refresher of an INVITE session (``session``), one machine with
its table.

RFC 4028 §9 (the refresher named by the 2xx that negotiated the interval: "uac" is the
requester of that transaction), §10 (the refresher refreshes at half the interval; without a
refresh either side sends BYE at the interval minus min(32 s, interval/3)), §7.4 (after a 422
the interval rises to the peer's Min-SE). The header rules and the deadlines are the pure
functions of ``_session_timer``; this class keeps the negotiated interval and the two timers.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from . import _session_timer as rfc4028
from ._session_ack import Ticket
from ._tables import TableKey, frozen_table, step

__all__ = ["REFRESH_TABLE", "RefreshPhase", "Refresher"]


class RefreshPhase(TableKey):
    OFF = "no session timer"
    REFRESHER = "we refresh"  # refresh and expiry timers run
    WATCHER = "the peer refreshes"  # the expiry timer runs
    REFRESHING = "our refresh is out"  # the expiry timer runs until the refresh's 2xx


class _F(TableKey):
    NEGOTIATED_OURS = "interval negotiated, we refresh"
    NEGOTIATED_THEIRS = "interval negotiated, the peer refreshes"
    NEGOTIATED_NONE = "no Session-Expires"
    REFRESH_DUE = "refresh timer"
    POSTPONED = "refresh timer while busy"
    EXPIRED = "expiry timer"
    STOPPED = "session over"


_S = RefreshPhase
_NEGOTIATION: Final[Mapping[_F, RefreshPhase]] = MappingProxyType(
    {
        _F.NEGOTIATED_OURS: _S.REFRESHER,
        _F.NEGOTIATED_THEIRS: _S.WATCHER,
        _F.NEGOTIATED_NONE: _S.OFF,
        _F.EXPIRED: _S.OFF,
        _F.STOPPED: _S.OFF,
    }
)
#: Every transition of the RFC 4028 refresher, and only these.
REFRESH_TABLE: Final[Mapping[RefreshPhase, Mapping[_F, RefreshPhase]]] = frozen_table(
    {
        _S.OFF: _NEGOTIATION,
        _S.REFRESHER: {**_NEGOTIATION, _F.REFRESH_DUE: _S.REFRESHING, _F.POSTPONED: _S.REFRESHER},
        _S.WATCHER: _NEGOTIATION,
        _S.REFRESHING: _NEGOTIATION,
    }
)


class Refresher:
    """The negotiated session interval, who refreshes, and the refresh and expiry timers."""

    __slots__ = (
        "_ticket", "expire_armed", "expire_at", "interval", "phase", "refresh_armed",
        "refresh_at", "we_refresh",
    )  # fmt: skip

    def __init__(self, ticket: Ticket | None = None) -> None:
        self._ticket = ticket or itertools.count().__next__
        self.refresh_armed = self.expire_armed = 0  # when each deadline was set (``ticket``)
        self.phase = _S.OFF
        self.interval: int | None = None  # the RFC 4028 session interval, once negotiated
        self.we_refresh = False
        self.refresh_at: float | None = None
        self.expire_at: float | None = None

    def _move(self, trigger: _F) -> None:
        self.phase = step(REFRESH_TABLE, self.phase, trigger, "session timer")

    @property
    def is_refresher(self) -> bool:
        return self.interval is not None and self.we_refresh

    def negotiated(self, se: tuple[int, str | None] | None, we_requested: bool, now: float) -> None:
        """The 2xx that (re)negotiated the timer said Session-Expires ``se`` (None: no timer);
        ``we_requested``: we sent the request it answers (RFC 4028 §9, §10)."""
        self.refresh_at = self.expire_at = None
        self.interval = None if se is None else se[0]
        if se is None:
            self._move(_F.NEGOTIATED_NONE)
            return
        interval, refresher = se
        self.we_refresh = refresher is None or (refresher == "uac") == we_requested
        if self.we_refresh:
            self._move(_F.NEGOTIATED_OURS)
            self.refresh_at = rfc4028.refresh_deadline(interval, now)
            self.refresh_armed = self._ticket()
        else:
            self._move(_F.NEGOTIATED_THEIRS)
        self.expire_at = rfc4028.expiry_deadline(interval, now)
        self.expire_armed = self._ticket()

    def raise_to(self, min_se: int) -> None:
        """A 422 named a larger Min-SE: ask again with it (RFC 4028 §7.4)."""
        self.interval = min_se

    def refresh_due(self) -> None:
        """The refresh timer fired and the refresh goes out now."""
        self._move(_F.REFRESH_DUE)
        self.refresh_at = None

    def postpone(self, due: float) -> None:
        """The refresh timer fired while an offer is in progress: try again at ``due``."""
        self._move(_F.POSTPONED)
        self.refresh_at, self.refresh_armed = due, self._ticket()

    def expired(self) -> None:
        """The expiry timer fired: the session ends with a BYE (RFC 4028 §10)."""
        self._move(_F.EXPIRED)
        self.refresh_at = self.expire_at = None

    def stop(self) -> None:
        self._move(_F.STOPPED)
        self.refresh_at = self.expire_at = None
