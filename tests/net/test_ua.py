"""The UA core on loopback: two real UserAgents over UDP and TCP (RFC 3261 §8.2, §9, §12,
§13, §14, §15; RFC 3311; RFC 4028; RFC 6026 §7.1 2xx retransmissions)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import AsyncIterator

import pytest
from ua_harness import ANSWER, OFFER, QUICK, WAIT, Side, open_sides, run, sdp

from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import Call, CallFailedError, UserAgent
from hybridvoice.sip import Headers, Request, parse_uri
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


@contextlib.asynccontextmanager
async def pair(kind: str, config: SessionConfig = QUICK) -> AsyncIterator[tuple[Side, Side]]:
    async with open_sides(Side, 2, kind, config) as sides:
        yield sides[0], sides[1]


async def call_up(alice: Side, bob: Side, offer: bytes | None = OFFER) -> tuple[Call, Call]:
    """alice calls bob; bob rings then answers; both sides confirmed."""
    a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=offer)
    b = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
    b.ring()
    assert await a.wait_for(Ringing, WAIT) == Ringing(None)
    b.answer(ANSWER)
    assert await a.answered(WAIT) == Answered(ANSWER)
    assert await b.answered(WAIT) == Confirmed(None)
    assert a.state is State.CONFIRMED and b.state is State.CONFIRMED
    return a, b


def assert_clean(*sides: Side) -> None:
    for side in sides:
        assert len(side.ua.dialogs) == 0 and not side.ua.calls
        assert side.endpoint.parse_errors == 0


KINDS = pytest.mark.parametrize("kind", ["UDP", "TCP"])


@KINDS
def test_call_and_bye_from_the_caller(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a, b = await call_up(alice, bob)
            assert b.invite.body == OFFER and b.incoming and not a.incoming
            assert len(alice.ua.dialogs) == 1 and len(bob.ua.dialogs) == 1
            a.bye()
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "local")
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert_clean(alice, bob)

    run(main())


@KINDS
def test_call_and_bye_from_the_callee(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a, b = await call_up(alice, bob)
            b.bye()
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "local")
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            while not bob.endpoint.counters.responses_in.get(200):  # the BYE's 200
                await asyncio.sleep(0.01)
            assert_clean(alice, bob)

    run(main())


@KINDS
def test_cancel_before_the_answer(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER)
            b = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
            b.ring()
            await a.wait_for(Ringing, WAIT)
            a.cancel()
            assert await a.ended(WAIT) == Disconnected(Cause.CANCELLED, 487, "local")
            assert await b.ended(WAIT) == Disconnected(Cause.CANCELLED, 487, "remote")
            assert bob.endpoint.counters.requests_in["CANCEL"] == 1
            assert_clean(alice, bob)

    run(main())


@KINDS
def test_busy_486(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER)
            b = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
            b.reject(486)
            with pytest.raises(CallFailedError) as failed:
                await a.answered(WAIT)
            assert failed.value.disconnected == Disconnected(Cause.REJECTED, 486, "remote")
            assert await b.ended(WAIT) == Disconnected(Cause.REJECTED, 486, "local")
            assert_clean(alice, bob)

    run(main())


@KINDS
def test_early_media_183_then_answer(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER)
            b = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
            b.ring(ANSWER, status=183)
            assert await a.wait_for(EarlyMedia, WAIT) == EarlyMedia(ANSWER)
            assert a.state is State.EARLY and len(alice.ua.dialogs) == 1  # the early dialog
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            await b.answered(WAIT)
            a.bye()
            await b.ended(WAIT)

    run(main())


@KINDS
def test_reinvite_hold_and_resume(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a, b = await call_up(alice, bob)
            hold, held = sdp(6000, "sendonly"), sdp(7000, "recvonly")
            a.reinvite(hold)
            assert await b.wait_for(Offer, WAIT) == Offer(hold)
            b.accept_offer(held)
            assert await a.wait_for(OfferAnswered, WAIT) == OfferAnswered(held)
            a.reinvite(OFFER)  # resume
            assert await b.wait_for(Offer, WAIT) == Offer(OFFER)
            b.accept_offer(ANSWER)
            assert await a.wait_for(OfferAnswered, WAIT) == OfferAnswered(ANSWER)
            assert a.state is State.CONFIRMED and b.state is State.CONFIRMED
            b.bye()
            await a.ended(WAIT)
            assert_clean(alice, bob)

    run(main())


@KINDS
def test_offer_in_the_2xx_answered_in_the_ack(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=None)
            b = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
            b.answer(ANSWER)  # our offer, since the INVITE had none (RFC 3264 §4)
            assert await a.wait_for(Offer, WAIT) == Offer(ANSWER)
            a.accept_offer(OFFER)
            assert await b.answered(WAIT) == Confirmed(OFFER)
            a.bye()
            await b.ended(WAIT)

    run(main())


def raw_request(method: str, target: str, *, to_tag: str | None = None) -> Request:
    to = f"<{target}>" + (f";tag={to_tag}" if to_tag else "")
    headers = Headers.of(
        [
            ("Max-Forwards", 70),
            ("To", to),
            ("From", f"<sip:test@example.com>;tag={random.getrandbits(32):x}"),
            ("Call-ID", f"{random.getrandbits(64):x}@test"),
            ("CSeq", f"1 {method}"),
            ("Content-Length", 0),
        ]
    )
    return Request(method, parse_uri(target), headers)


@KINDS
def test_requests_outside_a_call(kind: str) -> None:
    """§12.2.2: a To tag matching no dialog gets 481; §11.2: OPTIONS answered by the UA;
    BYE without a dialog 481; a method we do not allow 405 with Allow (§8.2.1)."""

    async def main() -> None:
        async with pair(kind) as (alice, bob):
            host, port = bob.transport.local
            to_bob = Destination(kind, host, port)
            target = bob.uri()
            request = alice.endpoint.request
            unknown = await request(raw_request("BYE", target, to_tag="nosuch"), to_bob)
            assert unknown.status == 481
            update = await request(raw_request("UPDATE", target, to_tag="x"), to_bob)
            assert update.status == 481
            options = await request(raw_request("OPTIONS", target), to_bob)
            assert options.status == 200
            assert "UPDATE" in (options.headers.get("Allow") or "")
            assert "timer" in (options.headers.get("Supported") or "")
            bye = await request(raw_request("BYE", target), to_bob)
            assert bye.status == 481
            message = await request(raw_request("MESSAGE", target), to_bob)
            assert message.status == 405 and "INVITE" in (message.headers.get("Allow") or "")
            assert_clean(alice, bob)

    run(main())


@KINDS
def test_default_application_refuses_calls_480(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob):
            UserAgent(bob.endpoint, config=QUICK)  # replaces bob's UA as the endpoint's TU
            a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER)
            assert await a.ended(WAIT) == Disconnected(Cause.REJECTED, 480, "remote")

    run(main())


def test_lost_ack_the_2xx_is_retransmitted_and_the_call_confirmed() -> None:
    """§13.3.1.4: the callee re-sends its 2xx (through the INVITE server transaction in the
    RFC 6026 Accepted state) until an ACK arrives; the caller ACKs every copy."""

    async def main() -> None:
        async with pair("UDP") as (alice, bob):
            acks: list[Request] = []
            send = alice.endpoint.send_stateless

            def lossy(request: Request, destination: Destination) -> None:
                acks.append(request)
                if len(acks) > 1:  # the first ACK is lost
                    send(request, destination)

            alice.endpoint.send_stateless = lossy  # type: ignore[method-assign]
            a = alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER)
            b = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
            b.answer(ANSWER)
            await a.answered(WAIT)
            assert await b.answered(WAIT) == Confirmed(None)
            assert len(acks) >= 2
            assert all(ack.headers.count("Via") <= 1 for ack in acks)  # one Via per copy
            assert bob.endpoint.counters.retransmissions >= 1
            a.bye()
            await b.ended(WAIT)
            assert_clean(alice, bob)

    run(main())


class WarpLoop(asyncio.SelectorEventLoop):
    """A loop whose clock can jump ahead: RFC 4028 intervals are at least 90 s (§5)."""

    offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset


@KINDS
def test_session_timer_refresh(kind: str) -> None:
    """RFC 4028 §10: the refresher (the caller, which asked for it) refreshes at half the
    interval with an offer-less UPDATE (the callee allows UPDATE, §9); the call goes on."""
    config = SessionConfig(t1=0.05, t2=0.2, session_expires=90, min_se=90)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, WarpLoop)
        async with pair(kind, config) as (alice, bob):
            a, b = await call_up(alice, bob)
            assert a.session.session_interval == 90 and a.session.is_refresher
            assert b.session.session_interval == 90 and not b.session.is_refresher
            for refreshes in (1, 2):
                loop.offset += 46  # past the refresh at 45 s, before the expiry at 60 s
                while bob.endpoint.counters.requests_in.get("UPDATE", 0) < refreshes:
                    await asyncio.sleep(0.01)
                while alice.endpoint.counters.responses_in.get(200, 0) < refreshes + 1:
                    await asyncio.sleep(0.01)
            assert a.state is State.CONFIRMED and b.state is State.CONFIRMED
            assert not [e for e in a.history + b.history if isinstance(e, Disconnected)]
            a.bye()
            await b.ended(WAIT)

    run(main(), WarpLoop, timeout=30 + 2 * 46)  # the loop's clock jumps 92 s


def test_ended_calls_are_freed_without_the_cyclic_collector() -> None:
    """An ended call and its transactions form no reference cycle (``Call._release``): at
    high call rates, cycles reach the oldest GC generation and its passes stall the loop."""

    async def main() -> None:
        gc.collect()  # what earlier tests left behind is not ours to judge
        before = sum(1 for o in gc.get_objects() if isinstance(o, Call))
        async with open_sides(Side, 2, "TCP") as (a, b):
            for _ in range(5):
                call = a.ua.invite(b.uri(), from_=a.uri("alice"), sdp=OFFER)
                incoming = await b.phone.incoming.get()
                incoming.answer(ANSWER)
                await call.answered()
                call.bye()
                await call.ended()
                await incoming.ended()
            del call, incoming
            for _ in range(200):  # until Timers L/M let the last transactions go
                if a.endpoint.layer.transaction_count + b.endpoint.layer.transaction_count == 0:
                    break
                await asyncio.sleep(0.05)
            assert a.endpoint.layer.transaction_count + b.endpoint.layer.transaction_count == 0
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                gc.collect()
                cyclic = [o for o in gc.garbage if isinstance(o, Call)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            assert cyclic == []
            assert sum(1 for o in gc.get_objects() if isinstance(o, Call)) == before

    run(main())


def test_one_loop_timer_at_the_cores_earliest_deadline() -> None:
    """The adapter arms one loop timer for the whole UA, at ``core.next_deadline()`` (the
    earliest of every session's timers), instead of one per call."""

    async def main() -> None:
        async with pair("UDP") as (alice, bob):
            alice.endpoint.send_stateless = lambda request, destination: None  # type: ignore[method-assign]
            calls = [
                alice.ua.invite(bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER)
                for _ in range(3)
            ]
            incoming = [await asyncio.wait_for(bob.phone.incoming.get(), WAIT) for _ in calls]
            for b in incoming:  # three 2xx awaiting their ACK: three session deadlines
                b.answer(ANSWER)
            deadlines = [b.session.next_deadline() for b in incoming]
            assert None not in deadlines
            assert bob.ua.core.next_deadline() == min(d for d in deadlines if d is not None)
            assert bob.ua._timer_when == bob.ua.core.next_deadline()
            for a in calls:
                await a.answered(WAIT)
                a.bye()
            for b in incoming:
                await b.ended(WAIT)
            assert bob.ua.core.next_deadline() is None
            assert_clean(alice, bob)

    run(main())
