"""Media port pool: 4 UDP ports per relayed call, an RTP/RTCP pair per leg.

RFC 3550 §11: RTP on an even port and RTCP on the next (odd) port. A call takes one block
``base .. base+3`` (leg A RTP/RTCP, leg B RTP/RTCP) with ``base`` even, from a configurable
range (default 49152-57500, the original mediation server's media range). Blocks are handed
out first-in first-out so a just-released port is reused as late as possible (stray packets
of the previous call die out first).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from .errors import PortsExhaustedError

__all__ = ["DEFAULT_PORT_RANGE", "PORTS_PER_CALL", "PortBlock", "PortPool"]

DEFAULT_PORT_RANGE: Final = (49152, 57500)
PORTS_PER_CALL: Final = 4


@dataclass(frozen=True, slots=True)
class PortBlock:
    """Four consecutive ports; ``base`` is even."""

    base: int

    @property
    def a_rtp(self) -> int:
        return self.base

    @property
    def a_rtcp(self) -> int:
        return self.base + 1

    @property
    def b_rtp(self) -> int:
        return self.base + 2

    @property
    def b_rtcp(self) -> int:
        return self.base + 3


class PortPool:
    """A pool of :class:`PortBlock` over ``first..last`` (inclusive)."""

    __slots__ = ("_free", "_in_use", "first", "last")

    def __init__(self, first: int = DEFAULT_PORT_RANGE[0], last: int = DEFAULT_PORT_RANGE[1]):
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"bad port range {first}-{last}")
        start = first + (first & 1)
        bases = range(start, last - PORTS_PER_CALL + 2, PORTS_PER_CALL)
        if not bases:
            raise ValueError(f"port range {first}-{last} holds no block of {PORTS_PER_CALL}")
        self.first = first
        self.last = last
        self._free: deque[int] = deque(bases)
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._in_use)

    @property
    def available(self) -> int:
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> PortBlock:
        """Take the least recently used free block; :class:`PortsExhaustedError` if none."""
        if not self._free:
            raise PortsExhaustedError(
                f"all {self.capacity} media port blocks of {self.first}-{self.last} are in use"
            )
        base = self._free.popleft()
        self._in_use.add(base)
        return PortBlock(base)

    def release(self, block: PortBlock) -> None:
        """Give a block back (idempotent for a block already free)."""
        if block.base in self._in_use:
            self._in_use.remove(block.base)
            self._free.append(block.base)
