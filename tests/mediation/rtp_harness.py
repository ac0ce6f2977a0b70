"""A media end for mediation tests: real RTP and RTCP on a loopback port pair (RFC 3550 §11:
RTCP on RTP + 1), to send packets through the role's relay and count what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ports import free_port_block

from hybridvoice.media import RtpPacket
from hybridvoice.media.rtcp import RtcpPacket, parse_rtcp, serialize_rtcp

__all__ = ["MediaEnd", "media_end"]


def _pair(host: str) -> tuple[socket.socket, socket.socket]:
    for _ in range(200):
        port = free_port_block(2, host)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return rtp, rtcp
    raise OSError("no free RTP/RTCP port pair")


@dataclass
class MediaEnd:
    """One side's media: its RTP/RTCP sockets and what they received."""

    rtp: socket.socket
    rtcp: socket.socket
    ssrc: int
    received: list[RtpPacket] = field(default_factory=list)
    reports: list[RtcpPacket] = field(default_factory=list)
    seq: int = 1000
    ts: int = 0

    @property
    def port(self) -> int:
        return int(self.rtp.getsockname()[1])

    def send_rtp(self, to: tuple[str, int], payload_type: int, payload: bytes) -> None:
        packet = RtpPacket(
            payload_type=payload_type, sequence_number=self.seq & 0xFFFF, timestamp=self.ts,
            ssrc=self.ssrc, payload=payload,
        )  # fmt: skip
        self.rtp.sendto(bytes(packet), to)
        self.seq += 1
        self.ts += len(payload)

    def send_rtcp(self, to: tuple[str, int], *packets: RtcpPacket) -> None:
        self.rtcp.sendto(serialize_rtcp(list(packets)), to)

    async def expect_rtp(self, count: int, timeout: float = 5.0) -> list[RtpPacket]:
        """Wait until ``count`` RTP packets arrived in all (the ones kept in ``received``)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                data = await loop.sock_recv(self.rtp, 2048)
                self.received.append(RtpPacket.parse(data))
        return self.received

    async def expect_rtcp(self, count: int, timeout: float = 5.0) -> list[RtcpPacket]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while len(self.reports) < count:
                self.reports.extend(parse_rtcp(await loop.sock_recv(self.rtcp, 2048)))
        return self.reports


@contextlib.asynccontextmanager
async def media_end(host: str = "127.0.0.1") -> AsyncIterator[MediaEnd]:
    rtp, rtcp = _pair(host)
    try:
        yield MediaEnd(rtp, rtcp, random.getrandbits(32))
    finally:
        rtp.close()
        rtcp.close()
