"""What one peer may hold on a TCP listener (issue 9): the deadline for a complete message,
the idle timeout, the per-source and the total connection caps, their settings, and the
drop counter when they bite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from chain_harness import lab, settings_on_free_ports

from hybridvoice.cms.settings import SettingsError, SipLimits, parse_settings
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.stream import StreamLimits, StreamTransport
from hybridvoice.net.transport import Source
from hybridvoice.sip import Request, Response

WAIT = 5.0
OPTIONS = (
    b"OPTIONS sip:uas@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:uac@example.com>;tag=1\r\n"
    b"To: <sip:uas@example.com>\r\n"
    b"Call-ID: limits@pc33\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Sink:
    def __init__(self) -> None:
        self.messages: list[Request | Response] = []

    def on_request(self, request: Request, source: Source) -> None:
        self.messages.append(request)

    def on_response(self, response: Response, source: Source) -> None:
        self.messages.append(response)


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.01)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed (or reset) the connection: EOF within WAIT."""
    try:
        async with asyncio.timeout(WAIT):
            return await reader.read() == b""
    except ConnectionResetError:
        return True


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))  # type: ignore[arg-type]


# --- the head deadline ------------------------------------------------------------------------


def test_sweep_on_a_fake_clock_closes_only_a_late_partial_message() -> None:
    """The sweep is a function of the time it is given: before the deadline nothing
    happens, after it the connection holding a partial message is closed and counted; an
    idle connection (nothing held) is left to the idle timeout."""

    async def main() -> None:
        limits = StreamLimits(head_timeout=10.0, idle_timeout=1000.0)
        tcp = await StreamTransport.listen("127.0.0.1", 0, Sink(), limits=limits)
        slow_r, slow_w = await asyncio.open_connection(*tcp.local)
        idle_r, idle_w = await asyncio.open_connection(*tcp.local)
        try:
            slow_w.write(OPTIONS[:20])
            await until(lambda: tcp.counters.bytes_in == 20 and tcp.connections == 2)
            now = asyncio.get_running_loop().time()
            tcp.sweep(now + 9.0)
            assert tcp.connections == 2 and tcp.counters.drops == {}
            tcp.sweep(now + 10.5)
            assert await closed_by_server(slow_r)
            assert tcp.counters.drops == {"head_timeout": 1}
            assert tcp.connections == 1  # the idle one stays: it holds nothing
            tcp.sweep(now + 1001.0)
            assert await closed_by_server(idle_r)
            assert tcp.counters.idle_closed == 1
            assert tcp.counters.drops == {"head_timeout": 1}  # an idle close loses nothing
        finally:
            slow_w.close()
            idle_w.close()
            tcp.close()
            await tcp.wait_closed()

    run(main)


def test_a_slowloris_connection_is_closed_at_the_deadline() -> None:
    """One byte every 50 ms: the message is never complete within 0.4 s, so the connection
    is closed, counted as head_timeout, and nothing is delivered."""

    async def main() -> None:
        sink = Sink()
        limits = StreamLimits(head_timeout=0.4)
        tcp = await StreamTransport.listen("127.0.0.1", 0, sink, limits=limits)
        reader, writer = await asyncio.open_connection(*tcp.local)
        try:
            for i in range(len(OPTIONS)):
                if writer.is_closing() or reader.at_eof():
                    break
                writer.write(OPTIONS[i : i + 1])
                try:
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.05)
            assert await closed_by_server(reader)
            assert tcp.counters.drops == {"head_timeout": 1}
            assert sink.messages == []
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main)


def test_whole_messages_with_pauses_between_them_are_not_cut() -> None:
    """The deadline runs per message: a peer pausing between complete messages (longer
    than the deadline) keeps its connection."""

    async def main() -> None:
        sink = Sink()
        limits = StreamLimits(head_timeout=0.2)
        tcp = await StreamTransport.listen("127.0.0.1", 0, sink, limits=limits)
        _, writer = await asyncio.open_connection(*tcp.local)
        try:
            for n in range(3):
                writer.write(OPTIONS.replace(b"CSeq: 1", b"CSeq: %d" % (n + 1)))
                await until(lambda: len(sink.messages) == n + 1)  # noqa: B023
                await asyncio.sleep(0.4)  # two deadlines
            assert tcp.connections == 1 and tcp.counters.drops == {}
        finally:
            writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main)


