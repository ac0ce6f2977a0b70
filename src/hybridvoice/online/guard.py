"""Failure limits for Digest authentication (password guessing), sans-IO.

:class:`AuthGuard` counts failed Digest authentications per source and per user and, like
fail2ban, blocks a source or a user for a while once it reaches `failure_limit` failures
within `window` seconds. While a block lasts the registrar and proxy refuse the attempt with
the same 403 a wrong password gets, without doing the digest work. Each new block of the same
source or user (a repeat offence) lasts twice the previous one, up to `max_block`; a key that
stays quiet for `max_block` seconds starts afresh.

Why per user *and* per source, and why the per-user block is soft:

* Per source (the IP address; an IPv6 address counts by its /64, which one host usually
  owns whole) stops one attacker guessing many users' passwords. A source's failures are
  never reset by a success from it: otherwise an attacker with one valid account could
  interleave good logins with guesses at other users' passwords. Phones behind one NAT share
  a source: the default (10 failures a minute) is far above what a phone with a wrong
  password sends (it retries its REGISTER every 30 s or more), so one misconfigured phone
  does not block its office.
* Per user (the address of record asked for, known to the tenant or not) stops a
  distributed attacker guessing one user's password from many sources. A hard per-user lock
  would let anyone lock a real user out of their own phone by sending a few wrong passwords:
  so a user's block does not apply to sources that have authenticated as that user before
  (remembered in a bounded table). The real user's usual phone keeps working while the
  attacker elsewhere is refused; a real user at a new address waits out the block.
* Unknown users are counted and blocked exactly like known ones, so the limiter's
  behaviour does not tell an attacker which users exist.

Memory is bounded: each table (sources, users, good source-user pairs) keeps at most
`max_entries` keys, least recently used first out, so an attacker rotating sources or user
names cannot grow it; a failure record holds at most `failure_limit` timestamps. Time is
`now`, a monotonic clock in seconds, passed in.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

__all__ = ["AuthGuard", "Block", "BlockReason", "GuardCounters", "GuardLimits", "source_key"]

_log = logging.getLogger(__name__)


class BlockReason(enum.Enum):
    """What a block is keyed on (the ``reason`` label of the metrics)."""

    SOURCE = "source"
    USER = "user"


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """``[Online] AuthFailureLimit`` (0: no limit), ``AuthFailureWindowSeconds``,
    ``AuthBlockSeconds`` and ``AuthBlockMaxSeconds``."""

    failure_limit: int = 10
    window: float = 60.0
    block: float = 60.0
    max_block: float = 3600.0
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        if self.failure_limit < 0 or self.max_entries < 1:
            raise ValueError("failure_limit must be >= 0 and max_entries >= 1")
        if not (self.window > 0 and 0 < self.block <= self.max_block):
            raise ValueError("window and block must be > 0 and block <= max_block")
        if not (math.isfinite(self.window) and math.isfinite(self.max_block)):
            raise ValueError("window and max_block must be finite")


@dataclass(frozen=True, slots=True)
class Block:
    """A block that has just started (for the log line and the metric)."""

    reason: BlockReason
    key: str  # the source address (or IPv6 /64) or the user's address of record
    seconds: float
    offences: int
    source: str | None
    user: str


@dataclass(slots=True)
class _Record:
    failures: deque[float]  # times of the latest failures, at most failure_limit
    blocked_until: float = -math.inf
    offences: int = 0
    last: float = -math.inf  # last failure or end of the last block


@dataclass(slots=True)
class GuardCounters:
    """Plain counters for ``/metrics``."""

    failures: int = 0  # failed authentications counted
    blocks: dict[BlockReason, int] = field(default_factory=lambda: dict.fromkeys(BlockReason, 0))
    refused: dict[BlockReason, int] = field(default_factory=lambda: dict.fromkeys(BlockReason, 0))


class AuthGuard:
    """Per-source and per-user failure limits with a growing back-off (module docstring)."""

    __slots__ = ("_good", "_tables", "counters", "limits")

    def __init__(self, limits: GuardLimits | None = None) -> None:
        self.limits = limits or GuardLimits()
        self._tables: dict[BlockReason, OrderedDict[str, _Record]] = {
            reason: OrderedDict() for reason in BlockReason
        }
        self._good: OrderedDict[tuple[str, str], None] = OrderedDict()  # (user, source key)
        self.counters = GuardCounters()

    @property
    def entries(self) -> int:
        """How many keys the tables hold (bounded by 3 x max_entries)."""
        return sum(len(t) for t in self._tables.values()) + len(self._good)

    @property
    def enabled(self) -> bool:
        return self.limits.failure_limit > 0

    def check(self, source: str | None, user: str, now: float) -> BlockReason | None:
        """Why an attempt from `source` for `user` is refused now, or None to let it try.
        A refusal is counted."""
        if not self.enabled:
            return None
        reason = None
        key = None if source is None else source_key(source)
        if key is not None and self._blocked(BlockReason.SOURCE, key, now):
            reason = BlockReason.SOURCE
        elif self._blocked(BlockReason.USER, user, now) and (user, key or "") not in self._good:
            reason = BlockReason.USER
        if reason is not None:
            self.counters.refused[reason] += 1
        return reason

    def failed(self, source: str | None, user: str, now: float) -> list[Block]:
        """Count a failed authentication; return the blocks it started (logged here)."""
        self.counters.failures += 1
        if not self.enabled:
            return []
        keys = [(BlockReason.USER, user)]
        if source is not None:
            keys.insert(0, (BlockReason.SOURCE, source_key(source)))
        started = []
        for reason, key in keys:
            seconds = self._fail(reason, key, now)
            if seconds is not None:
                record = self._tables[reason][key]
                block = Block(reason, key, seconds, record.offences, source, user)
                self.counters.blocks[reason] += 1
                _log.warning(
                    "authentication blocked for %s %s: %d failures within %g s, "
                    "blocked %g s (offence %d; last try from %s for %s)",
                    reason.value, key, self.limits.failure_limit, self.limits.window,
                    seconds, record.offences, source, user,
                )  # fmt: skip
                started.append(block)
        return started

    def succeeded(self, source: str | None, user: str) -> None:
        """Remember that `source` authenticated as `user`: that user's block does not apply
        to it. Failure counts are left alone (see the module docstring)."""
        if not self.enabled or source is None:
            return
        pair = (user, source_key(source))
        self._good[pair] = None
        self._good.move_to_end(pair)
        if len(self._good) > self.limits.max_entries:
            self._good.popitem(last=False)

    # --- records ------------------------------------------------------------------------------

    def _blocked(self, reason: BlockReason, key: str, now: float) -> bool:
        record = self._tables[reason].get(key)
        return record is not None and now < record.blocked_until

    def _fail(self, reason: BlockReason, key: str, now: float) -> float | None:
        """Record a failure of `key`; the block's length when one starts, else None."""
        limits = self.limits
        record = self._record(reason, key, now)
        if now < record.blocked_until:
            return None  # already blocked (a good source of a blocked user failed)
        record.failures.append(now)
        record.last = now
        if len(record.failures) < limits.failure_limit or now - record.failures[0] > limits.window:
            return None
        record.failures.clear()
        record.offences += 1
        seconds: float = min(limits.block * 2 ** min(record.offences - 1, 62), limits.max_block)
        record.blocked_until = record.last = now + seconds
        return seconds

    def _record(self, reason: BlockReason, key: str, now: float) -> _Record:
        """The record of `key`, fresh when it was quiet for max_block; the least recently
        used record goes when the table is full."""
        table = self._tables[reason]
        record = table.get(key)
        if record is None or now - record.last > self.limits.max_block:
            record = table[key] = _Record(deque(maxlen=self.limits.failure_limit))
        table.move_to_end(key)
        if len(table) > self.limits.max_entries:
            table.popitem(last=False)
        return record


_IPV6_PREFIX: Final = 64


def source_key(host: str) -> str:
    """The key of a source address: the address itself, an IPv4-mapped IPv6 address's IPv4
    address, or an IPv6 address's /64 (a host usually owns a whole /64 and could rotate
    within it). Not an address: the text."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.strip("[]"))
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, _IPV6_PREFIX), strict=False))
