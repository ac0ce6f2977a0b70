"""What an appliance tells the online service about itself in each heartbeat, for the
dashboard's overview of the tenant: calls now and the limit, gateways up of all, the
replica's version and lag, the days left of its soonest-expiring certificate.

A heartbeat may carry ``summary`` (:class:`HeartbeatSummary`: small, bounded, every field
optional); the online API keeps the last one of each appliance in memory
(:class:`SummaryBoard`, on ``app.state.summaries``; gone at a restart, back at the next
heartbeat) and never writes it to the tenant store or the change feed: it is news, not
configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HeartbeatSummary", "SummaryBoard", "record_summary"]


class HeartbeatSummary(BaseModel):
    """The appliance at a glance (every field optional, every number bounded)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    calls_now: int | None = Field(default=None, ge=0, le=1_000_000)
    call_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    gateways: int | None = Field(default=None, ge=0, le=10_000)
    gateways_up: int | None = Field(default=None, ge=0, le=10_000)
    replica_version: int | None = Field(default=None, ge=0)
    replica_lag_seconds: float | None = Field(default=None, ge=0)
    cert_days_left: int | None = Field(default=None, ge=-100_000, le=100_000)


class SummaryBoard:
    """The last summary of each appliance, by name, with when it came (epoch seconds)."""

    __slots__ = ("_clock", "_rows")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[str, tuple[HeartbeatSummary, float]] = {}
        self._clock = clock

    def put(self, name: str, summary: HeartbeatSummary) -> None:
        self._rows[name] = (summary, self._clock())

    def rows(self) -> Mapping[str, Mapping[str, Any]]:
        """Every appliance's last summary as a dict (``at``: when it came)."""
        return {
            name: {**summary.model_dump(exclude_none=True), "at": at}
            for name, (summary, at) in self._rows.items()
        }


def record_summary(request: Request, name: str, summary: HeartbeatSummary | None) -> None:
    """Keep ``summary`` (when the heartbeat had one) on the app's board."""
    if summary is None:
        return
    board = getattr(request.app.state, "summaries", None)
    if isinstance(board, SummaryBoard):
        board.put(name, summary)
