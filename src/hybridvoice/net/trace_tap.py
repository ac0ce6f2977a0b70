"""Where SIP capture meets the transports (RFC 3261 §18: every message a transport sends or
receives), and the HEPv3 sender toward a Homer collector (UDP).

Each transport has a ``tap`` slot (None: no capture, the cost is one attribute test per
message). The assembly sets it to a :class:`TraceTap` (:func:`tap_endpoint`); the transport
calls it with the transport kind, source and destination (IP literal, port), the bytes as
they crossed the wire (a datagram as received, a message as serialised onto a connection; a
message handed over an in-process pipe is serialised for the capture, once per hop), whether
it was sent, and the Call-ID when the transport already parsed it. The tap stamps the wall
clock and feeds the sans-IO :class:`~hybridvoice.trace.capture.CaptureBuffer` and, when one is
configured, the :class:`HepSender`. Nothing it raises reaches the transport.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hybridvoice.trace.capture import CaptureBuffer, Captured, call_id_of
from hybridvoice.trace.hep import HepOptions, encode_hep

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["HepSender", "MessageTap", "TraceTap", "parse_collector", "tap_endpoint"]

log = logging.getLogger(__name__)


class MessageTap(Protocol):
    """What a transport calls for every SIP message it sends or receives."""

    def __call__(  # noqa: PLR0917 - one call per message, on the hot path
        self,
        transport: str,
        src: tuple[str, int],
        dst: tuple[str, int],
        data: bytes,
        outgoing: bool,
        call_id: str | None,
    ) -> None: ...


def parse_collector(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of a HEP collector; ``ValueError`` with the reason."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port 1-65535, got {value!r}")
    return host, int(port)


class HepSender:
    """Sends one HEPv3 packet per captured message to the collector, from one UDP socket,
    never blocking: a packet the kernel will not take now is dropped and counted."""

    __slots__ = ("_sock", "address", "dropped", "options", "sent")

    def __init__(self, collector: tuple[str, int], options: HepOptions) -> None:
        info = socket.getaddrinfo(collector[0], collector[1], type=socket.SOCK_DGRAM)
        family, _, _, _, address = info[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.address = address
        self.options = options
        self.sent = 0
        self.dropped = 0

    def send(self, message: Captured, call_id: str | None) -> None:
        try:
            packet = encode_hep(message, call_id, self.options)
            self._sock.sendto(packet, self.address)
        except (OSError, ValueError):
            self.dropped += 1
        else:
            self.sent += 1

    def close(self) -> None:
        self._sock.close()


class TraceTap:
    """The tap the assembly gives the transports: the capture buffer, the HEP sender, or
    both (see the module docstring)."""

    __slots__ = ("buffer", "clock", "errors", "hep")

    def __init__(
        self,
        buffer: CaptureBuffer | None,
        hep: HepSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.buffer = buffer
        self.hep = hep
        self.clock = clock
        self.errors = 0

    def __call__(  # noqa: PLR0917 - one call per message, on the hot path
        self,
        transport: str,
        src: tuple[str, int],
        dst: tuple[str, int],
        data: bytes,
        outgoing: bool,
        call_id: str | None,
    ) -> None:
        try:
            now = self.clock()
            if call_id is None:
                call_id = call_id_of(data)
            buffer = self.buffer
            if buffer is not None:
                buffer.add(now, transport, src, dst, data, outgoing=outgoing, call_id=call_id)
            hep = self.hep
            if hep is not None:
                hep.send(Captured(now, transport, src, dst, data, outgoing), call_id)
        except Exception:  # a capture bug must never cost a call its message
            self.errors += 1
            if self.errors == 1:
                log.exception("SIP capture failed (further failures are only counted)")

    def close(self) -> None:
        if self.hep is not None:
            self.hep.close()


def tap_endpoint(endpoint: Endpoint, tap: MessageTap | None) -> None:
    """Give every transport of ``endpoint`` the tap (None: stop capturing)."""
    for transport in endpoint.transports:
        if hasattr(transport, "tap"):
            transport.tap = tap
