"""The mediation B2BUA on loopback with real UAs on both sides (RFC 3261 §9, §13, §14, §15;
RFC 3311; RFC 3326; RFC 7092 §3.1): outbound and inbound calls, early media, CANCEL, hold and
resume, BYE from each side, failures mapped, failover on 503 and on the fast-failover timer,
the capacity limit (503 + Retry-After), drain mode, unknown gateways (403), media anchoring."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridvoice.cms.settings import parse_settings
from hybridvoice.media import Leg
from hybridvoice.mediation.b2bua_legs import map_failure, reason
from hybridvoice.mediation.bypass import MediaMode
from hybridvoice.mediation.records import DisconnectSide
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Destination, Transport
from hybridvoice.net.ua import Call, UserAgent
from hybridvoice.sip import Headers, Request, Response, parse_uri
from hybridvoice.sip.headers import CSeq
from hybridvoice.sip.sdp import SessionDescription
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    EarlyMedia,
    Offer,
    OfferAnswered,
    Ringing,
    SessionConfig,
    State,
)
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction, TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.2, t4=0.25, timer_d=0.3)
QUICK = SessionConfig(t1=0.05, t2=0.2)
WAIT = 5.0
CALLEE = "+31201234567"


def sdp(port: int, direction: str = "sendrecv", host: str = "127.0.0.1") -> bytes:
    return (
        f"v=0\r\no=hv 1 {port} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    ).encode()


OFFER, ANSWER = sdp(6000), sdp(7000)


class Phone:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()

    def on_incoming_call(self, call: Call) -> None:
        self.incoming.put_nowait(call)

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False


@dataclass
class Peer:
    ua: UserAgent
    phone: Phone
    endpoint: Endpoint
    transport: Transport

    @property
    def port(self) -> int:
        return self.transport.local[1]

    async def next_call(self) -> Call:
        return await asyncio.wait_for(self.phone.incoming.get(), WAIT)


async def peer(host: str = "127.0.0.1", kind: str = "UDP") -> Peer:
    endpoint = Endpoint(timers=FAST)
    phone = Phone()
    ua = UserAgent(endpoint, phone, config=QUICK, rng=random.Random())
    transport = await endpoint.listen(kind, host, 0)
    return Peer(ua, phone, endpoint, transport)


@dataclass
class Lab:
    role: MediationRole
    cloud: Peer
    gateways: list[Peer]

    @property
    def edge(self) -> int:
        assert self.role.edge_transport is not None
        return self.role.edge_transport.local[1]

    @property
    def gateway_side(self) -> int:
        return self.role.gateway_transports["UDP"].local[1]

    def call_out(
        self, number: str = CALLEE, offer: bytes | None = OFFER,
        headers: tuple[tuple[str, object], ...] = (),
    ) -> Call:  # fmt: skip
        """The cloud side calls ``number`` through the mediation role."""
        return self.cloud.ua.invite(
            f"sip:{number}@127.0.0.1:{self.edge}", from_="<sip:+31209876543@contoso.com>",
            sdp=offer, destination=Destination("UDP", "127.0.0.1", self.edge), headers=headers,
        )  # fmt: skip

    def call_in(self, gateway: Peer, number: str = "0201234567") -> Call:
        """``gateway`` calls ``number`` through the mediation role."""
        port = self.gateway_side
        return gateway.ua.invite(
            f"sip:{number}@127.0.0.1:{port}", from_="<sip:0612345678@gw.example>",
            sdp=OFFER, destination=Destination("UDP", "127.0.0.1", port),
        )  # fmt: skip


def settings(gateways: list[Peer], **common: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Lab", **common},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": 0, "UDPPort": 0, "TLSPort": 0,
            "MediaPortStart": 40000, "MediaPortEnd": 40400,
            "InternalSubnets": ["127.0.0.0/8"],
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "TrunkConfiguration": {"OptionsIntervalSeconds": 60},
    }  # fmt: skip
    for n, gw in enumerate(gateways, 1):
        raw[f"Gateway{n}"] = {
            "IP": "127.0.0.1", "Port": gw.port, "Protocol": gw.transport.kind,
            "VoiceRoutes": "All",
            "SendSipOptions": False, "FailoverTimeSeconds": 0.5,
            "InboundCalleeRules": [["^0(\\d{9})$", "+31$1"]], "ForwardPAI": True,
        }  # fmt: skip
    return raw


@contextlib.asynccontextmanager
async def lab(
    tmp_path: Path, n_gateways: int = 1, *, relay: bool = False, kind: str = "UDP",
    **common: Any,
) -> AsyncIterator[Lab]:  # fmt: skip
    cloud = await peer()
    gateways = [await peer(kind=kind) for _ in range(n_gateways)]
    options = RoleOptions(
        edge=Destination("UDP", "127.0.0.1", 0),
        edge_target=Destination("UDP", "127.0.0.1", cloud.port),
        relay=relay, records=tmp_path / "calls.db", session=QUICK, timers=FAST, seed=1,
    )  # fmt: skip
    role = MediationRole(parse_settings(settings(gateways, **common)), options)
    await role.start()
    try:
        yield Lab(role, cloud, gateways)
    finally:
        await role.stop()
        for p in (cloud, *gateways):
            p.ua.close()
            await p.endpoint.close()


def run(coro: Awaitable[None], timeout: float = 30) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


async def settle(lab_: Lab) -> None:
    """Wait until the role has no bridge left and its records are written."""
    b2bua = lab_.role.b2bua
    for _ in range(200):
        if not b2bua.bridges and lab_.role.admission.active == 0:
            break
        await asyncio.sleep(0.01)
    assert not b2bua.bridges and lab_.role.admission.active == 0


async def connect(lab_: Lab, *, anchored: bool = False) -> tuple[Call, Call]:
    a = lab_.call_out()
    b = await lab_.gateways[0].next_call()
    b.ring()
    assert await a.wait_for(Ringing, WAIT) == Ringing(None)
    b.answer(ANSWER)
    answered = await a.answered(WAIT)
    assert isinstance(answered, Answered) and (anchored or answered.sdp == ANSWER)
    assert await b.answered(WAIT) == Confirmed(None)
    return a, b


def test_outbound_call_two_dialogs_and_bye_from_the_caller(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a, b = await connect(lab_)
            assert a.call_id != b.call_id
            assert a.invite.from_ is not None and b.invite.from_ is not None
            assert a.invite.from_.tag != b.invite.from_.tag
            assert b.invite.body == OFFER  # no relay: SDP passes through
            assert str(b.invite.uri).startswith(f"sip:{CALLEE}@127.0.0.1")
            a.bye()
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "local")
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await asyncio.sleep(0.1)
            (record,) = records.recent()
            assert record.gateway == "Gateway1" and record.b_call_id == b.call_id
            assert record.disconnect_side is DisconnectSide.CALLER, (
                record.cause,
                record.sip_status,
                record.attempts,
            )
            assert record.media_mode is MediaMode.BYPASS

    run(main())


def test_inbound_call_in_e164_and_bye_from_the_cloud(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            gw = lab_.gateways[0]
            a = lab_.call_in(gw)
            b = await lab_.cloud.next_call()
            assert str(b.invite.uri) == "sip:+31201234567@contoso.com;user=phone"
            assert b.call_id != a.call_id
            b.ring()
            await a.wait_for(Ringing, WAIT)
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            await b.answered(WAIT)
            b.bye()
            assert (await a.ended(WAIT)).cause is Cause.NORMAL
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_early_media_and_several_provisionals(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            b.ring()
            b.ring(ANSWER, status=183)
            assert await a.wait_for(Ringing, WAIT) == Ringing(None)
            early = await a.wait_for(EarlyMedia, WAIT)
            assert early == EarlyMedia(ANSWER)
            b.answer(ANSWER)
            await a.answered(WAIT)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_cancel_before_answer_cancels_the_gateway_leg(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            b.ring()
            await a.wait_for(Ringing, WAIT)
            a.cancel()
            assert (await a.ended(WAIT)).cause is Cause.CANCELLED
            assert (await b.ended(WAIT)).cause is Cause.CANCELLED
            await settle(lab_)
            assert lab_.role.trunks is not None
            assert lab_.role.trunks["Gateway1"].active_calls == 0

    run(main())


def test_hold_and_resume_pass_across(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a, b = await connect(lab_)
            for direction, reply in (("sendonly", "recvonly"), ("sendrecv", "sendrecv")):
                a.reinvite(sdp(6000, direction))
                offer = await b.wait_for(Offer, WAIT)
                assert offer.sdp == sdp(6000, direction)
                b.accept_offer(sdp(7000, reply))
                assert await a.wait_for(OfferAnswered, WAIT) == OfferAnswered(sdp(7000, reply))
            b.reinvite(sdp(7000, "sendonly"))  # and from the gateway side
            offer = await a.wait_for(Offer, WAIT)
            a.accept_offer(sdp(6000, "recvonly"))
            assert await b.wait_for(OfferAnswered, WAIT) == OfferAnswered(sdp(6000, "recvonly"))
            b.bye()  # BYE from the gateway side
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            await settle(lab_)

    run(main())


def test_486_from_the_gateway_is_mapped_through(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            b.reject(486)
            assert await a.ended(WAIT) == Disconnected(Cause.REJECTED, 486, "remote")
            await settle(lab_)

    run(main())


def test_failover_to_the_second_gateway_on_503(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, 2) as lab_:
            a = lab_.call_out()
            first, second = lab_.gateways
            got = await asyncio.wait(
                [asyncio.ensure_future(g.next_call()) for g in (first, second)],
                return_when=asyncio.FIRST_COMPLETED,
            )
            b1 = next(iter(got[0])).result()
            for task in got[1]:
                task.cancel()
            b1.reject(503)
            other = second if b1._ua is first.ua else first
            b2 = await other.next_call()
            b2.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            assert lab_.role.b2bua.stats.failovers == 1
            a.bye()
            await b2.ended(WAIT)
            await settle(lab_)

    run(main())


def test_failover_on_the_no_answer_timer_then_503_with_reason(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, 2) as lab_:
            a = lab_.call_out()
            calls = [await g.next_call() for g in lab_.gateways]  # neither answers in 0.5 s
            for b in calls:
                assert (await b.ended(WAIT)).cause is Cause.CANCELLED
            assert await a.ended(WAIT) == Disconnected(Cause.REJECTED, 503, "remote")
            assert lab_.role.b2bua.stats.failovers == 2
            await settle(lab_)

    run(main())


async def raw_invite(lab_: Lab, port: int, peer_: Peer) -> Response:
    """An INVITE sent through ``peer_``'s endpoint; its final response (headers included)."""
    future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    headers = Headers.of([
        ("Max-Forwards", 70), ("To", f"<sip:{CALLEE}@127.0.0.1>"),
        ("From", "<sip:test@127.0.0.1>;tag=t1"), ("Call-ID", f"raw{random.random()}"),
        ("CSeq", CSeq(1, "INVITE")), ("Contact", f"<sip:test@127.0.0.1:{peer_.port}>"),
        ("Content-Length", 0),
    ])  # fmt: skip

    def done(_: ClientTransaction, outcome: object) -> None:
        if isinstance(outcome, Response) and outcome.status >= 200 and not future.done():
            future.set_result(outcome)

    request = Request("INVITE", parse_uri(f"sip:{CALLEE}@127.0.0.1:{port}"), headers)
    peer_.endpoint.send_request(request, Destination("UDP", "127.0.0.1", port), done)
    return await asyncio.wait_for(future, WAIT)


