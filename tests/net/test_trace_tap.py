"""The SIP capture's hook in the transports (net/trace_tap.py): both directions of UDP, TCP
and in-process pipe hops are captured with real addresses, a pipe hop once, and the HEP
sender delivers HEPv3 packets a loopback socket decodes."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_endpoint import FAST, TU, new_request
from test_transport import WAIT
from ua_harness import run

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.pipe import LocalExchange
from hybridvoice.net.stream import StreamConnection, StreamTransport
from hybridvoice.net.trace_tap import HepSender, TraceTap, parse_collector, tap_endpoint
from hybridvoice.net.transport import Destination
from hybridvoice.trace.capture import CaptureBuffer
from hybridvoice.trace.hep import HepOptions

sys.path.insert(0, str(Path(__file__).parent.parent / "trace"))
from hep_decode import decode


@contextlib.asynccontextmanager
async def _pair(
    kind: str, exchange: LocalExchange | None, tap: TraceTap
) -> AsyncIterator[tuple[Endpoint, tuple[str, int], tuple[str, int]]]:
    client = Endpoint(timers=FAST, exchange=exchange)
    server = Endpoint(TU(200), timers=FAST, exchange=exchange)
    try:
        mine = await client.listen(kind, "127.0.0.1", 0)
        theirs = await server.listen(kind, "127.0.0.1", 0)
        tap_endpoint(client, tap)
        tap_endpoint(server, tap)
        yield client, mine.local, theirs.local
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_both_directions_are_captured_with_real_addresses(kind: str) -> None:
    async def main() -> None:
        buffer = CaptureBuffer()
        tap = TraceTap(buffer)
        async with _pair(kind, None, tap) as (client, mine, theirs):
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs[1]}")
            destination = Destination(kind, "127.0.0.1", theirs[1])
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            assert request.call_id is not None
            trace = buffer.get(request.call_id)
            assert trace is not None
            # each message is seen leaving one transport and entering the other (a loaded
            # machine may add UDP retransmissions: each is captured too, in its place)
            seen = [(m.outgoing, m.data.split(b" ", 1)[0]) for m in trace.messages]
            assert list(dict.fromkeys(seen)) == [
                (True, b"OPTIONS"), (False, b"OPTIONS"), (True, b"SIP/2.0"), (False, b"SIP/2.0"),
            ]  # fmt: skip
            assert kind == "UDP" or len(seen) == 4  # TCP never retransmits
            first = trace.messages[0]
            assert first.transport == kind and first.dst == theirs
            assert first.src[0] == "127.0.0.1"
            if kind == "UDP":
                assert first.src == mine
            # the export keeps one copy of each hop: the sending end's
            exported = buffer.messages_of([request.call_id])
            assert all(m.outgoing for m in exported)
            assert [m.data.split(b" ", 1)[0] for m in exported][:: len(exported) - 1] == [
                b"OPTIONS", b"SIP/2.0"]  # fmt: skip
            assert kind == "UDP" or len(exported) == 2
            assert tap.errors == 0

    run(main())


def test_a_pipe_hop_is_captured_once_with_the_listening_addresses() -> None:
    async def main() -> None:
        buffer = CaptureBuffer()
        async with _pair("TCP", LocalExchange(), TraceTap(buffer)) as (client, mine, theirs):
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs[1]}")
            destination = Destination("TCP", "127.0.0.1", theirs[1])
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            assert request.call_id is not None
            trace = buffer.get(request.call_id)
            assert trace is not None
            assert [(m.src, m.dst) for m in trace.messages] == [(mine, theirs), (theirs, mine)]
            assert trace.messages[0].data.startswith(b"OPTIONS ")
            assert trace.messages[1].data.startswith(b"SIP/2.0 200")

    run(main())


def test_only_one_end_tapped_still_captures_the_pipe_hop_both_ways() -> None:
    async def main() -> None:
        buffer = CaptureBuffer()
        exchange = LocalExchange()
        async with _pair("TCP", exchange, TraceTap(buffer)) as (client, _mine, theirs):
            tap_endpoint(client, None)  # only the server's transports are tapped
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs[1]}")
            destination = Destination("TCP", "127.0.0.1", theirs[1])
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            assert request.call_id is not None
            trace = buffer.get(request.call_id)
            assert trace is not None and len(trace.messages) == 2

    run(main())


def test_hep_packets_reach_a_loopback_collector() -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(30)
    hep = HepSender(collector.getsockname(), HepOptions(capture_id=4242, password="pw"))

    call_ids: list[str] = []

    async def main() -> None:
        tap = TraceTap(None, hep)
        async with _pair("UDP", None, tap) as (client, _mine, theirs):
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{theirs[1]}")
            destination = Destination("UDP", "127.0.0.1", theirs[1])
            assert (await client.request(request, destination, timeout=WAIT)).status == 200
            assert request.call_id is not None
            call_ids.append(request.call_id)

    try:
        run(main())
        got = [decode(collector.recv(65535)) for _ in range(hep.sent)]
    finally:
        hep.close()
        collector.close()
    # each message once as sent and once as received (4), plus any retransmission of the
    # request a loaded machine makes and the server transaction's 200 sent again for it
    assert hep.sent >= 4 and hep.dropped == 0
    assert {h.correlation for h in got} == {call_ids[0].encode()}
    assert all(h.capture_id == 4242 and h.auth == b"pw" and h.proto == 17 for h in got)
    starts = [h.payload.split(b" ", 1)[0] for h in got]
    assert starts[:2] == [b"OPTIONS", b"OPTIONS"] and set(starts) == {b"OPTIONS", b"SIP/2.0"}
    assert starts.count(b"SIP/2.0") >= 2


@pytest.mark.parametrize("bad", ["", "host", "host:", ":5060", "host:0", "host:70000", "h:x"])
def test_collector_address_errors_say_why(bad: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_collector(bad)


def test_collector_address_forms() -> None:
    assert parse_collector("127.0.0.1:9060") == ("127.0.0.1", 9060)
    assert parse_collector("[::1]:9060") == ("::1", 9060)
    assert parse_collector("homer.example:9060") == ("homer.example", 9060)


def test_a_failing_buffer_never_reaches_the_transport() -> None:
    class Broken(CaptureBuffer):
        def add(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            raise RuntimeError("bug")

    tap = TraceTap(Broken())
    tap("UDP", ("127.0.0.1", 1), ("127.0.0.1", 2), b"OPTIONS x SIP/2.0\r\n\r\n", True, None)
    assert tap.errors == 1


def test_a_connection_without_a_socket_address_keeps_the_listeners() -> None:
    class NoSockname:
        def get_extra_info(self, name: str) -> object:
            return {"peername": ("127.0.0.1", 40404)}.get(name)

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    async def main() -> None:
        endpoint = Endpoint(TU(200), timers=FAST)
        try:
            listener = await endpoint.listen("TCP", "127.0.0.1", 0)
            assert isinstance(listener, StreamTransport)
            conn = StreamConnection(listener)
            conn.connection_made(NoSockname())  # type: ignore[arg-type]
            assert conn.local == listener.local and conn.host == "127.0.0.1"
            conn.connection_lost(None)
        finally:
            await endpoint.close()

    run(main())
