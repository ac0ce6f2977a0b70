"""TURN interop on loopback: coturn's ``turnutils_uclient`` and aioice's TURN client allocate
through our relay (:mod:`hybridvoice.net.turn`) with MRAS credentials and exchange data with a
peer; expired and forged credentials are refused. The same clients with the same secret
also pass against coturn's own ``turnserver`` (``--use-auth-secret``), which shows the
credentials are the TURN REST scheme coturn implements.

uclient runs as in the benchmark recipe, with its RTCP allocations: EVEN-PORT with the R bit,
then an Allocate presenting the RESERVATION-TOKEN (an RTP/RTCP pair of relay ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aioice import stun as aioice_stun
from aioice.turn import create_turn_endpoint
from interop_programs import Program, free_port, need_binary, run_logged
from ports import free_port_block
from prometheus_client.parser import text_string_to_metric_families

from hybridvoice.media.mras import MrasIssuer, MrasVerifier
from hybridvoice.media.stun import Method, StunClass, StunMessage, encode, parse
from hybridvoice.media.turn_state import TurnConfig
from hybridvoice.net.loop import run as run_loop
from hybridvoice.net.loop import uvloop_available
from hybridvoice.net.turn import TurnRelay

pytestmark = pytest.mark.interop

SECRET = "interop-turn-secret"
REALM = "interop.test"
HOST = "127.0.0.1"
SERVERS = ["ours", "coturn"]


def _port_range() -> tuple[int, int]:
    base = free_port_block(65)
    return base, base + 64


async def _answers_stun(port: int, deadline: float) -> None:
    """Wait until a Binding request to ``port`` is answered (the server is up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        request = encode(StunMessage(Method.BINDING, StunClass.REQUEST, b"ready-check!"))
        while time.monotonic() < deadline:
            sock.sendto(request, (HOST, port))
            await asyncio.sleep(0.1)
            with contextlib.suppress(BlockingIOError):
                reply = parse(sock.recv(2048))
                if reply.cls == StunClass.SUCCESS:
                    return
        raise AssertionError(f"no TURN server answering on {port}")


@dataclass
class Server:
    """A running TURN server: its port, our relay's counters (None for coturn), its log."""

    port: int
    describe: Callable[[], str]
    relay: TurnRelay | None = None

    @property
    def counters(self) -> Counter[str] | None:
        """Our relay's counters now (a snapshot), None for coturn."""
        return None if self.relay is None else self.relay.server.counters


@contextlib.asynccontextmanager
async def turn_server(kind: str, tmp_path: Path, *, tcp: bool = False) -> AsyncIterator[Server]:
    """Our relay or coturn's turnserver on a free loopback port (and TCP with ``tcp``)."""
    port = free_port()
    first, last = _port_range()
    if kind == "ours":
        config = TurnConfig(realm=REALM, external_ip=HOST, allow_loopback_peers=True)
        verifier = MrasVerifier(SECRET.encode(), wall=time.time)
        relay = await TurnRelay.open(
            config, verifier, listen=(HOST, port), relay_host=HOST, ports=(first, last), tcp=tcp
        )
        try:
            yield Server(port, lambda: str(dict(relay.server.counters)), relay)
        finally:
            relay.close()
        return
    binary = need_binary("turnserver", "coturn")
    log = tmp_path / "turnserver.log"
    server = Program(
        [binary, "-n", f"--listening-ip={HOST}", f"--listening-port={port}",
         f"--relay-ip={HOST}", f"--min-port={first}", f"--max-port={last}", "--no-tls",
         "--no-dtls", "--no-cli", "--use-auth-secret", f"--static-auth-secret={SECRET}",
         f"--realm={REALM}", "--allow-loopback-peers", f"--log-file={log}", "--simple-log",
         f"--pidfile={tmp_path / 'turnserver.pid'}", *([] if tcp else ["--no-tcp"])],
        tmp_path / "turnserver.out",
    )  # fmt: skip
    try:
        await _answers_stun(port, time.monotonic() + 60)  # the server's start, generously
        yield Server(port, lambda: log.read_text(errors="replace")[-2000:])
    finally:
        server.stop()


async def _uclient(
    port: int, peer_port: int, log: Path, *, secret: str = SECRET, extra: tuple[str, ...] = ()
) -> tuple[int, str]:
    binary = need_binary("turnutils_uclient", "coturn")
    args = [binary, "-e", HOST, "-r", str(peer_port), "-p", str(port), "-L", HOST,
            "-m", "2", "-n", "20", "-l", "120", "-z", "10", *extra]  # fmt: skip
    if "-u" not in extra:
        args += ["-W", secret, "-u", "uclient"]
    return await run_logged([*args, HOST], log)


@pytest.fixture
def echo_peer(tmp_path: Path) -> Iterator[int]:
    """coturn's ``turnutils_peer`` (a UDP echo) on a free port; stopped by PID."""
    binary = need_binary("turnutils_peer", "coturn")
    port = free_port()
    peer = Program([binary, "-L", HOST, "-p", str(port)], tmp_path / "peer.out")
    yield port
    peer.stop()


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("method", ["channels", "send-indications"])
def test_uclient_relays_through_the_server(
    kind: str, method: str, tmp_path: Path, echo_peer: int
) -> None:
    extra = ("-s",) if method == "send-indications" else ()

    async def run() -> tuple[int, str, str, Counter[str] | None]:
        async with turn_server(kind, tmp_path) as server:
            rc, out = await _uclient(server.port, echo_peer, tmp_path / "uclient.log", extra=extra)
            return rc, out, server.describe(), server.counters

    rc, out, state, counts = asyncio.run(run())
    assert rc == 0, out[-3000:] + state
    assert "tot_send_msgs=40, tot_recv_msgs=40" in out, out[-3000:]
    assert "Total lost packets 0 (0.000000%)" in out
    if counts is not None:
        assert counts["to_peer"] == counts["from_peer"] == 40
        assert counts["allocations"] >= 3  # two RTP and at least one reserved RTCP port


@pytest.mark.parametrize(("kind", "uvloop"), [("ours", False), ("ours", True), ("coturn", False)])
def test_uclient_over_tcp(kind: str, uvloop: bool, tmp_path: Path, echo_peer: int) -> None:
    """``uclient -t``: the client side over TCP (RFC 8656 §3.1), the relayed side UDP;
    closing the connections ends the allocations. On asyncio's loop and uvloop's (whose
    transports are not ``asyncio.Transport`` subclasses)."""
    if uvloop and not uvloop_available():
        pytest.skip("uvloop is not installed")

    async def run() -> tuple[int, str, str, Server]:
        async with turn_server(kind, tmp_path, tcp=True) as server:
            rc, out = await _uclient(
                server.port, echo_peer, tmp_path / "uclient.log", extra=("-t",)
            )
            if server.relay is not None:  # the connections closed: allocations deleted
                for _ in range(50):
                    if server.relay.server.allocations == 0:
                        break
                    await asyncio.sleep(0.1)
                assert server.relay.stream_clients == 0
                assert server.relay.server.allocations == 0  # (reserved RTCP ports wait 30 s)
            return rc, out, server.describe(), server

    rc, out, state, server = run_loop(run(), use_uvloop=uvloop)
    assert rc == 0, out[-3000:] + state
    assert "tot_send_msgs=40, tot_recv_msgs=40" in out, out[-3000:]
    assert "Total lost packets 0 (0.000000%)" in out
    counts = server.counters
    if counts is not None:
        assert counts["to_peer"] == counts["from_peer"] == 40
        assert counts["allocations"] >= 2 and counts["closed_allocations"] >= 1


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("case", ["forged", "expired"])
def test_uclient_with_bad_credentials_is_refused(
    kind: str, case: str, tmp_path: Path, echo_peer: int
) -> None:
    if case == "forged":
        extra: tuple[str, ...] = ()
        secret = "not-the-site-secret"
    else:
        creds = MrasIssuer(SECRET.encode(), ttl=60).issue("uclient", time.time() - 3600)
        extra = ("-u", creds.username, "-w", creds.password)
        secret = SECRET

    async def run() -> tuple[int, str, Counter[str] | None]:
        async with turn_server(kind, tmp_path) as server:
            rc, out = await _uclient(
                server.port, echo_peer, tmp_path / "uclient.log", secret=secret, extra=extra
            )
            return rc, out, server.counters

    rc, out, counts = asyncio.run(run())
    assert rc != 0, out[-2000:]
    assert "tot_recv_msgs=40" not in out
    if counts is not None:
        reason = "integrity_failed" if case == "forged" else "credentials_expired"
        assert counts[reason] >= 1 and counts["allocations"] == 0


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.sources: list[tuple[str, int]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sources.append(addr)
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.lost = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


@pytest.mark.parametrize("kind", SERVERS)
def test_aioice_allocates_and_exchanges_data(kind: str, tmp_path: Path) -> None:
    if kind == "coturn":
        need_binary("turnserver", "coturn")
    creds = MrasIssuer(SECRET.encode()).issue("aioice", time.time())

    async def run() -> None:
        loop = asyncio.get_running_loop()
        async with turn_server(kind, tmp_path) as server:
            peer_transport, echo = await loop.create_datagram_endpoint(_Echo, local_addr=(HOST, 0))
            peer = peer_transport.get_extra_info("sockname")
            transport, client = await asyncio.wait_for(
                create_turn_endpoint(_Collect, (HOST, server.port), creds.username, creds.password),
                10,
            )
            relayed = transport.get_extra_info("sockname")
            assert relayed[0] == HOST
            if server.relay is not None:  # one relay socket, the timer at the core's deadline
                assert list(server.relay.sockets.sockets) == [relayed[1]]
                deadline = server.relay.server.next_deadline()
                assert deadline is not None and server.relay.timer_deadline == deadline
            for n in range(5):
                transport.sendto(b"ping %d" % n, peer)
                data, source = await asyncio.wait_for(client.queue.get(), 5)
                assert (data, source) == (b"ping %d" % n, peer), server.describe()
            assert set(echo.sources) == {tuple(relayed)}
            transport.close()
            await asyncio.wait_for(client.lost, 5)
            peer_transport.close()
            counts = server.counters
            if counts is not None and server.relay is not None:
                assert counts["to_peer"] == counts["from_peer"] == 5
                assert counts["channel_binds"] == 1
                # the client deleted its allocation (Refresh, lifetime 0): socket and timer gone
                assert server.relay.server.allocations == 0
                assert server.relay.sockets.sockets == {}
                assert server.relay.timer_deadline is None

    asyncio.run(run())


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("case", ["forged", "expired"])
def test_aioice_with_bad_credentials_is_refused(kind: str, case: str, tmp_path: Path) -> None:
    if kind == "coturn":
        need_binary("turnserver", "coturn")
    if case == "forged":
        username = MrasIssuer(SECRET.encode()).issue("aioice", time.time()).username
        password = "forged-password"
    else:
        creds = MrasIssuer(SECRET.encode(), ttl=60).issue("aioice", time.time() - 3600)
        username, password = creds.username, creds.password

    async def run() -> None:
        async with turn_server(kind, tmp_path) as server:
            with pytest.raises(aioice_stun.TransactionFailed) as failed:
                await asyncio.wait_for(
                    create_turn_endpoint(_Collect, (HOST, server.port), username, password), 10
                )
            assert failed.value.response.error_code == 401  # type: ignore[attr-defined]

    asyncio.run(run())


def test_turn_server_answers_binding_requests(tmp_path: Path) -> None:
    async def run() -> None:
        async with turn_server("ours", tmp_path) as server:
            await _answers_stun(server.port, time.monotonic() + 5)

    asyncio.run(run())


def test_tcp_framing_split_and_joined_messages(tmp_path: Path) -> None:
    """Over TCP a message may arrive in pieces or several in one read (RFC 8489 §6.2.2):
    each is answered once; a stream that is neither STUN nor ChannelData is cut off."""

    async def run() -> None:
        async with turn_server("ours", tmp_path, tcp=True) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            tids = [b"tcp-framing%d" % n for n in range(3)]
            requests = [encode(StunMessage(Method.BINDING, StunClass.REQUEST, tid)) for tid in tids]
            writer.write(requests[0][:7])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(requests[0][7:] + requests[1] + requests[2])
            await writer.drain()
            for tid in tids:
                header = await asyncio.wait_for(reader.readexactly(20), 5)
                body = await asyncio.wait_for(
                    reader.readexactly(int.from_bytes(header[2:4], "big")), 5
                )
                reply = parse(header + body)
                assert (reply.cls, reply.transaction_id) == (StunClass.SUCCESS, tid)
            writer.write(b"\xff" * 8)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()

    asyncio.run(run())


def test_turn_serve_process_relays_uclient_over_udp_and_tcp(tmp_path: Path, echo_peer: int) -> None:
    """``hybridvoice turn serve --tcp`` (the benchmark's DUT) in its own process: READY,
    uclient over UDP and TCP through it, STATS with the counters on SIGTERM; its
    ``--metrics`` (parsed by prometheus-client) counted the same packets and allocations."""
    port, metrics = free_port(), free_port()
    first, last = _port_range()
    server = Program(
        [sys.executable, "-m", "hybridvoice", "turn", "serve", "--secret", SECRET,
         "--listen", f"{HOST}:{port}", "--relay-host", HOST, "--ports", f"{first}-{last}",
         "--realm", REALM, "--allow-loopback-peers", "--tcp", "--metrics", f"{HOST}:{metrics}"],
        tmp_path / "serve.out",
    )  # fmt: skip
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    try:
        for _ in range(200):
            if "READY" in server.output() or server.returncode is not None:
                break
            time.sleep(0.05)
        assert f"READY {HOST}:{port} tcp=True" in server.output(), server.output()

        async def run() -> list[tuple[int, str]]:
            return [
                await _uclient(port, echo_peer, tmp_path / f"uclient{n}.log", extra=extra)
                for n, extra in enumerate(((), ("-t",)))
            ]

        for rc, out in asyncio.run(run()):
            assert rc == 0 and "tot_send_msgs=40, tot_recv_msgs=40" in out, out[-2000:]
        text = httpx.get(f"http://{HOST}:{metrics}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scraped[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    finally:
        assert server.stop() == 0
    stats = [line for line in server.output().splitlines() if line.startswith("STATS ")]
    counts = json.loads(stats[-1][len("STATS ") :])
    assert counts["to_peer"] == counts["from_peer"] == 80
    packets = "hybridvoice_turn_relayed_packets_total"
    assert scraped[packets, (("direction", "to_peer"),)] == 80
    assert scraped[packets, (("direction", "from_peer"),)] == 80
    assert scraped["hybridvoice_turn_allocations_made_total", ()] == counts["allocations"] > 0
    assert counts["send_errors"] == 0