def test_capacity_limit_answers_503_with_retry_after(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, MaxConcurrentCalls=1) as lab_:
            a, b = await connect(lab_)
            response = await raw_invite(lab_, lab_.edge, lab_.cloud)
            assert response.status == 503
            assert response.headers.get("Retry-After") == "10"
            assert "cause=503" in (response.headers.get("Reason") or "")
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_drain_mode_refuses_new_calls_and_lets_existing_ones_finish(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a, b = await connect(lab_)
            lab_.role.enter_maintenance()
            response = await raw_invite(lab_, lab_.edge, lab_.cloud)
            assert response.status == 503 and response.headers.get("Retry-After")
            assert a.state is State.CONFIRMED
            b.bye()
            await a.ended(WAIT)
            await settle(lab_)
            assert lab_.role.admission.drained

    run(main())


def test_call_from_an_unknown_gateway_gets_403(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            stranger = await peer("127.0.0.2")
            try:
                response = await raw_invite(lab_, lab_.gateway_side, stranger)
                assert response.status == 403
            finally:
                stranger.ua.close()
                await stranger.endpoint.close()
            assert not lab_.role.b2bua.bridges

    run(main())


def test_anchored_media_rewrites_sdp_on_both_legs(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            a, b = await connect(lab_, anchored=True)
            relay = lab_.role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            to_gateway = SessionDescription.parse(b.invite.body)
            assert to_gateway.media[0].port == relayed.local(relayed_leg("b"))[1]
            answered = next(e for e in a.history if isinstance(e, Answered))
            assert answered.sdp is not None
            assert (
                SessionDescription.parse(answered.sdp).media[0].port
                == (relayed.local(relayed_leg("a"))[1])
            )
            assert relayed.remote(relayed_leg("a")) == ("127.0.0.1", 6000)
            assert relayed.remote(relayed_leg("b")) == ("127.0.0.1", 7000)
            assert SessionDescription.parse(answered.sdp).media[0].port != 7000
            records = lab_.role.records
            assert records is not None
            live = records.live(a.call_id)
            assert live is not None and live.media_mode is MediaMode.ANCHORED
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            await asyncio.sleep(0.05)
            assert not relay.calls

    run(main())


def relayed_leg(name: str) -> Leg:
    return Leg(name)


def test_forward_pai_copies_identity_but_not_call_history(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:  # Gateway1: ForwardPAI on, ForwardCallHistory off
            pai = "<sip:+31209876543@contoso.com;user=phone>"
            history = "<sip:+31200000000@contoso.com>;index=1"
            a = lab_.call_out(headers=(
                ("P-Asserted-Identity", pai), ("Privacy", "id"), ("History-Info", history),
            ))  # fmt: skip
            b = await lab_.gateways[0].next_call()
            assert b.invite.headers.get_all("P-Asserted-Identity") == [pai]
            assert b.invite.headers.get("Privacy") == "id"
            assert b.invite.headers.get("History-Info") is None
            b.reject(404)
            assert await a.ended(WAIT) == Disconnected(Cause.REJECTED, 404, "remote")
            await settle(lab_)

    run(main())


def test_tcp_gateway_outbound_and_inbound(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, kind="TCP") as lab_:
            a, b = await connect(lab_)  # to the gateway over TCP (its Port and Protocol)
            assert b.invite.uri.transport == "tcp"  # type: ignore[union-attr]
            b.bye()
            await a.ended(WAIT)
            gw = lab_.gateways[0]
            port = lab_.role.gateway_transports["TCP"].local[1]
            a = gw.ua.invite(  # from the gateway to our TCP listener (TCPPort)
                f"sip:0201234567@127.0.0.1:{port};transport=tcp", from_="<sip:0612@gw.example>",
                sdp=OFFER, destination=Destination("TCP", "127.0.0.1", port),
            )  # fmt: skip
            b = await lab_.cloud.next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_failure_mapping_table() -> None:
    cases = {486: 486, 404: 404, 603: 603, 302: 480, 401: 403, 407: 403, 500: 503, None: 408}
    assert {status: map_failure(status) for status in cases} == cases
    assert reason(503, 'no "gateway"') == ("Reason", "SIP;cause=503;text=\"no 'gateway'\"")