# --- the connection caps --------------------------------------------------------------------


def test_the_caps_refuse_the_next_connection_and_release_on_close() -> None:
    async def main() -> None:
        limits = StreamLimits(max_per_source=2, max_connections=3)
        tcp = await StreamTransport.listen("127.0.0.1", 0, Sink(), limits=limits)
        opened: list[asyncio.StreamWriter] = []

        async def connect(source: str) -> asyncio.StreamReader:
            reader, writer = await asyncio.open_connection(*tcp.local, local_addr=(source, 0))
            opened.append(writer)
            return reader

        try:
            await connect("127.0.0.1")
            await connect("127.0.0.1")
            await until(lambda: tcp.connections == 2)
            # a third from the same source: refused (source_limit)
            assert await closed_by_server(await connect("127.0.0.1"))
            assert tcp.counters.drops == {"source_limit": 1}
            # another source still gets in, up to the total
            await connect("127.0.0.2")
            await until(lambda: tcp.connections == 3)
            assert await closed_by_server(await connect("127.0.0.3"))
            assert tcp.counters.drops == {"source_limit": 1, "connection_limit": 1}
            # a closed connection frees its place
            opened[0].close()
            await until(lambda: tcp.connections == 2)
            await connect("127.0.0.1")
            await until(lambda: tcp.connections == 3)
            assert tcp.counters.drops == {"source_limit": 1, "connection_limit": 1}
        finally:
            for writer in opened:
                writer.close()
            tcp.close()
            await tcp.wait_closed()

    run(main)


# --- settings and wiring ----------------------------------------------------------------------


def _settings(limits: dict[str, object]) -> dict[str, object]:
    return {"Common": {"SIPDomains": "example.com", "SiteName": "Lab"}, "SipLimits": limits}


def test_the_settings_section_and_its_defaults() -> None:
    defaults = parse_settings(_settings({})).sip_limits
    assert defaults == SipLimits()
    assert defaults.stream_limits == StreamLimits(
        head_timeout=10.0, idle_timeout=300.0, max_per_source=64, max_connections=10_000
    )
    chosen = parse_settings(
        _settings({"HeadTimeoutSeconds": 2, "MaxConnectionsPerSource": 5, "MaxConnections": 50})
    )
    assert chosen.sip_limits.stream_limits.head_timeout == 2.0
    assert chosen.sip_limits.stream_limits.max_per_source == 5


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"HeadTimeoutSeconds": 0}, "SipLimits.HeadTimeoutSeconds"),
        ({"MaxConnections": 0}, "SipLimits.MaxConnections"),
        ({"MaxConnectionsPerSource": 100, "MaxConnections": 10}, "MaxConnectionsPerSource"),
        ({"MaxConnectinos": 10}, "SipLimits.MaxConnectinos"),
    ],
)
def test_bad_limits_are_refused_naming_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        parse_settings(_settings(values))


def test_an_endpoint_s_listeners_use_its_limits() -> None:
    async def main() -> None:
        limits = StreamLimits(head_timeout=1.5, idle_timeout=20.0, max_per_source=3)
        endpoint = Endpoint(limits=limits)
        try:
            transport = await endpoint.listen("TCP", "127.0.0.1", 0)
            assert isinstance(transport, StreamTransport)
            assert transport.limits == limits and transport.idle_timeout == 20.0
        finally:
            await endpoint.close()

    run(main)


def test_the_settings_limits_reach_every_role_s_endpoints(tmp_path: Path) -> None:
    """[SipLimits] is passed to the online service, the edge and both mediation endpoints."""
    settings = settings_on_free_ports(SipLimits={"HeadTimeoutSeconds": 1.5, "MaxConnections": 70})
    limits = settings.sip_limits.stream_limits
    assert limits != StreamLimits()

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            assert up.online is not None and up.appliance is not None
            edge, mediation = up.appliance.edge, up.appliance.mediation
            assert edge is not None and mediation is not None
            endpoints = [up.online.endpoint, edge.endpoint,
                         mediation.gateway_endpoint, mediation.edge_endpoint]  # fmt: skip
            assert [e.limits for e in endpoints] == [limits] * 4

    run(main)
