"""In-process hops (hybridvoice.net.pipe): endpoints sharing a LocalExchange talk through
pipes, with the semantics of a stream connection and none of its bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from test_endpoint import FAST, TU, new_request
from test_transport import WAIT
from ua_harness import run

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.pipe import LocalExchange, PipeEnd
from hybridvoice.net.stream import StreamConnection, StreamTransport
from hybridvoice.net.transport import Destination, TransportError
from hybridvoice.net.udp import share_between
from hybridvoice.sip import Request, make_response
from hybridvoice.sip.value_cache import ValueCache


@contextlib.asynccontextmanager
async def _pair(
    tu: TU, exchange: LocalExchange | None
) -> AsyncIterator[tuple[Endpoint, Endpoint, StreamTransport, StreamTransport]]:
    """A client and a server endpoint on TCP, sharing ``exchange``; closed on the way out."""
    client = Endpoint(timers=FAST, exchange=exchange)
    server = Endpoint(tu, timers=FAST, exchange=exchange)
    try:
        mine = await client.listen("TCP", "127.0.0.1", 0)
        theirs = await server.listen("TCP", "127.0.0.1", 0)
        assert isinstance(mine, StreamTransport) and isinstance(theirs, StreamTransport)
        yield client, server, mine, theirs
    finally:
        await client.close()
        await server.close()


def test_a_request_to_a_listener_of_this_process_goes_through_a_pipe() -> None:
    async def main() -> None:
        exchange = LocalExchange()
        tu = TU(200)
        async with _pair(tu, exchange) as (client, _server, mine, theirs):
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs.local[1]}")
            response = await client.request(
                request, Destination("TCP", "127.0.0.1", theirs.local[1]), timeout=WAIT
            )
            assert response.status == 200
            assert exchange.pipes_opened == 1
            conn = mine.connection_to("127.0.0.1", theirs.local[1])
            assert isinstance(conn, PipeEnd)
            transaction, received = await tu.requests.get()
            # the receiver got a copy: the sender's request is untouched by what it does
            assert received is not request
            received.headers.add("X-Changed", "by the receiver")
            assert "X-Changed" not in request.headers
            # the source is the sender's listening address, as its Via says (no rewrite)
            source = transaction.context
            assert (source.host, source.port) == mine.local
            assert received.top_via is not None and received.top_via.received is None
            assert theirs.counters.messages_in == 1 and mine.counters.messages_in == 1
            assert mine.counters.bytes_out == 0  # nothing was serialised

    run(main())


def test_without_an_exchange_the_hop_is_a_socket() -> None:
    async def main() -> None:
        tu = TU(200)
        async with _pair(tu, None) as (client, _server, mine, theirs):
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs.local[1]}")
            destination = Destination("TCP", "127.0.0.1", theirs.local[1])
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            conn = mine.connection_to("127.0.0.1", theirs.local[1])
            assert isinstance(conn, StreamConnection)
            assert mine.counters.bytes_out > 0

    run(main())


def test_delivery_is_in_order_and_never_inside_the_senders_call() -> None:
    async def main() -> None:
        exchange = LocalExchange()
        tu = TU(None)  # keeps the requests
        async with _pair(tu, exchange) as (client, server, _, theirs):
            destination = Destination("TCP", "127.0.0.1", theirs.local[1])
            sent = []
            for i in range(20):
                request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs.local[1]}")
                request.headers.add("X-Seq", str(i))
                client.send_request(request, destination)
                sent.append(request)
            assert tu.requests.empty()  # not re-entrant: nothing delivered yet
            got = [(await asyncio.wait_for(tu.requests.get(), WAIT)) for _ in sent]
            assert [r.headers.get("X-Seq") for _, r in got] == [str(i) for i in range(20)]
            for transaction, request in got:
                server.send_response(transaction, make_response(request, 200, to_tag="t"))

    run(main())


def test_bytes_on_a_pipe_are_parsed_and_garbage_is_refused() -> None:
    async def main() -> None:
        exchange = LocalExchange()
        tu = TU(None)
        async with _pair(tu, exchange) as (_client, _server, mine, theirs):
            conn = exchange.connect(mine, theirs)
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs.local[1]}")
            request.headers.prepend("Via", f"SIP/2.0/TCP {mine.sent_by};branch=z9hG4bKbytes")
            conn.write(bytes(request))  # e.g. a stateless forward
            _, received = await asyncio.wait_for(tu.requests.get(), WAIT)
            assert isinstance(received, Request) and received.method == "OPTIONS"
            conn.write(b"\r\n\r\n")  # a keep-alive: nothing to deliver
            with pytest.raises(TransportError):
                conn.write(b"this is not SIP\r\n\r\n")
            assert mine.counters.drops == {"internal_error": 1}

    run(main())


def test_a_closed_listener_ends_its_pipes_and_sends_fail_cleanly() -> None:
    async def main() -> None:
        exchange = LocalExchange()
        tu = TU(200)
        async with _pair(tu, exchange) as (client, server, mine, theirs):
            port = theirs.local[1]
            destination = Destination("TCP", "127.0.0.1", port)
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{port}")
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            conn = mine.connection_to("127.0.0.1", port)
            assert isinstance(conn, PipeEnd)
            await server.close()
            assert exchange.find("TCP", "127.0.0.1", port) is None
            assert not conn.is_open and mine.connection_to("127.0.0.1", port) is None
            # nothing listens there any more: the request fails with a transport error
            done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            client.send_request(
                new_request("OPTIONS", f"sip:uas@127.0.0.1:{port}"),
                destination,
                lambda tx, outcome: done.done() or done.set_result(outcome),
            )
            outcome = await asyncio.wait_for(done, WAIT)
            assert getattr(outcome, "reason", None) == "transport"

    run(main())


def test_the_exchange_knows_listeners_by_kind_and_address() -> None:
    async def main() -> None:
        exchange = LocalExchange()
        endpoint = Endpoint(timers=FAST, exchange=exchange)
        tcp = await endpoint.listen("TCP", "127.0.0.1", 0, advertised_host="edge.example.com")
        udp = await endpoint.listen("UDP", "127.0.0.1", 0)
        try:
            assert exchange.find("TCP", "127.0.0.1", tcp.local[1]) is tcp
            assert exchange.find("TCP", "edge.example.com", tcp.local[1]) is tcp
            assert exchange.find("TLS", "127.0.0.1", tcp.local[1]) is None
            assert exchange.find("UDP", "127.0.0.1", udp.local[1]) is None  # streams only
        finally:
            await endpoint.close()
        assert len(exchange) == 0

    run(main())


def test_share_between_gives_stream_transports_one_value_cache_too() -> None:
    """The assembly's share_between: a role's UDP and TCP transports parse with one
    ValueCache (a stream transport's connections, open or opened later, included)."""

    async def main() -> None:
        tu = TU(200)
        async with _pair(tu, None) as (client, server, _mine, theirs):
            udp = await server.listen("UDP", "127.0.0.1", 0)
            values, _ = share_between(server.transports)
            assert theirs.values is values and getattr(udp, "values", None) is values
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs.local[1]}")
            destination = Destination("TCP", "127.0.0.1", theirs.local[1])
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            _transaction, received = await tu.requests.get()
            assert received.headers.value_cache is values
            other = ValueCache()
            share_between([theirs], other)  # the connection open now follows
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs.local[1]}", cseq=2)
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            _transaction, received = await tu.requests.get()
            assert received.headers.value_cache is other

    run(main())
