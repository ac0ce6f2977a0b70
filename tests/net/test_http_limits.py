"""serve_asgi's request body limit, over real sockets: a 60 MB body is refused with 413 before
the server reads it (nothing of it reaches the app), a chunked one is cut off at the limit, the
connection is closed after the 413, and bodies within the limit pass."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hybridvoice.net.http import DEFAULT_MAX_BODY, serve_asgi

HOST = "127.0.0.1"
SIXTY_MB = 60 * 1024 * 1024
LIMIT = 64 * 1024


class Reader:
    """An ASGI app that reads the whole body, counts it, and answers 200 with the count."""

    def __init__(self) -> None:
        self.calls = 0
        self.read = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.read += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(self.read).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    return status, head.lower()


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (reads to EOF, a reset counts)."""
    try:
        while await asyncio.wait_for(reader.read(65536), 10):
            pass
    except ConnectionResetError:
        pass
    return True


def test_a_60_mb_content_length_gets_413_without_a_byte_of_the_body() -> None:
    app = Reader()

    async def main() -> None:
        server = await serve_asgi(app, HOST, 0, max_body=LIMIT)
        try:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(
                b"PUT /v1/users/x HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % SIXTY_MB
            )  # the head only: the answer must come without the body
            await writer.drain()
            status, head = await _answer(reader)
            assert status == 413
            assert b"connection: close" in head
            assert await _closed(reader)
            writer.close()
            assert app.calls == 0 and app.read == 0  # the app never saw it
        finally:
            await server.stop()

    asyncio.run(main())


def test_a_chunked_body_is_cut_off_at_the_limit_and_the_connection_closed() -> None:
    app = Reader()
    chunk = b"x" * 16384

    async def main() -> int:
        server = await serve_asgi(app, HOST, 0, max_body=LIMIT)
        sent = 0
        try:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(
                b"POST /v1/sites HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            answer = asyncio.ensure_future(_answer(reader))
            with contextlib.suppress(ConnectionError):
                while sent < SIXTY_MB and not answer.done():
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                    sent += len(chunk)
            status, head = await answer
            assert status == 413 and b"connection: close" in head
            assert await _closed(reader)
            writer.close()
        finally:
            await server.stop()
        return sent

    sent = asyncio.run(main())
    assert sent < SIXTY_MB // 4  # refused long before the client got far
    assert app.read <= LIMIT + 16384  # the app was given no more than the limit and a chunk
    assert app.calls == 1


def test_bodies_within_the_limit_pass_and_the_default_is_one_mib() -> None:
    app = Reader()
    assert DEFAULT_MAX_BODY == 1 << 20

    async def main() -> None:
        server = await serve_asgi(app, HOST, 0, max_body=LIMIT)
        try:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            body = b"y" * LIMIT
            writer.write(b"POST / HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))  # fmt: skip
            status, _ = await _answer(reader)
            assert status == 200
            writer.close()
        finally:
            await server.stop()

    asyncio.run(main())
    assert app.read == LIMIT
