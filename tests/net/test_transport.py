"""UDP, TCP and TLS transports on loopback (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1).

Every test runs on asyncio's loop and on uvloop. Peers are plain sockets (asyncio streams and
datagram endpoints), so what goes on the wire is checked independently of our own code.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridvoice.net.loop import loop_factory, uvloop_available
from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.transport import (
    Source,
    error_response,
    response_address,
    stamp_via,
)
from hybridvoice.net.udp import UdpTransport
from hybridvoice.sip import ParseError, Request, Response, parse_message

LOOPS = ["asyncio", *(["uvloop"] if uvloop_available() else [])]
WAIT = 5.0  # upper bound for anything to arrive on loopback; tests never wait this long


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[None]], None]:
    factory = loop_factory(request.param == "uvloop")

    def runner(coro: Awaitable[None]) -> None:
        async def main() -> None:
            await asyncio.wait_for(coro, 20)

        with asyncio.Runner(loop_factory=factory) as r:
            r.run(main())

    return runner


class Sink:
    """Collects what a transport delivers."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Request | Response, Source]] = asyncio.Queue()

    def on_request(self, request: Request, source: Source) -> None:
        self.queue.put_nowait((request, source))

    def on_response(self, response: Response, source: Source) -> None:
        self.queue.put_nowait((response, source))

    async def get(self) -> tuple[Request | Response, Source]:
        return await asyncio.wait_for(self.queue.get(), WAIT)


class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket on the other side."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def get(self) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), WAIT)
        return data


async def udp_peer(host: str = "127.0.0.1") -> Peer:
    _, peer = await asyncio.get_running_loop().create_datagram_endpoint(Peer, local_addr=(host, 0))
    return peer


