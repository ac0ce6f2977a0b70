"""Lease deadlines, sans-IO (etcd's lessor: a lease lives ``ttl`` seconds past its last
keep-alive; on a restart every lease gets its whole TTL again, as etcd's leader does).

``now`` is passed in (seconds, monotonic). :meth:`LeaseClock.expired` is on every operation's
path of the SQLite backend, so it answers from one comparison until the earliest deadline.
"""

from __future__ import annotations

import math

__all__ = ["LeaseClock"]


class LeaseClock:
    __slots__ = ("_deadline", "_earliest", "_ttl")

    def __init__(self) -> None:
        self._ttl: dict[int, int] = {}
        self._deadline: dict[int, float] = {}
        self._earliest = math.inf

    def __contains__(self, lease: object) -> bool:
        return lease in self._ttl

    def grant(self, lease: int, ttl: int, now: float) -> None:
        self._ttl[lease] = ttl
        deadline = now + ttl
        self._deadline[lease] = deadline
        self._earliest = min(self._earliest, deadline)

    def keep_alive(self, lease: int, now: float) -> bool:
        """Restart the lease's TTL; False when there is no such lease."""
        ttl = self._ttl.get(lease)
        if ttl is None:
            return False
        self._deadline[lease] = now + ttl
        return True

    def remove(self, lease: int) -> None:
        self._ttl.pop(lease, None)
        self._deadline.pop(lease, None)

    def expired(self, now: float) -> list[int]:
        """The leases whose deadline has passed (removed from the table), oldest first."""
        if now < self._earliest:
            return []
        gone = sorted((d, lease) for lease, d in self._deadline.items() if d <= now)
        for _, lease in gone:
            self.remove(lease)
        self._earliest = min(self._deadline.values(), default=math.inf)
        return [lease for _, lease in gone]

    def next_deadline(self) -> float:
        """The earliest deadline (``inf`` without leases); a keep-alive may have moved it later."""
        return self._earliest
