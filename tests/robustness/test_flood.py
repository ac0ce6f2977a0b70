"""A bounded, seeded, mutated flood against a live lab (issue 9), over UDP and TCP, toward
the online service's SIP listeners and the mediation role's gateway side. Then:

* no task raised an exception nobody handled (a loop exception handler records them);
* every message of the flood is accounted for, exactly, per listener: delivered to the
  endpoint, a keep-alive, or counted in ``hybridvoice_sip_dropped_total`` (as scraped);
* every request delivered (but ACK) got a final response;
* no call and no relay port leaked (calls_active back to 0, every media port free);
* a real test call passes afterwards.

The flood runs once (a module fixture) and each check is its own test. TCP sends one flood
message per connection and closes its side; what the listener must account for is what
§18.3 framing makes of those bytes (a message, a keep-alive, a parse error ending the
stream, or a stream closed mid-message), worked out with the same framing rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chain_harness import DOMAIN, call_once, lab, settings_on_free_ports
from mutate import Target, flood, sdp_intact

from hybridvoice.app import Lab
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.mgmt.testcall import TestCallResult
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.metrics import endpoint_metrics
from hybridvoice.net.transport import Source, Transport
from hybridvoice.sip import ParseError, Request, Response, StreamParser

SEED = 9_2026
UDP_MESSAGES = 900  # per listener
TCP_MESSAGES = 250  # per listener
TCP_CONCURRENCY = 16
SETTLE = 20.0  # upper bound for the accounting and the calls to settle

#: drop reasons of messages we send (not part of what arrived)
_OUTGOING = frozenset({"send_queue_full", "write_buffer_full"})


# --- what the listeners saw ---------------------------------------------------------------------


class Tap:
    """Stands between a transport and its endpoint and counts the messages delivered from
    the flood's sockets (other traffic of the lab goes through uncounted)."""

    def __init__(self, endpoint: Endpoint, flood_sources: set[tuple[str, int]]) -> None:
        self._endpoint = endpoint
        self._sources = flood_sources
        self.delivered = 0

    def on_request(self, request: Request, source: Source) -> None:
        self._count(source)
        self._endpoint.on_request(request, source)

    def on_response(self, response: Response, source: Source) -> None:
        self._count(source)
        self._endpoint.on_response(response, source)

    def _count(self, source: Source) -> None:
        if (source.host, source.port) in self._sources:
            self.delivered += 1


def tap(transport: Transport, endpoint: Endpoint, sources: set[tuple[str, int]]) -> Tap:
    t = Tap(endpoint, sources)
    if hasattr(transport, "sink"):
        transport.sink = t  # a stream transport
    else:
        transport._sink = t  # type: ignore[attr-defined]  # UDP: set at construction
    return t


def scraped_drops(endpoint: Endpoint, kind: str) -> dict[str, float]:
    """``hybridvoice_sip_dropped_total`` of one endpoint and transport kind, by reason."""
    out: dict[str, float] = {}
    for family in endpoint_metrics([("e", endpoint)]):
        if family.name == "hybridvoice_sip_dropped":
            for sample in family.samples:
                if sample.labels["transport"] == kind:
                    reason = sample.labels["reason"]
                    out[reason] = out.get(reason, 0) + sample.value
    return out


def stream_units(data: bytes) -> int:
    """What a listener must account for after a connection carried ``data`` then closed:
    each framed message or keep-alive, plus one for a parse error (which ends the stream)
    or for a message cut short by the close (§18.3)."""
    parser = StreamParser()
    try:
        items = parser.feed(data)
    except ParseError:  # the first message already
        return 1
    try:
        parser.feed(b"")
    except ParseError:
        return len(items) + 1
    return len(items) + (1 if parser.mid_message else 0)


@dataclass
class Listener:
    """One flooded listener and everything needed to account for it."""

    name: str
    endpoint: Endpoint
    transport: Transport
    target: Target
    tap: Tap
    sent: int = 0  # the units it must account for
    before: dict[str, float] = field(default_factory=dict)
    keepalives_before: int = 0

    def observed(self) -> int:
        c = self.transport.counters
        drops = scraped_drops(self.endpoint, self.transport.kind)
        dropped = sum(v - self.before.get(r, 0) for r, v in drops.items() if r not in _OUTGOING)
        keepalives = c.keepalive_pings + c.keepalive_pongs - self.keepalives_before
        return int(dropped) + keepalives + self.tap.delivered

    def drops(self) -> dict[str, int]:
        drops = scraped_drops(self.endpoint, self.transport.kind)
        return {
            r: int(v - self.before.get(r, 0)) for r, v in drops.items() if v > self.before.get(r, 0)
        }


