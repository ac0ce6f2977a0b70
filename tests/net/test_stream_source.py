"""A stream transport listening on a specific address connects out from that address: a peer
that accepts requests only from it (the edge from ``[Online] SIPAddresses``) sees it, on
loopback as on a host with several addresses (``hybridvoice up --wire`` in a lab whose online
service has an address of its own, docs/planning.md)."""

from __future__ import annotations

import asyncio

from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.stream_source import outgoing_source
from hybridvoice.net.transport import Source
from hybridvoice.sip.message import Request, Response

WAIT = 5.0


class Sink:
    def __init__(self) -> None:
        self.sources: asyncio.Queue[Source] = asyncio.Queue()

    def on_request(self, request: Request, source: Source) -> None:
        self.sources.put_nowait(source)

    def on_response(self, response: Response, source: Source) -> None:
        self.sources.put_nowait(source)


OPTIONS = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.64.0.1:5060;branch=z9hG4bKsrc\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: src-1\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def test_connections_leave_from_the_listeners_own_address() -> None:
    async def main() -> None:
        server_sink, client_sink = Sink(), Sink()
        server = await StreamTransport.listen("127.0.0.1", 0, server_sink)
        client = await StreamTransport.listen("127.64.0.1", 0, client_sink)
        try:
            client.send(OPTIONS, "127.0.0.1", server.local[1])
            source = await asyncio.wait_for(server_sink.sources.get(), WAIT)
            assert source.host == "127.64.0.1"  # not the kernel's pick, 127.0.0.1
        finally:
            client.close()
            server.close()

    asyncio.run(main())


def test_the_source_is_bound_only_where_it_can_reach() -> None:
    assert outgoing_source("127.64.0.1", "127.0.0.1") == ("127.64.0.1", 0)
    assert outgoing_source("192.0.2.10", "198.51.100.7") == ("192.0.2.10", 0)
    assert outgoing_source("0.0.0.0", "127.0.0.1") is None  # the wildcard: the kernel picks
    assert outgoing_source("::", "::1") is None
    assert outgoing_source("127.0.0.1", "192.0.2.1") is None  # loopback cannot reach out
    assert outgoing_source("192.0.2.10", "127.0.0.1") is None
    assert outgoing_source("::1", "127.0.0.1") is None  # other family
    assert outgoing_source("", "127.0.0.1") is None  # a transport that never listened
    assert outgoing_source("127.0.0.1", "gw.example") is None  # a name: resolved later