def options(via: str, *, method: str = "OPTIONS", body: bytes = b"") -> bytes:
    return (
        f"{method} sip:uas@127.0.0.1 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:uac@example.com>;tag=1928301774\r\n"
        "To: <sip:uas@example.com>\r\n"
        "Call-ID: a84b4c76e66710@pc33\r\n"
        f"CSeq: 314159 {method}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def response_to(via: str, status: int = 200) -> bytes:
    return (
        f"SIP/2.0 {status} OK\r\n"
        f"Via: {via}\r\n"
        "From: <sip:uac@example.com>;tag=1928301774\r\n"
        "To: <sip:uas@example.com>;tag=abc\r\n"
        "Call-ID: a84b4c76e66710@pc33\r\n"
        "CSeq: 314159 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


# --- pure functions -------------------------------------------------------------------------


def test_stamp_via_received_and_rport() -> None:
    msg = parse_message(options("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1;rport"))
    via = stamp_via(msg, "192.0.2.1", 40000)
    assert via is not None and via.received == "192.0.2.1" and via.rport == 40000
    assert msg.headers.get("Via") == (
        "SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1;rport=40000;received=192.0.2.1"
    )


def test_stamp_via_same_host_left_alone() -> None:
    msg = parse_message(options("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1"))
    via = stamp_via(msg, "192.0.2.1", 40000)
    assert via is not None and via.received is None
    assert msg.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1"


def test_stamp_via_ipv6_same_address_in_brackets() -> None:
    msg = parse_message(options("SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1"))
    via = stamp_via(msg, "::1", 40000)
    assert via is not None and via.received is None


def test_stamp_via_keeps_lower_vias() -> None:
    data = options("SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com")
    msg = parse_message(data)
    stamp_via(msg, "192.0.2.1", 5060)
    assert [v.host for v in msg.via] == ["a.example.com", "b.example.com"]
    assert msg.via[0].received == "192.0.2.1" and msg.via[1].received is None


@pytest.mark.parametrize(
    ("via", "reliable", "expected"),
    [
        ("SIP/2.0/UDP h.example.com;received=192.0.2.1;rport=4000", False, ("192.0.2.1", 4000)),
        ("SIP/2.0/UDP h.example.com:5070;received=192.0.2.1", False, ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP 192.0.2.1", False, ("192.0.2.1", 5060)),
        ("SIP/2.0/UDP h.example.com:5070;maddr=239.1.1.1;received=192.0.2.1", False,
         ("239.1.1.1", 5070)),
        ("SIP/2.0/TCP h.example.com:5070;received=192.0.2.1;rport=4000", True,
         ("192.0.2.1", 5070)),
        ("SIP/2.0/TLS h.example.com;received=192.0.2.1", True, ("192.0.2.1", 5061)),
        ("SIP/2.0/UDP [2001:db8::1]:5070;rport=4000;received=2001:db8::1", False,
         ("2001:db8::1", 4000)),
    ],
)  # fmt: skip
def test_response_address(via: str, reliable: bool, expected: tuple[str, int]) -> None:
    msg = parse_message(response_to(via))
    assert msg.top_via is not None
    assert response_address(msg.top_via, reliable) == expected


def test_error_response_copies_matching_headers() -> None:
    data = options("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1").replace(
        b"Max-Forwards: 70", b"Max-Forwards: seventy"
    )
    with pytest.raises(ParseError) as info:
        parse_message(data)
    response = error_response(data, info.value)
    assert response is not None and response.status == 400
    assert response.reason.startswith("Bad Request (")
    assert response.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"
    assert response.headers.get("CSeq") == "314159 OPTIONS"
    assert response.to is not None and response.to.tag is not None
    assert parse_message(bytes(response)).status == 400  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01 garbage",
        options("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", method="ACK").replace(
            b" SIP/2.0\r", b"\r"
        ),
        b"OPTIONS sip:a SIP/2.0\r\nVia: nonsense\r\nCSeq: 1 OPTIONS\r\n\r\n",
        b"OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n",
        response_to("SIP/2.0/UDP 192.0.2.1").replace(b"SIP/2.0 200 OK", b"SIP/2.0 2000 OK"),
    ],
)
def test_error_response_none_when_nothing_to_answer(data: bytes) -> None:
    assert error_response(data, ParseError("bad")) is None


def test_error_response_never_for_ack() -> None:
    data = options("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", method="ACK")
    assert error_response(data, ParseError("bad")) is None


# --- UDP --------------------------------------------------------------------------------------


def test_udp_request_stamped_and_response_routed(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        udp = UdpTransport("127.0.0.1", 0, sink)
        peer = await udp_peer()
        try:
            peer.send(options("SIP/2.0/UDP client.invalid:9;branch=z9hG4bK7;rport"), udp.local)
            request, source = await sink.get()
            assert isinstance(request, Request)
            via = request.top_via
            assert via is not None
            assert (via.received, via.rport) == ("127.0.0.1", peer.port)
            assert source.host == "127.0.0.1" and source.port == peer.port
            assert source.reply == ("127.0.0.1", peer.port)  # RFC 3581: not the sent-by :9
            udp.send(b"SIP/2.0 200 OK\r\n\r\n", *source.reply)
            assert await peer.get() == b"SIP/2.0 200 OK\r\n\r\n"
            assert udp.counters.messages_in == 1 and udp.counters.messages_out == 1
        finally:
            udp.close()

    run(main())


def test_udp_socket_buffers_are_large(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        udp = UdpTransport("127.0.0.1", 0, Sink())
        try:
            rcvbuf = udp._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert rcvbuf >= 2 * 1024 * 1024  # Linux reports double what it was given
        finally:
            udp.close()

    run(main())


def test_udp_malformed_counted_answered_and_loop_goes_on(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def main() -> None:
        sink = Sink()
        udp = UdpTransport("127.0.0.1", 0, sink)
        peer = await udp_peer()
        try:
            via = f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK1"
            bad = options(via).replace(b"Max-Forwards: 70", b"Max-Forwards: x")
            peer.send(bad, udp.local)
            answer = parse_message(await peer.get())
            assert isinstance(answer, Response) and answer.status == 400
            assert "malformed Max-Forwards" in answer.reason
            assert answer.top_via is not None and answer.top_via.received is None
            # a malformed CSeq is copied as it came: the client matches on the branch
            peer.send(options(via).replace(b"CSeq: 314159", b"CSeq: x"), udp.local)
            raw = await peer.get()
            assert raw.startswith(b"SIP/2.0 400 Bad Request (malformed CSeq")
            assert b"\r\nCSeq: x OPTIONS\r\n" in raw
            # a wrong version is a 505 (§21.5.6)
            peer.send(options(via).replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1), udp.local)
            answer = parse_message(await peer.get())
            assert isinstance(answer, Response) and answer.status == 505
            # garbage is counted and dropped; the next good datagram is still delivered
            peer.send(b"\x00\x01garbage\xff", udp.local)
            peer.send(options(via), udp.local)
            request, _ = await sink.get()
            assert isinstance(request, Request) and request.method == "OPTIONS"
            assert udp.counters.drops == {
                "bad_number": 1,
                "malformed": 1,
                "bad_version": 1,
                "unparseable": 1,
            }
            assert udp.counters.answered == {"bad_number": 1, "malformed": 1, "bad_version": 1}
            assert udp.counters.error_responses == 3
            assert sink.queue.empty()
        finally:
            udp.close()

    run(main())


def test_udp_oversized_datagram_answered_513(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        udp = UdpTransport("127.0.0.1", 0, sink, max_size=1000)
        peer = await udp_peer()
        try:
            via = f"SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK1"
            peer.send(options(via, body=b"x" * 2000), udp.local)
            answer = parse_message(await peer.get())
            assert isinstance(answer, Response) and answer.status == 513
            assert udp.counters.drops == {"oversized": 1}
            assert udp.counters.answered == {"oversized": 1}
            assert sink.queue.empty()
        finally:
            udp.close()

    run(main())


def test_udp_responses_checked_against_our_via(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        udp = UdpTransport("127.0.0.1", 0, sink)
        peer = await udp_peer()
        try:
            host, port = udp.local
            peer.send(response_to(f"SIP/2.0/UDP 127.0.0.1:{port + 1};branch=z9hG4bK1"), udp.local)
            peer.send(
                response_to("SIP/2.0/UDP 127.0.0.1").replace(b"CSeq: 3", b"CSeq: x"), (host, port)
            )
            peer.send(response_to(f"SIP/2.0/UDP {udp.sent_by};branch=z9hG4bK2"), udp.local)
            response, _ = await sink.get()
            assert isinstance(response, Response)
            assert response.top_via is not None and response.top_via.branch == "z9hG4bK2"
            assert udp.counters.drops == {"via_mismatch": 1, "malformed": 1}
            assert udp.counters.answered == {}
            assert peer.queue.empty()  # responses are never answered
        finally:
            udp.close()

    run(main())


def test_udp_crlf_keepalive_ignored(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        udp = UdpTransport("127.0.0.1", 0, sink)
        peer = await udp_peer()
        try:
            peer.send(b"\r\n\r\n", udp.local)
            peer.send(options("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1"), udp.local)
            await sink.get()
            assert udp.counters.keepalive_pings == 1 and udp.counters.drops == {}
        finally:
            udp.close()

    run(main())


def test_udp_send_error_reported(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        udp = UdpTransport("127.0.0.1", 0, Sink())
        errors: list[Exception] = []
        try:
            udp.send(b"x", "::1", 5060, on_error=errors.append)  # wrong family
            assert len(errors) == 1 and udp.counters.send_errors == 1
        finally:
            udp.close()

    run(main())


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this machine")
def test_udp_ipv6(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        udp = UdpTransport("::1", 0, sink)
        peer = await udp_peer("::1")
        try:
            assert udp.sent_by.startswith("[::1]:")
            peer.send(options(f"SIP/2.0/UDP [::1]:{peer.port};branch=z9hG4bK1;rport"), udp.local)
            request, source = await sink.get()
            assert isinstance(request, Request)
            assert source.reply == ("::1", peer.port)
            peer.send(response_to(f"SIP/2.0/UDP {udp.sent_by};branch=z9hG4bK1"), udp.local)
            response, _ = await sink.get()
            assert isinstance(response, Response)
        finally:
            udp.close()

    run(main())


# --- TCP --------------------------------------------------------------------------------------


async def tcp_client(
    port: int, host: str = "127.0.0.1", ssl_ctx: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, ssl=ssl_ctx)


async def read_message(reader: asyncio.StreamReader) -> Request | Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    message = parse_message(head)
    length = message.content_length or 0
    if length:
        body = await asyncio.wait_for(reader.readexactly(length), WAIT)
        message = parse_message(head + body)
    return message


def test_tcp_byte_at_a_time(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        tcp = await StreamTransport.listen("127.0.0.1", 0, sink)
        reader, writer = await tcp_client(tcp.local[1])
        try:
            data = options("SIP/2.0/TCP client.invalid;branch=z9hG4bK1", body=b"v=0\r\n") * 2
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
            for _ in range(2):
                request, source = await sink.get()
                assert isinstance(request, Request) and request.body == b"v=0\r\n"
                assert request.top_via is not None
                assert request.top_via.received == "127.0.0.1"
                assert source.connection is not None and source.connection.is_open
            # the response goes back on the same connection (§18.2.2)
            assert source.connection is not None
            source.connection.write(response_to("SIP/2.0/TCP client.invalid"))
            answer = await read_message(reader)
            assert isinstance(answer, Response) and answer.status == 200
            assert tcp.counters.messages_in == 2 and tcp.counters.drops == {}
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main())


def test_tcp_keepalive_ping_gets_pong(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        tcp = await StreamTransport.listen("127.0.0.1", 0, Sink())
        reader, writer = await tcp_client(tcp.local[1])
        try:
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
            assert tcp.counters.keepalive_pings == 2
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main())


def test_tcp_malformed_gets_400_and_close(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        sink = Sink()
        tcp = await StreamTransport.listen("127.0.0.1", 0, sink)
        reader, writer = await tcp_client(tcp.local[1])
        try:
            good = options("SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1")
            bad = good.replace(b"Max-Forwards: 70", b"Max-Forwards: 70000")
            for i in range(0, len(bad), 7):  # in pieces: the 400 needs the whole head
                writer.write(bad[i : i + 7])
                await writer.drain()
            answer = await read_message(reader)
            assert isinstance(answer, Response) and answer.status == 400
            assert answer.headers.get("Call-ID") == "a84b4c76e66710@pc33"
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed
            assert tcp.counters.drops == {"bad_number": 1}
            assert tcp.counters.answered == {"bad_number": 1}
            assert sink.queue.empty()
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main())


def test_tcp_oversized_gets_513_and_close(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        tcp = await StreamTransport.listen("127.0.0.1", 0, Sink(), max_size=2000)
        reader, writer = await tcp_client(tcp.local[1])
        try:
            writer.write(options("SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1", body=b"x" * 5000))
            answer = await read_message(reader)
            assert isinstance(answer, Response) and answer.status == 513
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            assert tcp.counters.drops == {"oversized": 1}
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main())


def test_tcp_connection_reuse_and_response_check(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamReader] = []
        writers: list[asyncio.StreamWriter] = []

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.append(r)
            writers.append(w)

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sink = Sink()
        tcp = await StreamTransport.listen("127.0.0.1", 0, sink)
        try:
            first = options(f"SIP/2.0/TCP {tcp.sent_by};branch=z9hG4bK1")
            tcp.send(first, "127.0.0.1", port)
            tcp.send(first, "127.0.0.1", port)  # queued behind the same connect
            while len(accepted) < 1:
                await asyncio.sleep(0.01)
            assert (await read_message(accepted[0])).headers.get("CSeq") == "314159 OPTIONS"
            await read_message(accepted[0])
            tcp.send(first, "127.0.0.1", port)  # reuses the open connection
            await read_message(accepted[0])
            assert len(accepted) == 1 and tcp.counters.connections_opened == 1
            # responses on our connection: ours delivered, others' dropped (§18.1.2)
            writers[0].write(response_to("SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK9"))
            writers[0].write(response_to(f"SIP/2.0/TCP {tcp.sent_by};branch=z9hG4bK1"))
            response, source = await sink.get()
            assert isinstance(response, Response) and source.port == port
            assert tcp.counters.drops == {"via_mismatch": 1}
        finally:
            for w in writers:
                w.close()
            tcp.close()
            await tcp.wait_closed()
            server.close()

    run(main())


def test_tcp_connect_failure_reported(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        with socket.socket() as s:  # a port with nobody listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        tcp = await StreamTransport.listen("127.0.0.1", 0, Sink())
        failed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        try:
            tcp.send(b"x", "127.0.0.1", port, on_error=failed.set_result)
            await asyncio.wait_for(failed, WAIT)
            assert tcp.counters.send_errors == 1
        finally:
            tcp.close()
            await tcp.wait_closed()

    run(main())


def test_tcp_idle_connection_closed(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        tcp = await StreamTransport.listen("127.0.0.1", 0, Sink(), idle_timeout=0.2)
        reader, writer = await tcp_client(tcp.local[1])
        try:
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            assert tcp.counters.idle_closed == 1 and tcp.connections == 0
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main())


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 / ::1, made with ``cryptography``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def tls_contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(*certificate)
    client = ssl.create_default_context(cafile=str(certificate[0]))
    return server, client


def test_tls_request_and_response(
    run: Callable[[Awaitable[None]], None], certificate: tuple[Path, Path]
) -> None:
    async def main() -> None:
        server_ctx, client_ctx = tls_contexts(certificate)
        server_sink, client_sink = Sink(), Sink()
        server = await StreamTransport.listen(
            "127.0.0.1", 0, server_sink, kind="TLS", server_ssl=server_ctx
        )
        client = await StreamTransport.listen(
            "127.0.0.1", 0, client_sink, kind="TLS", client_ssl=client_ctx
        )
        try:
            assert client.kind == "TLS" and client.sent_by == "127.0.0.1"
            via = f"SIP/2.0/TLS {client.sent_by};branch=z9hG4bK1;rport"
            client.send(options(via), "127.0.0.1", server.local[1])
            request, source = await server_sink.get()
            assert isinstance(request, Request)
            assert source.connection is not None and source.transport is server
            source.connection.write(bytes(response_to(str(request.top_via))))
            response, _ = await client_sink.get()
            assert isinstance(response, Response) and response.status == 200
            # keep-alive on TLS too (the pong, a lone CRLF, stays in the server's parser
            # until more bytes come: it could be the start of a ping)
            source.connection.write(b"\r\n\r\n")
            while client.counters.keepalive_pings == 0:
                await asyncio.sleep(0.01)
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    run(main())


def test_tls_untrusted_certificate_fails(
    run: Callable[[Awaitable[None]], None], certificate: tuple[Path, Path]
) -> None:
    async def main() -> None:
        server_ctx, _ = tls_contexts(certificate)
        server = await StreamTransport.listen(
            "127.0.0.1", 0, Sink(), kind="TLS", server_ssl=server_ctx
        )
        client = await StreamTransport.listen(
            "127.0.0.1", 0, Sink(), kind="TLS", client_ssl=ssl.create_default_context()
        )
        failed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        try:
            client.send(b"x", "127.0.0.1", server.local[1], on_error=failed.set_result)
            error = await asyncio.wait_for(failed, WAIT)
            assert "certificate" in str(error).lower()
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    run(main())
