"""serve_asgi: a tiny ASGI app on 127.0.0.1, served inside the event loop, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hybridvoice.net.http import HttpServeError, serve_asgi

HOST = "127.0.0.1"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with 200 and the request path."""
    assert scope["type"] == "http"
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def test_serves_on_a_free_port_and_stops() -> None:
    async def main() -> tuple[httpx.Response, str, int]:
        server = await serve_asgi(hello, HOST, 0)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(f"{server.url}/some/path")
        finally:
            await server.stop()
        with pytest.raises(httpx.ConnectError):  # stopped means closed
            async with httpx.AsyncClient(timeout=2) as http:
                await http.get(server.url)
        return answer, server.url, server.port

    answer, url, port = asyncio.run(main())
    assert port > 0
    assert url == f"http://{HOST}:{port}"
    assert answer.status_code == 200
    assert answer.text == "/some/path"
    assert "server" not in answer.headers


def test_refuses_wildcard_and_names() -> None:
    async def main() -> None:
        for host in ("0.0.0.0", "::", "localhost"):
            with pytest.raises(HttpServeError):
                await serve_asgi(hello, host, 0)

    asyncio.run(main())


def test_reports_a_port_in_use() -> None:
    async def main() -> None:
        first = await serve_asgi(hello, HOST, 0)
        try:
            with pytest.raises(HttpServeError, match="could not listen"):
                await serve_asgi(hello, HOST, first.port)
        finally:
            await first.stop()

    asyncio.run(main())
