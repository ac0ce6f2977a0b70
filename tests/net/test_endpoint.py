"""The endpoint over real sockets: transports -> transaction layer -> TU, and back
(RFC 3261 §17, §18.1.1 Via, §18.2.2 response routing, RFC 3581), plus the OPTIONS ping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from test_transport import (
    LOOPS,
    WAIT,
    Peer,
    _has_ipv6,
    certificate,
    read_message,
    tls_contexts,
    udp_peer,
)

from hybridvoice.net.endpoint import Endpoint, RequestTimeoutError
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.options import OptionsResult, ping
from hybridvoice.net.transport import Destination, Source, Transport, via_host
from hybridvoice.sip import Headers, Request, Response, make_response, parse_message, parse_uri
from hybridvoice.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionTimeout,
)

__all__ = ["certificate"]  # the fixture, imported from test_transport

FAST = TimerConfig(t1=0.01, t2=0.04, t4=0.05, timer_d=0.1)


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[None]], None]:
    factory = loop_factory(request.param == "uvloop")

    def runner(coro: Awaitable[None]) -> None:
        async def main() -> None:
            await asyncio.wait_for(coro, 20)

        with asyncio.Runner(loop_factory=factory) as r:
            r.run(main())

    return runner


class TU:
    """Answers every request with ``status`` (None: keeps them for the test to answer)."""

    def __init__(self, status: int | None = 200) -> None:
        self.status = status
        self.requests: asyncio.Queue[tuple[ServerTransaction, Request]] = asyncio.Queue()
        self.acks: list[Request] = []
        self.ack_sources: list[Source] = []
        self.responses: list[Response] = []
        self.stray: list[Response] = []
        self.timeouts: list[str] = []

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        if self.status is not None:
            endpoint.send_response(transaction, make_response(request, self.status, to_tag="t1"))
        self.requests.put_nowait((transaction, request))

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        self.acks.append(request)
        self.ack_sources.append(source)

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        self.responses.append(response)

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        self.stray.append(response)

    def on_timeout(
        self, endpoint: Endpoint, transaction: ClientTransaction | ServerTransaction, reason: str
    ) -> None:
        self.timeouts.append(reason)


def new_request(method: str, target: str, cseq: int = 1) -> Request:
    headers = Headers.of(
        [
            ("Max-Forwards", 70),
            ("To", f"<{target}>"),
            ("From", f"<sip:test@example.com>;tag={random.getrandbits(32):x}"),
            ("Call-ID", f"{random.getrandbits(64):x}@test"),
            ("CSeq", f"{cseq} {method}"),
            ("Content-Length", 0),
        ]
    )
    return Request(method, parse_uri(target), headers)


async def pair(kind: str, tu: TU, **listen: object) -> tuple[Endpoint, Endpoint, Transport]:
    client = Endpoint(timers=FAST)
    server = Endpoint(tu, timers=FAST)
    await client.listen(kind, "127.0.0.1", 0, **listen)  # type: ignore[arg-type]
    listening = await server.listen(kind, "127.0.0.1", 0, **listen)  # type: ignore[arg-type]
    return client, server, listening


def test_destination_local_picks_the_interface(run: Callable[[Awaitable[None]], None]) -> None:
    """A dual-homed endpoint (two UDP transports) sends from the one ``local`` names, so
    the Via sent-by and the packet's source are that interface's (a dual-homed edge)."""

    async def main() -> None:
        tu = TU(200)
        client, server, listening = await pair("UDP", tu)
        second = await client.listen("UDP", "127.0.0.1", 0)
        ladder: list[tuple[str, str]] = []
        client.trace = lambda way, m: ladder.append(
            (way, m.method if isinstance(m, Request) else str(m.status))
        )
        try:
            port = listening.local[1]
            for transport in (second, client.transports[0]):
                request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{port}")
                destination = Destination("UDP", "127.0.0.1", port, local=transport.local)
                assert (await client.request(request, destination, timeout=WAIT)).status == 200
                _, received = await tu.requests.get()
                via = received.top_via
                assert via is not None and f"{via.host}:{via.port}" == transport.sent_by
                assert via.rport == transport.local[1]  # the packet came from that socket
            assert ladder == [("out", "OPTIONS"), ("in", "200")] * 2  # the trace hook
        finally:
            await client.close()
            await server.close()

    run(main())


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_request_and_response(run: Callable[[Awaitable[None]], None], kind: str) -> None:
    async def main() -> None:
        tu = TU(200)
        client, server, listening = await pair(kind, tu)
        try:
            port = listening.local[1]
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{port}")
            response = await client.request(
                request, Destination(kind, "127.0.0.1", port), timeout=WAIT
            )
            assert response.status == 200
            via = request.top_via
            assert via is not None and via.transport == kind
            assert f"{via.host}:{via.port}" == client.transports[0].sent_by
            assert via.branch is not None and via.branch.startswith("z9hG4bK")
            # rport only where it is used (RFC 3581 on UDP; §18.2.2 ignores it on streams)
            assert via.wants_rport is (kind == "UDP")
            _, received = await tu.requests.get()
            assert received.top_via is not None
            assert (received.top_via.rport is not None) is (kind == "UDP")
            assert client.counters.requests_out == {"OPTIONS": 1}
            assert client.counters.responses_in == {200: 1}
            assert server.counters.requests_in == {"OPTIONS": 1}
            assert server.counters.responses_out == {200: 1}
        finally:
            await client.close()
            await server.close()

    run(main())


def test_tls_request(
    run: Callable[[Awaitable[None]], None], certificate: tuple[Path, Path]
) -> None:
    async def main() -> None:
        server_ctx, client_ctx = tls_contexts(certificate)
        tu = TU(200)
        client = Endpoint(timers=FAST)
        server = Endpoint(tu, timers=FAST)
        await client.listen("TLS", "127.0.0.1", client_ssl=client_ctx)
        listening = await server.listen("TLS", "127.0.0.1", server_ssl=server_ctx)
        try:
            port = listening.local[1]
            request = new_request("OPTIONS", f"sips:uas@127.0.0.1:{port}")
            response = await client.request(
                request, Destination("TLS", "127.0.0.1", port), timeout=WAIT
            )
            assert response.status == 200
        finally:
            await client.close()
            await server.close()

    run(main())


def test_timeout_retransmits_then_fails(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        client = Endpoint(timers=FAST)
        await client.listen("UDP", "127.0.0.1")
        silent = await udp_peer()
        try:
            request = new_request("OPTIONS", f"sip:x@127.0.0.1:{silent.port}")
            with pytest.raises(RequestTimeoutError) as info:
                await client.request(request, Destination("UDP", "127.0.0.1", silent.port))
            assert info.value.reason == "timeout"
            assert client.counters.retransmissions > 0
            assert client.counters.requests_out == {"OPTIONS": 1}  # counted once
            assert client.counters.timeouts == 1
            sent = client.counters.retransmissions + 1
            for _ in range(100):  # the last datagram may still wait for the peer's read callback
                if silent.queue.qsize() >= sent:
                    break
                await asyncio.sleep(0.01)
            assert silent.queue.qsize() == sent
        finally:
            await client.close()

    run(main())


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_the_tu_gets_the_ack_s_source_and_sends_a_2xx_back_directly(
    run: Callable[[Awaitable[None]], None], kind: str
) -> None:
    """§13.3.1.4 / RFC 6026 §7.1: the 2xx ACK comes with where it came from, and the TU
    can send a 2xx outside any transaction back the way a request came."""

    async def main() -> None:
        tu = TU(200)
        client, server, listening = await pair(kind, tu)
        try:
            port = listening.local[1]
            invite = new_request("INVITE", f"sip:uas@127.0.0.1:{port}")
            response = await client.request(invite, Destination(kind, "127.0.0.1", port))
            assert response.status == 200
            server_tx, _ = await tu.requests.get()
            ack = new_request("ACK", f"sip:uas@127.0.0.1:{port}")
            client.send_stateless(ack, Destination(kind, "127.0.0.1", port))
            for _ in range(100):
                if tu.ack_sources:
                    break
                await asyncio.sleep(0.01)
            [source] = tu.ack_sources
            assert source.transport is listening
            if kind == "UDP":  # the packet's source address
                assert (source.host, source.port) == client.transports[0].local
            else:  # the connection it came on
                assert source.connection is not None and source.host == "127.0.0.1"
            # the 2xx again, straight to the INVITE's source (the client transaction, in
            # Accepted, takes it in: RFC 6026 §7.2)
            invite_source = server_tx.context
            assert isinstance(invite_source, Source)
            server.send_direct(invite_source, response)
            for _ in range(100):
                if client.counters.responses_in.get(200) == 2:
                    break
                await asyncio.sleep(0.01)
            assert client.counters.responses_in == {200: 2}
            assert server.counters.responses_out == {200: 2}
        finally:
            await client.close()
            await server.close()

    run(main())


def test_a_transport_failure_reaches_the_tu_in_words(
    run: Callable[[Awaitable[None]], None],
) -> None:
    """The callback's TransactionTimeout names what the transport said (§17.1.1.2)."""

    async def main() -> None:
        client = Endpoint(timers=FAST)
        await client.listen("TCP", "127.0.0.1")
        closed = await udp_peer()  # a port number nobody listens on with TCP
        outcomes: list[object] = []
        try:
            request = new_request("INVITE", f"sip:x@127.0.0.1:{closed.port}")
            client.send_request(
                request,
                Destination("TCP", "127.0.0.1", closed.port),
                lambda tx, outcome: outcomes.append(outcome),
            )
            for _ in range(200):
                if outcomes:
                    break
                await asyncio.sleep(0.01)
            [timeout] = outcomes
            assert isinstance(timeout, TransactionTimeout)
            assert timeout.reason == "transport"
            assert timeout.cause is not None
            assert timeout.cause.startswith(f"TCP connect to 127.0.0.1:{closed.port} failed")
        finally:
            await client.close()

    run(main())


