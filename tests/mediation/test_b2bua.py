"""The mediation B2BUA on loopback with real UAs on both sides (RFC 3261 §9, §13, §14, §15;
RFC 3311; RFC 3326; RFC 7092 §3.1): outbound and inbound calls, early media, CANCEL, hold and
resume, BYE from each side, failures mapped, failover on 503 and on the fast-failover timer,
the capacity limit (503 + Retry-After), drain mode, unknown gateways (403), media anchoring."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from lab_harness import (
    ANSWER,
    CALLEE,
    OFFER,
    WAIT,
    Lab,
    Peer,
    connect,
    lab,
    peer,
    run,
    sdp,
    settle,
)

from hybridvoice.media import Leg
from hybridvoice.mediation.b2bua_legs import map_failure, reason
from hybridvoice.mediation.bypass import MediaMode
from hybridvoice.mediation.records import DisconnectSide
from hybridvoice.net.transport import Destination
from hybridvoice.sip import Headers, Request, Response, parse_uri
from hybridvoice.sip.headers import CSeq
from hybridvoice.sip.sdp import SessionDescription
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Disconnected,
    EarlyMedia,
    Offer,
    OfferAnswered,
    Ringing,
    State,
)
from hybridvoice.sip.transaction import ClientTransaction


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
            b1, _, other = await lab_.first_gateway_leg()
            b1.reject(503)
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
        async with lab(tmp_path, 2, no_answer=0.5) as lab_:
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
