"""``serve_asgi(request_timeout=...)``: a client that keeps a request half-sent is closed, a
request the app takes long to answer (a long poll) is not, and without the option nothing is
closed (the online API's long polls keep their connection)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from hybridvoice.net.http import serve_asgi

TIMEOUT = 2.0


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(TIMEOUT * 2)  # longer than the timeout: the app is answering
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


def test_a_slow_answer_is_not_cut_but_a_half_sent_request_is() -> None:
    async def main() -> None:
        server = await serve_asgi(slow_app, "127.0.0.1", 0, request_timeout=TIMEOUT)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            await writer.drain()
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.get(server.url)
            assert answer.status_code == 200 and answer.text == "late"
            assert await asyncio.wait_for(reader.read(), TIMEOUT * 10) == b""
            writer.close()
            assert server.sweep is not None and server.sweep.closed == 1
        finally:
            await server.stop()

    asyncio.run(main())


def test_without_a_request_timeout_there_is_no_sweep() -> None:
    async def main() -> None:
        server = await serve_asgi(slow_app, "127.0.0.1", 0)
        try:
            assert server.sweep is None
        finally:
            await server.stop()

    asyncio.run(main())