@dataclass
class FloodResult:
    listeners: list[Listener] = field(default_factory=list)
    accounted: dict[str, tuple[int, int, dict[str, int]]] = field(default_factory=dict)
    task_errors: list[dict[str, Any]] = field(default_factory=list)
    unanswered: dict[str, list[Unanswered]] = field(default_factory=dict)
    calls_active: int = -1
    ports_free: tuple[int, int] = (-1, -1)
    test_call: TestCallResult | None = None


# --- the flood ------------------------------------------------------------------------------------


class _Collector(asyncio.DatagramProtocol):
    """The flood's UDP socket: whatever comes back is read and ignored."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        pass


async def flood_udp(
    listener: Listener, messages: list[bytes], udp: asyncio.DatagramTransport
) -> None:
    """Send in bursts, each burst accounted before the next (a kernel buffer overflow would
    lose datagrams nobody can count)."""
    target = listener.target
    for start in range(0, len(messages), 50):
        burst = messages[start : start + 50]
        for data in burst:
            udp.sendto(data, (target.host, target.port))
        listener.sent += len(burst)
        with contextlib.suppress(TimeoutError):  # the final check reports a shortfall
            async with asyncio.timeout(10):
                while listener.observed() < listener.sent:
                    await asyncio.sleep(0.005)


async def flood_tcp(
    listener: Listener, messages: list[bytes], sources: set[tuple[str, int]]
) -> None:
    target = listener.target
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for data in messages:
        queue.put_nowait(data)

    async def worker() -> None:
        while not queue.empty():
            data = queue.get_nowait()
            reader, writer = await asyncio.open_connection(target.host, target.port)
            sources.add(writer.get_extra_info("sockname")[:2])
            listener.sent += stream_units(data)
            try:
                writer.write(data)
                writer.write_eof()
                async with asyncio.timeout(10):
                    while await reader.read(65536):
                        pass  # answers, until the listener closes
            except (ConnectionError, TimeoutError):
                pass
            finally:
                writer.close()

    await asyncio.gather(*(worker() for _ in range(TCP_CONCURRENCY)))


#: an unanswered request: (method and Call-ID, whether its SDP body is as generated)
Unanswered = tuple[str, bool]


def record_answers(endpoint: Endpoint) -> dict[tuple[str, str], Unanswered]:
    """Trace the endpoint: the flood's requests (but ACK) as they arrive, removed when a
    final response to them leaves. What is left after the settle was never answered."""
    pending: dict[tuple[str, str], Unanswered] = {}

    def trace(direction: str, message: Request | Response) -> None:
        try:
            via, cseq = message.top_via, message.cseq
        except ParseError:
            return
        if via is None or cseq is None or via.branch is None:
            return
        key = (via.branch, cseq.method)
        if direction == "in" and isinstance(message, Request) and message.method != "ACK":
            if "flood" in via.branch:
                what = f"{message.method} {message.headers.get('Call-ID')}"
                pending.setdefault(key, (what, sdp_intact(message.body)))
        elif direction == "out" and isinstance(message, Response) and message.status >= 200:
            pending.pop(key, None)

    endpoint.trace = trace
    return pending


async def run_flood(tmp_path: Path, result: FloodResult) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: result.task_errors.append(context))
    settings = settings_on_free_ports()
    raw = settings_raw(settings)
    raw["Gateways"][0]["SendSipOptions"] = False  # the gateway side hears only the flood
    from hybridvoice.cms.settings import parse_settings  # noqa: PLC0415

    async with lab(tmp_path, parse_settings(raw)) as up:
        await _flood_lab(up, result)
    gc.collect()  # a task whose exception nobody read reports it when collected
    await asyncio.sleep(0)


async def _flood_lab(up: Lab, result: FloodResult) -> None:
    assert up.online is not None and up.online.endpoint is not None
    assert up.appliance is not None and up.appliance.mediation is not None
    mediation = up.appliance.mediation
    assert mediation.gateway_endpoint is not None and mediation.relay is not None
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(_Collector, local_addr=("127.0.0.1", 0))
    udp_port = udp.get_extra_info("sockname")[1]
    sources: set[tuple[str, int]] = {("127.0.0.1", udp_port)}
    ports_before = mediation.relay.stats().ports_available

    online_host, online_port = up.settings.online.sip_addresses[0], up.settings.online.sip_port
    ms = up.settings.mediation_server
    assert ms.udp_port is not None and ms.tcp_port is not None
    caller_online = f"alice@{DOMAIN}"
    caller_gateway = "+12125550123@127.0.0.1"
    plans = [
        ("online UDP", up.online.endpoint, "UDP", online_host, online_port,
         f"sip:+15550199@{DOMAIN}", caller_online),
        ("online TCP", up.online.endpoint, "TCP", online_host, online_port,
         f"sip:+15550199@{DOMAIN}", caller_online),
        ("gateway side UDP", mediation.gateway_endpoint, "UDP", ms.ip, ms.udp_port,
         f"sip:+15550100@{ms.ip}:{ms.udp_port}", caller_gateway),
        ("gateway side TCP", mediation.gateway_endpoint, "TCP", ms.ip, ms.tcp_port,
         f"sip:+15550100@{ms.ip}:{ms.tcp_port}", caller_gateway),
    ]  # fmt: skip
    pending: dict[str, dict[tuple[str, str], Unanswered]] = {}  # by endpoint
    for name, endpoint, kind, host, port, ruri, caller in plans:
        transport = next(
            t for t in endpoint.transports if t.kind == kind and t.local == (host, port)
        )
        target = Target(kind, host, port, ruri, caller, DOMAIN)
        listener = Listener(name, endpoint, transport, target, tap(transport, endpoint, sources))
        listener.before = scraped_drops(endpoint, kind)
        c = transport.counters
        listener.keepalives_before = c.keepalive_pings + c.keepalive_pongs
        result.listeners.append(listener)
        role = name.rpartition(" ")[0]  # "online", "gateway side"
        if role not in pending:
            pending[role] = record_answers(endpoint)
        if kind == "UDP":
            await flood_udp(listener, flood(SEED, UDP_MESSAGES, target, udp_port), udp)
        else:
            await flood_tcp(listener, flood(SEED, TCP_MESSAGES, target, udp_port), sources)

    # settle: every listener accounted for, every call ended, every port back; what is not
    # by then is what the checks report
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SETTLE):
            while (
                any(lst.observed() != lst.sent for lst in result.listeners)
                or (
                    mediation.admission.active
                    or mediation.relay.stats().ports_available < ports_before
                )
                or any(pending.values())
            ):
                await asyncio.sleep(0.1)
    for lst in result.listeners:
        result.accounted[lst.name] = (lst.sent, lst.observed(), lst.drops())
    result.unanswered = {name: sorted(p.values()) for name, p in pending.items() if p}
    result.calls_active = mediation.admission.active
    result.ports_free = (mediation.relay.stats().ports_available, ports_before)
    udp.close()
    for endpoint in (up.online.endpoint, mediation.gateway_endpoint):
        endpoint.trace = None
    result.test_call = await call_once(up)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FloodResult]:
    path = tmp_path_factory.mktemp("flood")
    outcome = FloodResult()
    asyncio.run(asyncio.wait_for(run_flood(path, outcome), 150))
    yield outcome


# --- the checks --------------------------------------------------------------------------------


def test_no_task_raised_an_unhandled_exception(result: FloodResult) -> None:
    assert result.listeners, "the flood did not run"
    assert result.task_errors == []


def test_every_message_is_delivered_or_counted_per_listener(result: FloodResult) -> None:
    assert len(result.accounted) == 4
    for name, (sent, observed, drops) in result.accounted.items():
        assert observed == sent, f"{name}: {sent} sent, {observed} accounted ({drops})"
        assert drops.get("internal_error", 0) == 0, f"{name}: {drops}"
        assert sum(drops.values()) > sent // 4, f"{name}: the flood was not hostile: {drops}"


def test_every_delivered_request_got_a_final_response(result: FloodResult) -> None:
    assert result.listeners, "the flood did not run"
    assert result.unanswered == {}


def test_no_call_or_relay_port_leaked(result: FloodResult) -> None:
    assert result.calls_active == 0
    free, before = result.ports_free
    assert free == before


def test_a_real_call_passes_afterwards(result: FloodResult) -> None:
    assert result.test_call is not None and result.test_call.ok, result.test_call
