"""The lab gateway's media echo: the asyncio adapter of :mod:`hybridvoice.lab`.

Every RTP/RTCP packet that arrives goes straight back to where it came from (symmetric RTP,
RFC 4961 §3), what a PSTN test line does and what lets a relay latch on the way back.
"""

from __future__ import annotations

import asyncio
from typing import cast

__all__ = ["RtpEcho"]


class RtpEcho(asyncio.DatagramProtocol):
    """Sends every datagram back to its sender from the same socket; counts what it saw.

    One socket serves every call (each caller is answered at its own address). Open with
    :meth:`open`, close with :meth:`close`.
    """

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0) -> RtpEcho:
        loop = asyncio.get_running_loop()
        _, echo = await loop.create_datagram_endpoint(cls, local_addr=(host, port))
        return echo

    @property
    def port(self) -> int:
        if self.transport is None:
            raise RuntimeError("the echo is not open")
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.packets += 1
        self.bytes += len(data)
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable from a caller that hung up: nothing to do

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