def test_tcp_connect_refused_is_a_transport_error(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        client = Endpoint(timers=FAST)
        await client.listen("TCP", "127.0.0.1")
        closed = await udp_peer()  # a port number nobody listens on with TCP
        try:
            request = new_request("OPTIONS", f"sip:x@127.0.0.1:{closed.port}")
            with pytest.raises(RequestTimeoutError) as info:
                await client.request(request, Destination("TCP", "127.0.0.1", closed.port))
            assert info.value.reason == "transport"
            assert client.counters.transport_errors == 1
        finally:
            await client.close()

    run(main())


def test_no_transport_for_destination(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        client = Endpoint(timers=FAST)
        await client.listen("UDP", "127.0.0.1")
        try:
            with pytest.raises(Exception, match="no TCP transport"):
                client.send_request(new_request("OPTIONS", "sip:x@h"), Destination("TCP", "::1", 1))
        finally:
            await client.close()

    run(main())


def test_udp_response_follows_rport(run: Callable[[Awaitable[None]], None]) -> None:
    """RFC 3581 §4: the response goes to the source port, not to the Via's sent-by port."""

    async def main() -> None:
        tu = TU(200)
        server = Endpoint(tu, timers=FAST)
        listening = await server.listen("UDP", "127.0.0.1")
        peer: Peer = await udp_peer()
        try:
            request = new_request("OPTIONS", "sip:uas@127.0.0.1")
            request.headers.prepend("Via", "SIP/2.0/UDP nat.invalid:1;branch=z9hG4bKnat;rport")
            peer.send(bytes(request), listening.local)
            answer = parse_message(await peer.get())
            assert isinstance(answer, Response) and answer.status == 200
            assert answer.top_via is not None
            assert answer.top_via.rport == peer.port and answer.top_via.received == "127.0.0.1"
            # a retransmission of the request is absorbed: the same 200 again, no new TU call
            peer.send(bytes(request), listening.local)
            again = parse_message(await peer.get())
            assert isinstance(again, Response) and again.status == 200
            assert tu.requests.qsize() == 1
            assert server.counters.retransmissions == 1
        finally:
            await server.close()

    run(main())


def test_tcp_response_after_connection_closed_opens_new_one(
    run: Callable[[Awaitable[None]], None],
) -> None:
    """§18.2.2: the request's connection is gone, so the response goes on a new connection
    to the received address and the sent-by port."""

    async def main() -> None:
        accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.put_nowait(r)

        back = await asyncio.start_server(on_client, "127.0.0.1", 0)
        back_port = back.sockets[0].getsockname()[1]
        tu = TU(None)
        server = Endpoint(tu, timers=TimerConfig())
        listening = await server.listen("TCP", "127.0.0.1")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listening.local[1])
            request = new_request("OPTIONS", "sip:uas@127.0.0.1")
            request.headers.prepend("Via", f"SIP/2.0/TCP 127.0.0.1:{back_port};branch=z9hG4bK1")
            writer.write(bytes(request))
            tx, received = await asyncio.wait_for(tu.requests.get(), WAIT)
            writer.close()
            assert await reader.read() == b""
            while listening.connections:  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
            server.send_response(tx, make_response(received, 200, to_tag="x"))
            answer = await read_message(await asyncio.wait_for(accepted.get(), WAIT))
            assert isinstance(answer, Response) and answer.status == 200
        finally:
            await server.close()
            back.close()

    run(main())


class StubLayer:
    """Only what the timer code reads: a deadline the test moves."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.fired: list[float] = []

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timers(self, now: float) -> None:
        self.fired.append(now)
        self.deadline = None

    def events(self) -> list[object]:
        return []


def test_one_timer_moves_only_earlier(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        layer = StubLayer()
        endpoint = Endpoint(layer=layer)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        now = loop.time()
        layer.deadline = now + 100
        endpoint._drain()
        first = endpoint._timer
        layer.deadline = now + 200  # later: the handle stays
        endpoint._drain()
        assert endpoint._timer is first
        layer.deadline = now + 0.05  # earlier: re-armed
        endpoint._drain()
        assert endpoint._timer is not first and first is not None and first.cancelled()
        while not layer.fired:
            await asyncio.sleep(0.01)
        assert layer.fired[0] >= now + 0.05  # never before the deadline
        await endpoint.close()

    run(main())


def test_send_request_callback_gets_provisional_and_final(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def main() -> None:
        tu = TU(None)
        client, server, listening = await pair("UDP", tu)
        outcomes: list[Response | TransactionTimeout] = []
        try:
            port = listening.local[1]
            client.send_request(
                new_request("MESSAGE", f"sip:uas@127.0.0.1:{port}"),
                Destination("UDP", "127.0.0.1", port),
                lambda tx, outcome: outcomes.append(outcome),
            )
            tx, request = await asyncio.wait_for(tu.requests.get(), WAIT)
            server.send_response(tx, make_response(request, 180))
            server.send_response(tx, make_response(request, 202, to_tag="x"))
            while len(outcomes) < 2:
                await asyncio.sleep(0.01)
            assert [o.status for o in outcomes if isinstance(o, Response)] == [180, 202]
        finally:
            await client.close()
            await server.close()

    run(main())


# --- OPTIONS ping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "host"),
    [("UDP", "127.0.0.1"), ("TCP", "127.0.0.1"), ("UDP", "::1"), ("TCP", "::1")],
)
def test_ping(run: Callable[[Awaitable[None]], None], kind: str, host: str) -> None:
    if host == "::1" and not _has_ipv6():
        pytest.skip("no IPv6 loopback on this machine")

    async def main() -> None:
        server = Endpoint(TU(200))
        listening = await server.listen(kind, host)
        try:
            uri = f"sip:{via_host(host)}:{listening.local[1]};transport={kind.lower()}"
            result = await ping(
                uri, transport=None, local_host=None, timeout=WAIT, tls_context=None
            )
            assert isinstance(result, OptionsResult)
            assert result.response.status == 200 and result.rtt_ms > 0
        finally:
            await server.close()

    run(main())


def test_ping_tls(run: Callable[[Awaitable[None]], None], certificate: tuple[Path, Path]) -> None:
    async def main() -> None:
        server_ctx, client_ctx = tls_contexts(certificate)
        server = Endpoint(TU(486))
        listening = await server.listen("TLS", "127.0.0.1", server_ssl=server_ctx)
        try:
            uri = f"sips:localhost:{listening.local[1]}"
            result = await ping(uri, transport=None, local_host="127.0.0.1", timeout=WAIT,
                                tls_context=client_ctx)  # fmt: skip
            assert result.response.status == 486  # any final response means alive (§11.2)
        finally:
            await server.close()

    run(main())


def test_ping_timeout(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        silent = await udp_peer()
        with pytest.raises(RequestTimeoutError):
            await ping(f"sip:127.0.0.1:{silent.port}", transport="udp", local_host="127.0.0.1",
                       timeout=0.3, tls_context=None)  # fmt: skip
        assert silent.queue.qsize() >= 1

    run(main())


def test_branch_factory_gives_unique_cookie_branches_across_refills() -> None:
    from hybridvoice.net.endpoint import BranchFactory  # noqa: PLC0415

    make = BranchFactory()
    branches = [make() for _ in range(1000)]  # several 128-branch refills
    assert len(set(branches)) == 1000
    assert all(b.startswith("z9hG4bK") and len(b) == 23 for b in branches)
    assert all(int(b[7:], 16) >= 0 for b in branches)  # 64 bits in hex
