"""The per-call SIP capture: every message a transport sends or receives, kept by Call-ID
(RFC 3261 §8.1.1.4, §20.8) in a bounded buffer (sans-IO: times are passed in).

What is kept per message: the wall-clock time (seconds since the epoch, for the pcap and HEP
timestamps), the transport (``UDP``, ``TCP``, ``TLS``), the source and destination address
(IP literal, port) and the bytes as they crossed the wire (a reference to the bytes the
transport already holds, not a copy; TLS-carried SIP is kept decrypted). Whether it was sent
or received by this process (``outgoing``) lets an export drop the second copy of a hop both
ends of which are in this process.

Bounds: ``max_calls`` calls, ``max_call_bytes`` per call (past it, later messages of the
call are counted in ``truncated`` and not kept) and ``max_bytes`` in total; a new call past
either total evicts the oldest calls first (least recently started).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "CallTrace",
    "CaptureBuffer",
    "CaptureLimits",
    "Captured",
    "call_id_of",
    "merge",
]

#: the Call-ID header line, long or compact form (§7.3.3, §20.8), any letter case
_CALL_ID: Final = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
#: the header line as our serialiser writes it
_CANONICAL: Final = b"\r\nCall-ID: "
#: where the header section of a message ends (§7)
_HEAD_END: Final = b"\r\n\r\n"


def call_id_of(data: bytes) -> str | None:
    """The Call-ID of a serialised SIP message (searched in its header section only), or
    None when it has none."""
    end = data.find(_HEAD_END)
    if end < 0:
        end = len(data)
    at = data.find(_CANONICAL, 0, end)  # how this project writes it: found without a regex
    if at >= 0:
        stop = data.find(b"\r", at + len(_CANONICAL), end + 2)
        value = data[at + len(_CANONICAL) : stop if stop >= 0 else end].strip()
        if value:
            return value.decode("utf-8", "replace")
    match = _CALL_ID.search(data, 0, end)
    if match is None:
        return None
    value = match.group(1).strip()
    return value.decode("utf-8", "replace") if value else None


class Captured(NamedTuple):
    """One SIP message as it crossed a transport (a named tuple: made for every message
    captured, at a third of a frozen dataclass's cost)."""

    time: float
    transport: str
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    outgoing: bool


@dataclass(frozen=True, slots=True)
class CaptureLimits:
    """The bounds of a :class:`CaptureBuffer` (``[Traces]`` in the settings)."""

    max_calls: int = 1000
    max_call_bytes: int = 256 * 1024
    max_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_call_bytes", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


class CallTrace:
    """The messages of one Call-ID, in the order they were captured."""

    __slots__ = ("call_id", "messages", "size", "truncated")

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.messages: list[Captured] = []
        self.size = 0
        #: messages not kept because the call had reached ``max_call_bytes``
        self.truncated = 0


class CaptureBuffer:
    """Calls by Call-ID, oldest first; see the module docstring for the bounds."""

    __slots__ = ("_calls", "_size", "evicted", "limits", "messages", "untagged")

    def __init__(self, limits: CaptureLimits | None = None) -> None:
        self.limits = limits or CaptureLimits()
        self._calls: OrderedDict[str, CallTrace] = OrderedDict()
        self._size = 0
        #: messages captured, calls evicted, messages without a Call-ID (not kept)
        self.messages = 0
        self.evicted = 0
        self.untagged = 0

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def size(self) -> int:
        """Bytes of SIP held, over every call."""
        return self._size

    def add(
        self,
        now: float,
        transport: str,
        src: tuple[str, int],
        dst: tuple[str, int],
        data: bytes,
        *,
        outgoing: bool,
        call_id: str | None = None,
    ) -> Captured | None:
        """Keep ``data`` (sent when ``outgoing``, else received) under its Call-ID (``call_id``
        when the caller knows it, else read from the bytes). Returns what was kept, or None
        (no Call-ID, or the call is full)."""
        self.messages += 1
        if call_id is None:
            call_id = call_id_of(data)
            if call_id is None:
                self.untagged += 1
                return None
        calls = self._calls
        trace = calls.get(call_id)
        size = len(data)
        limits = self.limits
        if trace is None:
            trace = self._new_call(call_id)
        if trace.size + size > limits.max_call_bytes:
            trace.truncated += 1
            return None
        while self._size + size > limits.max_bytes and len(calls) > 1:
            self._evict_oldest(keep=trace)
        if self._size + size > limits.max_bytes:  # one call alone cannot hold it
            trace.truncated += 1
            return None
        item = Captured(now, transport, src, dst, data, outgoing)
        trace.messages.append(item)
        trace.size += size
        self._size += size
        return item

    def _new_call(self, call_id: str) -> CallTrace:
        calls = self._calls
        while len(calls) >= self.limits.max_calls:
            self._evict_oldest()
        trace = calls[call_id] = CallTrace(call_id)
        return trace

    def _evict_oldest(self, keep: CallTrace | None = None) -> None:
        for call_id, trace in self._calls.items():
            if trace is not keep:
                del self._calls[call_id]
                self._size -= trace.size
                self.evicted += 1
                return

    def get(self, call_id: str) -> CallTrace | None:
        return self._calls.get(call_id)

    def calls(self) -> list[str]:
        """The Call-IDs held, oldest first."""
        return list(self._calls)

    def messages_of(self, call_ids: Iterable[str | None]) -> list[Captured]:
        """The messages of every Call-ID of ``call_ids`` (a call record's legs), in time
        order, without the second copy of a hop captured at both of its ends."""
        traces = [self._calls.get(c) for c in dict.fromkeys(c for c in call_ids if c)]
        return merge(t.messages for t in traces if t is not None)

    def clear(self) -> None:
        self._calls.clear()
        self._size = 0


def merge(groups: Iterable[list[Captured]]) -> list[Captured]:
    """The messages of ``groups`` in time order (stable), where a received message that
    matches one sent earlier by this process (same transport, addresses and bytes: a hop
    between two of its own transports on loopback) is dropped: it was one packet."""
    ordered = sorted((m for group in groups for m in group), key=lambda m: m.time)
    sent: dict[tuple[str, tuple[str, int], tuple[str, int], bytes], int] = {}
    kept: list[Captured] = []
    for m in ordered:
        key = (m.transport, m.src, m.dst, m.data)
        if m.outgoing:
            sent[key] = sent.get(key, 0) + 1
        elif sent.get(key, 0) > 0:
            sent[key] -= 1
            continue
        kept.append(m)
    return kept
