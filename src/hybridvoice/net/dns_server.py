"""A DNS server's transports: UDP datagrams and TCP length-prefixed messages (RFC 1035 §4.2.1,
§4.2.2; RFC 7766 §6.2 for several queries on one connection) on the loop.

It carries bytes only: every query goes to a handler ``(data, source_ip, tcp) -> bytes | None``
(the geo-DNS core, :class:`hybridvoice.mediation.geo_dns.GeoDns`), and what the handler
returns is sent back; ``None`` sends nothing. The handler decides truncation (it is told
``tcp``). A handler that raises is counted in ``errors`` and the query goes unanswered: the
server keeps serving. TCP connections close after ``idle_timeout`` seconds without a query
(RFC 7766 §6.2.3) and beyond ``max_connections`` at once new ones are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

__all__ = ["DnsServer", "Handler"]

Handler = Callable[[bytes, str, bool], "bytes | None"]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = self.server.handle(data, str(addr[0]), tcp=False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors of earlier sends
        self.server.errors += 1


class DnsServer:
    """UDP and TCP listeners on one address and port, feeding one handler."""

    __slots__ = (
        "_connections",
        "_handler",
        "_tcp",
        "_udp",
        "address",
        "errors",
        "idle_timeout",
        "max_connections",
    )

    def __init__(
        self, handler: Handler, *, idle_timeout: float = 30.0, max_connections: int = 256
    ) -> None:
        self._handler = handler
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.errors = 0
        self.address: tuple[str, int] = ("", 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        handler: Handler,
        host: str,
        port: int,
        *,
        tcp: bool = True,
        idle_timeout: float = 30.0,
        max_connections: int = 256,
    ) -> DnsServer:
        """Listen on ``host``:``port`` (0: a free port, the same one for UDP and TCP)."""
        server = cls(handler, idle_timeout=idle_timeout, max_connections=max_connections)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(server), local_addr=(host, port)
        )
        server._udp = transport
        bound = transport.get_extra_info("sockname")
        server.address = (str(bound[0]), int(bound[1]))
        if tcp:
            try:
                server._tcp = await asyncio.start_server(
                    server._serve_tcp, host, server.address[1], reuse_address=True
                )
            except OSError:
                transport.close()
                raise
        return server

    def handle(self, data: bytes, source: str, *, tcp: bool) -> bytes | None:
        try:
            return self._handler(data, source, tcp)
        except Exception:  # the handler's bug must not stop the server
            self.errors += 1
            return None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.max_connections or task is None:
            writer.close()
            return
        self._connections.add(task)
        source = str(writer.get_extra_info("peername")[0])
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                size = int.from_bytes(prefix, "big")
                data = await asyncio.wait_for(reader.readexactly(size), self.idle_timeout)
                reply = self.handle(data, source, tcp=True)
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._connections):
                task.cancel()
            await self._tcp.wait_closed()
