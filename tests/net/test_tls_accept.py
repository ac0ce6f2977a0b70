"""One server-side TLS handshake for every listener (``net/stream_tls.py``): the SIP stream
listener and the HTTPS server accept with the same :class:`TlsAccept` and count with the same
classifier, so the same client gets the same answer from both: a port probe (a connection
closed before any TLS byte) is no refusal on either, a plain-text client is the same
``reason`` on both. On both event loops."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from test_tls_refusals import LOOPS, Sink, material, until

from hybridvoice.net.http import serve_asgi
from hybridvoice.net.identity import REFUSAL_REASONS
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.tls import MtlsContexts
from hybridvoice.pki import PkiStore

HOST = "127.0.0.1"


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[None]], None]:
    factory = loop_factory(request.param == "uvloop")

    def runner(coro: Awaitable[None]) -> None:
        async def main() -> None:
            await asyncio.wait_for(coro, 60)

        with asyncio.Runner(loop_factory=factory) as r:
            r.run(main())

    return runner


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _probe(port: int) -> None:
    """Connect and go away without a byte (a port scan, a load balancer's TCP check)."""
    _, writer = await asyncio.open_connection(HOST, port)
    writer.close()
    await writer.wait_closed()


async def _plain(port: int, data: bytes) -> None:
    """Send clear text to a TLS port and wait for the server to close."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(data)
    await asyncio.wait_for(reader.read(), 30)
    writer.close()


def test_sip_and_https_listeners_count_the_same_clients_the_same_way(
    run: Callable[[Awaitable[None]], None], tmp_path: Path
) -> None:
    store = PkiStore(tmp_path / "site")
    now = datetime.datetime.now(datetime.UTC)
    ca = store.ensure_ca("Amsterdam", now)
    store.ensure_server(ca, "mediation", now, ips=[HOST])

    async def main() -> None:
        contexts = MtlsContexts(lambda: material(store, "mediation"))
        sip = await StreamTransport.listen(HOST, 0, Sink(), kind="TLS", server_ssl=contexts.server)
        https_refused: list[tuple[str, str]] = []

        def refused(reason: str, peer: str, _detail: str) -> None:
            https_refused.append((peer, reason))

        https = await serve_asgi(_app, HOST, 0, ssl_context=contexts.server, on_tls_refused=refused)
        sip_refused = sip.counters.tls_refused
        try:
            hello = b"OPTIONS sip:x SIP/2.0\r\n\r\n"
            for port in (sip.local[1], https.port):
                await _probe(port)  # first: were it counted, it would be before the next
                await _plain(port, hello)
            await until(lambda: bool(sip_refused) and bool(https_refused))
            # one refusal each (the probes are none), with the same reason
            assert list(sip_refused.values()) == [1] and len(https_refused) == 1
            ((_, sip_reason),) = sip_refused
            ((_, https_reason),) = https_refused
            assert sip_reason == https_reason and sip_reason in REFUSAL_REASONS
        finally:
            sip.close()
            await https.stop()

    run(main())
