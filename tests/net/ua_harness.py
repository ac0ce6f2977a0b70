"""Shared helpers for tests that run real UserAgents on loopback: fast timers, an SDP body
builder, an application that queues incoming calls, UA sides opened in bulk, and a runner."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Transport
from hybridvoice.net.ua import Call, UserAgent
from hybridvoice.sip import Request
from hybridvoice.sip.session import SessionConfig
from hybridvoice.sip.transaction import ServerTransaction, TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.2, t4=0.25, timer_d=0.3)
QUICK = SessionConfig(t1=0.05, t2=0.2)
WAIT = 5.0


def sdp(port: int, direction: str = "sendrecv", host: str = "127.0.0.1") -> bytes:
    return (
        f"v=0\r\no=hv 1 {port} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    ).encode()


OFFER, ANSWER = sdp(6000), sdp(7000)


class Phone:
    """An application that queues incoming calls for the test and takes no other request."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()

    def on_incoming_call(self, call: Call) -> None:
        self.incoming.put_nowait(call)

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False


@dataclass
class Side:
    ua: UserAgent
    phone: Phone
    endpoint: Endpoint
    transport: Transport

    def uri(self, user: str = "bob") -> str:
        host, port = self.transport.local
        return f"sip:{user}@{host}:{port};transport={self.transport.kind.lower()}"


S = TypeVar("S", bound=Side)


async def open_side(
    kind: str = "UDP", host: str = "127.0.0.1", config: SessionConfig = QUICK
) -> tuple[UserAgent, Phone, Endpoint, Transport]:
    """A UserAgent with a queueing Phone, listening on an ephemeral port."""
    endpoint = Endpoint(timers=FAST)
    phone = Phone()
    ua = UserAgent(endpoint, phone, config=config, rng=random.Random())
    transport = await endpoint.listen(kind, host, 0)
    return ua, phone, endpoint, transport


@contextlib.asynccontextmanager
async def open_sides(
    side: type[S], n: int, kind: str = "UDP", config: SessionConfig = QUICK
) -> AsyncIterator[list[S]]:
    """``n`` sides of type ``side``, each closed on the way out."""
    out = []
    for _ in range(n):
        out.append(side(*await open_side(kind, config=config)))
    try:
        yield out
    finally:
        for each in out:
            each.ua.close()
            await each.endpoint.close()


def run(
    coro: Awaitable[None],
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    timeout: float = 30,
) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=factory or loop_factory()) as runner:
        runner.run(main())
