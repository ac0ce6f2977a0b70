"""The access edge on loopback: a dual-homed proxy between an "online service" UA and a
"mediation" UA, each side on its own UDP port, trusting only its peers' addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ports import free_port
from ua_harness import FAST, QUICK, Phone, run, sdp

from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.edge.role import EdgeOptions, EdgeRole
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.message import Request
from hybridvoice.sip.session import Disconnected

ONLINE_HOST = "127.0.0.2"  # the online service's address, trusted on the external side
STRANGER_HOST = "127.0.0.3"


@dataclass
class Peer:
    ua: UserAgent
    phone: Phone
    endpoint: Endpoint
    port: int
    seen: list[tuple[str, int, str]]  # (source host, source port, method) of requests


async def peer(host: str, port: int = 0) -> Peer:
    endpoint = Endpoint(timers=FAST)
    phone = Phone()
    ua = UserAgent(endpoint, phone, config=QUICK)
    transport = await endpoint.listen("UDP", host, port)
    seen: list[tuple[str, int, str]] = []
    original = endpoint.on_request

    def spy(request: Request, source: object) -> None:
        seen.append((source.host, source.port, request.method))  # type: ignore[attr-defined]
        original(request, source)  # type: ignore[arg-type]

    endpoint.on_request = spy  # type: ignore[method-assign]
    return Peer(ua, phone, endpoint, transport.local[1], seen)


def edge_settings(online_port: int, mediation_port: int) -> Settings:
    return parse_settings(
        {
            "Common": {"SIPDomains": "contoso.example", "SiteName": "Lab"},
            "EdgeServer": {
                "InternalServerIPs": "127.0.0.1", "InternalPort": free_port(),
                "InternalProtocol": "UDP", "ExternalSIPIPs": "127.0.0.1",
                "ExternalSIPPort": free_port(), "ExternalProtocol": "UDP",
                "MediationTimeoutSeconds": 5,  # no timer deciding a test on a loaded machine
            },
            "MediationServer": {"IP": "127.0.0.1", "InternalPort": mediation_port,
                                "InternalProtocol": "UDP"},
            "Online": {"SIPAddresses": ONLINE_HOST, "SIPPort": online_port, "SIPProtocol": "UDP"},
        }
    )  # fmt: skip


@asynccontextmanager
async def deployment(
    mediation_up: bool = True,
) -> AsyncIterator[tuple[EdgeRole, Peer, Peer | None]]:
    online = await peer(ONLINE_HOST)
    mediation_port = free_port()
    mediation = await peer("127.0.0.1", mediation_port) if mediation_up else None
    options = EdgeOptions(timers=FAST, ping_interval=0.1)
    edge = EdgeRole(edge_settings(online.port, mediation_port), options)
    await edge.start()
    try:
        yield edge, online, mediation
    finally:
        await edge.stop()
        for p in (online, mediation):
            if p is not None:
                p.ua.close()
                await p.endpoint.close()


def outside(edge: EdgeRole) -> Destination:
    assert edge.external is not None
    host, port = edge.external.local
    return Destination("UDP", host, port)


def test_call_crosses_the_edge_both_ways_on_the_right_interfaces() -> None:
    async def main() -> None:
        async with deployment() as (edge, online, mediation):
            assert mediation is not None and edge.internal is not None
            assert edge.external is not None
            call = online.ua.invite(
                "sip:+15550199@contoso.example;user=phone", from_="<sip:alice@contoso.example>",
                sdp=sdp(6000), destination=outside(edge),
            )  # fmt: skip
            incoming = await asyncio.wait_for(mediation.phone.incoming.get(), 5)
            record_route = incoming.invite.headers.get_all("Record-Route")
            assert len(record_route) == 2  # RFC 5658: one per interface, internal on top
            assert str(edge.internal.local[1]) in record_route[0]
            assert str(edge.external.local[1]) in record_route[1]
            incoming.answer(sdp(7000))
            await call.answered(5)
            incoming.bye()  # mediation -> edge -> online
            await call.wait_for(Disconnected, 5)
            internal_port = edge.internal.local[1]
            external_port = edge.external.local[1]
            # every request reached mediation from the internal interface and the online
            # service from the external one, in-dialog requests included
            assert {p for _, p, _ in mediation.seen} == {internal_port}
            assert {m for _, _, m in mediation.seen} >= {"INVITE", "ACK"}  # and OPTIONS pings
            assert [(p, m) for _, p, m in online.seen] == [(external_port, "BYE")]

    run(main())


def test_requests_from_untrusted_addresses_get_403() -> None:
    async def main() -> None:
        async with deployment() as (edge, _, mediation):
            stranger = await peer(STRANGER_HOST)
            try:
                call = stranger.ua.invite(
                    "sip:+15550199@contoso.example", from_="<sip:eve@example.net>",
                    sdp=sdp(6000), destination=outside(edge),
                )  # fmt: skip
                gone = await call.wait_for(Disconnected, 5)
                assert gone.status == 403
                assert mediation is not None
                assert {m for _, _, m in mediation.seen} <= {"OPTIONS"}  # only the edge's pings
                assert edge.policy is not None and edge.policy.refused == 1
            finally:
                stranger.ua.close()
                await stranger.endpoint.close()

    run(main())


def test_mediation_gone_the_cloud_gets_503_at_once() -> None:
    async def main() -> None:
        async with deployment(mediation_up=False) as (edge, online, _):
            assert edge.monitor is not None
            for _ in range(100):  # the OPTIONS pings notice (interval 0.1 s, 2 misses)
                if not edge.monitor.up:
                    break
                await asyncio.sleep(0.05)
            assert not edge.monitor.up
            call = online.ua.invite(
                "sip:+15550199@contoso.example", from_="<sip:alice@contoso.example>",
                sdp=sdp(6000), destination=outside(edge),
            )  # fmt: skip
            gone = await call.wait_for(Disconnected, 5)
            assert gone.status == 503

    run(main())
