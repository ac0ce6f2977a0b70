"""The OPTIONS pinger over real loopback sockets: our own endpoint plays the gateway (RFC 3261
§11: any final response means alive), a closed port and a silent peer are misses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hybridvoice.cms.settings import Gateway, parse_settings
from hybridvoice.mediation.health import (
    HealthMonitor,
    build_options,
    destination_of,
    resolve_gateways,
)
from hybridvoice.mediation.trunks import Health, HealthChange, TrunkTable
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Source, TransportError
from hybridvoice.sip import Request, Response, make_response
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction

LOOPS = ["asyncio", "uvloop"]
WAIT = 10.0  # an upper bound for conditions polled below, never an expected duration


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[None]], None]:
    factory = loop_factory(request.param == "uvloop")

    def runner(coro: Awaitable[None]) -> None:
        async def main() -> None:
            await asyncio.wait_for(coro, 30)

        with asyncio.Runner(loop_factory=factory) as r:
            r.run(main())

    return runner


class Gw:
    """A gateway stand-in: answers every request with ``status``; None = stays silent."""

    def __init__(self, status: int | None) -> None:
        self.status = status
        self.requests: list[Request] = []

    def on_request(self, endpoint: Endpoint, tx: ServerTransaction, request: Request) -> None:
        self.requests.append(request)
        if self.status is not None:
            endpoint.send_response(tx, make_response(request, self.status, to_tag="gw"))

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None: ...

    def on_response(
        self, endpoint: Endpoint, tx: ClientTransaction, response: Response
    ) -> None: ...

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None: ...

    def on_timeout(self, endpoint: Endpoint, tx: Any, reason: str) -> None: ...


async def gateway_peer(kind: str, status: int | None, port: int = 0) -> tuple[Endpoint, Gw, int]:
    peer = Gw(status)
    endpoint = Endpoint(peer)
    transport = await endpoint.listen(kind, "127.0.0.1", port)
    return endpoint, peer, transport.local[1]


async def mediation(*kinds: str) -> Endpoint:
    endpoint = Endpoint()
    for kind in kinds:
        await endpoint.listen(kind, "127.0.0.1", 0)
    return endpoint


def free_tcp_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(monitor: HealthMonitor) -> bool:
    return monitor.running  # read afresh: mypy keeps properties narrowed


async def until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_any_final_response_is_alive(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        gw_ep, peer, port = await gateway_peer("TCP", 404)
        ep = await mediation("TCP")
        trunks = TrunkTable([Gateway(name="G1", ip="127.0.0.1", port=port, protocol="TCP")])
        monitor = HealthMonitor(ep, trunks, interval=1.0)
        try:
            change = await monitor.probe(trunks["G1"])
            assert change is not None and change.health is Health.UP
            status = trunks["G1"].status()
            assert status.last_options_status == 404
            assert status.last_options_rtt_ms is not None and status.last_options_rtt_ms >= 0
            (request,) = peer.requests
            assert request.method == "OPTIONS"
            assert str(request.uri) == f"sip:127.0.0.1:{port};transport=tcp"
        finally:
            await ep.close()
            await gw_ep.close()

    run(main())


def test_closed_port_is_a_transport_error(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        ep = await mediation("TCP")
        port = free_tcp_port()
        trunks = TrunkTable(
            [Gateway(name="G1", ip="127.0.0.1", port=port, protocol="TCP")], unhealthy_after=2
        )
        changes: list[HealthChange] = []
        monitor = HealthMonitor(ep, trunks, interval=1.0, on_change=changes.append)
        try:
            assert await monitor.probe(trunks["G1"]) is None
            assert trunks["G1"].last_options_error is not None
            assert trunks["G1"].last_options_error.startswith("transport error")
            change = await monitor.probe(trunks["G1"])
            assert change is not None and change.health is Health.DOWN
            assert changes == [change]
        finally:
            await ep.close()

    run(main())


def test_silent_peer_is_no_answer(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        gw_ep, peer, port = await gateway_peer("UDP", None)
        ep = await mediation("UDP")
        trunks = TrunkTable(
            [Gateway(name="G1", ip="127.0.0.1", port=port, protocol="UDP")], unhealthy_after=1
        )
        monitor = HealthMonitor(ep, trunks, interval=1.0, timeout=0.2)
        try:
            change = await monitor.probe(trunks["G1"])
            assert change is not None and change.health is Health.DOWN
            assert "no answer" in change.reason
            assert peer.requests and peer.requests[0].method == "OPTIONS"
        finally:
            await ep.close()
            await gw_ep.close()

    run(main())


def test_no_transport_for_the_gateway_protocol(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        ep = await mediation("TCP")
        trunks = TrunkTable([Gateway(name="G1", ip="127.0.0.1", protocol="UDP")], unhealthy_after=1)
        try:
            change = await HealthMonitor(ep, trunks, interval=1.0).probe(trunks["G1"])
            assert change is not None and change.health is Health.DOWN
            assert "no UDP transport" in change.reason
        finally:
            await ep.close()

    run(main())


def test_monitor_marks_down_and_up_and_stops(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        alive_ep, _, alive_port = await gateway_peer("TCP", 200)
        dead_port = free_tcp_port()
        ep = await mediation("TCP")
        trunks = TrunkTable(
            [
                Gateway(name="Alive", ip="127.0.0.1", port=alive_port),
                Gateway(name="Dead", ip="127.0.0.1", port=dead_port),
                Gateway(name="Quiet", ip="127.0.0.2", send_sip_options=False),
                Gateway(name="Off", ip="127.0.0.3", enabled=False),
            ],
            unhealthy_after=2,
        )
        changes: list[HealthChange] = []
        monitor = HealthMonitor(ep, trunks, interval=0.05, on_change=changes.append)
        revived: Endpoint | None = None
        try:
            monitor.start()
            monitor.start()  # idempotent
            assert monitor.running
            await until(lambda: trunks["Dead"].health is Health.DOWN)
            await until(lambda: trunks["Alive"].health is Health.UP)
            revived, _, _ = await gateway_peer("TCP", 200, dead_port)
            await until(lambda: trunks["Dead"].health is Health.UP)
            await monitor.stop()
            assert not running(monitor)
            assert trunks["Quiet"].health is Health.UNKNOWN
            assert trunks["Off"].health is Health.UNKNOWN
            dead = [c.health for c in changes if c.gateway == "Dead"]
            assert dead == [Health.DOWN, Health.UP]
        finally:
            await monitor.stop()
            await ep.close()
            await alive_ep.close()
            if revived is not None:
                await revived.close()

    run(main())


def test_from_settings_and_helpers(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        s = parse_settings(
            {
                "Common": {"SIPDomains": "a.com", "SiteName": "x"},
                "Gateway1": {"FQDN": "localhost", "Protocol": "TCP", "Port": 5099},
                "Gateway2": {"FQDN": "gw.invalid"},
                "TrunkConfiguration": {"OptionsIntervalSeconds": 0.5},
            }
        )
        resolved = await resolve_gateways(s.gateways)
        assert "127.0.0.1" in resolved["localhost"] or "::1" in resolved["localhost"]
        assert resolved["gw.invalid"] == ()
        trunks = TrunkTable.from_settings(s, resolved)
        assert trunks.gateway_for_source(trunks["Gateway1"].target or "") is trunks["Gateway1"]
        with pytest.raises(TransportError, match="did not resolve"):
            destination_of(trunks["Gateway2"])
        ep = await mediation("TCP")
        try:
            monitor = HealthMonitor.from_settings(ep, trunks, s)
            assert (monitor.interval, monitor.timeout) == (None, None)  # each gateway's own
            policy = trunks["Gateway1"].monitor.policy
            assert (policy.interval, policy.timeout) == (0.5, 0.5)
            gw1 = trunks["Gateway1"]
            dest = destination_of(gw1)
            assert (dest.transport, dest.port, dest.server_name) == ("TCP", 5099, "localhost")
            request = build_options(ep, gw1, dest)
            assert request.method == "OPTIONS"
            assert str(request.uri) == "sip:localhost:5099;transport=tcp"
            assert request.headers.get("Max-Forwards") == "70"
            with pytest.raises(ValueError, match="interval"):
                HealthMonitor(ep, trunks, interval=0)
        finally:
            await ep.close()

    run(main())
