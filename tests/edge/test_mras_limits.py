"""The MRAS listener against oversized and malformed input: bodies over its limit get 413
with a hint about MRAS (not another service's setting), a POST that is not JSON 415, a body
that is not UTF-8 400, all in the {"error", "hint"} form and counted; slow clients (nothing
sent, half a head, half a body) are closed (``net.http`` ``request_timeout``). Every client
here is the online service (its site certificate, MRAS's mutual TLS): the limits hold for a
peer that passed the handshake."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from test_edge_media import HOST, edge_role, settings

from hybridvoice.edge.mras_api import MAX_BODY, REQUEST_TIMEOUT

POST_ASIDE = b'{"user": "sip:alice@contoso.example"}'


def test_mras_refuses_bad_input_in_its_own_terms(tmp_path: Path) -> None:
    async def run() -> None:
        edge, tls = edge_role(settings(tmp_path), tmp_path)
        await edge.start()
        try:
            media = edge.media
            assert media is not None
            url = media.mras_url
            online = tls.contexts["online"].client
            async with httpx.AsyncClient(verify=online, timeout=10) as http:
                answers = {
                    "text": await http.post(url, content=POST_ASIDE,
                                            headers={"content-type": "text/plain"}),
                    "none": await http.post(url, content=POST_ASIDE),
                    "form": await http.post(url, data={"user": "sip:alice@contoso.example"}),
                    "utf8": await http.post(url, content=b'{"user": "\xff"}',
                                            headers={"content-type": "application/json"}),
                    "huge": await http.post(url, json={"user": "x" * (MAX_BODY * 4)}),
                    "ok": await http.post(url, json={"user": "sip:alice@contoso.example"},
                                          headers={"content-type": "application/json; x=1"}),
                }  # fmt: skip
            status = {k: a.status_code for k, a in answers.items()}
            assert status == {"text": 415, "none": 415, "form": 415, "utf8": 400, "huge": 413,
                              "ok": 200}  # fmt: skip
            for name in ("text", "none", "form", "utf8", "huge"):
                body = answers[name].json()
                assert body["error"] and "user" in body["hint"], (name, body)
            assert "MaxRequestBytes" not in answers["huge"].json()["hint"]
            assert "text/plain" in answers["text"].json()["error"]
            assert media.mras_counters["refused_invalid"] == 4
            assert media.mras_counters["issued"] == 1
            sweep = media.mras.sweep
            assert sweep is not None and sweep.timeout == REQUEST_TIMEOUT
        finally:
            await edge.stop()

    asyncio.run(run())


def test_mras_closes_clients_that_never_finish_a_request(tmp_path: Path) -> None:
    async def run() -> None:
        edge, tls = edge_role(settings(tmp_path), tmp_path)
        await edge.start()
        try:
            media = edge.media
            assert media is not None and media.mras.sweep is not None
            online = tls.contexts["online"].client
            port = media.mras.port
            starts = (
                b"",  # connects, says nothing
                b"POST /mras/v1/credentials HTTP/1.1\r\nHost: x\r\n",  # half a head
                b"POST /mras/v1/credentials HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b'application/json\r\nContent-Length: 200\r\n\r\n{"us',  # half a body
            )
            streams = [await asyncio.open_connection(HOST, port, ssl=online) for _ in starts]
            for (_, writer), data in zip(streams, starts, strict=True):
                writer.write(data)
                await writer.drain()
            for reader, writer in streams:  # closed by the server, not by us
                assert await asyncio.wait_for(reader.read(), REQUEST_TIMEOUT * 4) == b""
                writer.close()
            assert media.mras.sweep.closed == 3
        finally:
            await edge.stop()

    asyncio.run(run())
