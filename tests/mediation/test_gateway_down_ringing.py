"""A call ringing on a gateway that its OPTIONS pings then mark down is moved to the next
gateway (CANCEL to the dead one, INVITE to the other), instead of ringing until the caller
gives up: once a 180 has stopped the fast-failover timer, nothing else would end it (RFC 3261
§17.1.1.2: Timer B stops at a provisional response, and a gateway that dies after its 180
sends no final response)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lab_harness import ANSWER, WAIT, lab, run, settle

from hybridvoice.mediation.trunks import Health
from hybridvoice.sip.session import Answered, Cause, Ringing


def test_a_call_ringing_on_a_gateway_marked_down_goes_to_the_next(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, 2) as lab_:
            role = lab_.role
            trunks, health = role.trunks, role.health
            assert trunks is not None and health is not None
            a = lab_.call_out()
            first, second = lab_.gateways
            got = await asyncio.wait(
                [asyncio.ensure_future(g.next_call()) for g in (first, second)],
                return_when=asyncio.FIRST_COMPLETED,
            )
            b1 = next(iter(got[0])).result()
            for task in got[1]:
                task.cancel()
            b1.ring()
            await a.wait_for(Ringing, WAIT)
            dead = "Gateway1" if b1._ua is first.ua else "Gateway2"
            now = asyncio.get_running_loop().time()
            change = None
            while change is None:  # the pinger's misses, as it reports them
                change = trunks.options_failed(dead, now, "OPTIONS: no answer")
            assert change.health is Health.DOWN
            assert health.on_change is not None
            health.on_change(change)
            assert (await b1.ended(WAIT)).cause is Cause.CANCELLED
            other = second if b1._ua is first.ua else first
            b2 = await other.next_call()
            b2.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            assert role.b2bua.stats.failovers == 1
            assert trunks[dead].active_calls == 0
            a.bye()
            await b2.ended(WAIT)
            await settle(lab_)

    run(main())


def test_a_connected_call_on_a_gateway_marked_down_is_left_alone(tmp_path: Path) -> None:
    """Media may still flow when the OPTIONS pings fail: an answered call is not ended."""

    async def main() -> None:
        async with lab(tmp_path, 1) as lab_:
            role = lab_.role
            trunks, health = role.trunks, role.health
            assert trunks is not None and health is not None
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            now = asyncio.get_running_loop().time()
            change = None
            while change is None:
                change = trunks.options_failed("Gateway1", now, "OPTIONS: no answer")
            assert health.on_change is not None
            health.on_change(change)
            await asyncio.sleep(0.2)
            assert len(role.b2bua.bridges) == 1
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_a_gateway_a_call_found_down_moves_the_calls_ringing_on_it(tmp_path: Path) -> None:
    """Passive detection (an INVITE that timed out, RFC 3261 §17.1.1.2 Timer B) marks the
    gateway down inside another call's handling; the pinger, woken at once, reports the
    change, and the calls ringing there move on as with OPTIONS."""

    async def main() -> None:
        async with lab(tmp_path, 2) as lab_:
            role = lab_.role
            trunks = role.trunks
            assert trunks is not None
            a = lab_.call_out()
            first, second = lab_.gateways
            got = await asyncio.wait(
                [asyncio.ensure_future(g.next_call()) for g in (first, second)],
                return_when=asyncio.FIRST_COMPLETED,
            )
            b1 = next(iter(got[0])).result()
            for task in got[1]:
                task.cancel()
            b1.ring()
            await a.wait_for(Ringing, WAIT)
            dead = "Gateway1" if b1._ua is first.ua else "Gateway2"
            now = asyncio.get_running_loop().time()
            change = None
            while change is None:  # other calls' INVITEs to it timed out
                change = trunks.invite_failed(dead, now, "408 (no answer)")
            assert change.health is Health.DOWN
            assert (await b1.ended(WAIT)).cause is Cause.CANCELLED
            other = second if b1._ua is first.ua else first
            b2 = await other.next_call()
            b2.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            a.bye()
            await b2.ended(WAIT)
            await settle(lab_)

    run(main())
