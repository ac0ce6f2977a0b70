"""A call ringing on a gateway that its OPTIONS pings then mark down is moved to the next
gateway (CANCEL to the dead one, INVITE to the other), instead of ringing until the caller
gives up: once a 180 has stopped the fast-failover timer, nothing else would end it (RFC 3261
§17.1.1.2: Timer B stops at a provisional response, and a gateway that dies after its 180
sends no final response)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lab_harness import ANSWER, WAIT, Lab, lab, run, settle

from hybridvoice.mediation.trunks import Health
from hybridvoice.sip.session import Ringing


def pings_mark_down(lab_: Lab, name: str) -> None:
    """OPTIONS probes to ``name`` go unanswered until it is down; the changes are reported
    as the pinger does at a probe's end (taken from the trunk table)."""
    trunks, health = lab_.role.trunks, lab_.role.health
    assert trunks is not None and health is not None and health.on_change is not None
    now = asyncio.get_running_loop().time()
    while trunks[name].health is not Health.DOWN:
        trunks.options_failed(name, now, "OPTIONS: no answer")
    for change in trunks.take_changes():
        health.on_change(change)


def test_a_call_ringing_on_a_gateway_marked_down_goes_to_the_next(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, 2) as lab_:
            a = lab_.call_out()
            b1, dead, other = await lab_.first_gateway_leg()
            b1.ring()
            await a.wait_for(Ringing, WAIT)
            pings_mark_down(lab_, dead)
            await lab_.moved_on(a, b1, dead, other)

    run(main())


def test_a_connected_call_on_a_gateway_marked_down_is_left_alone(tmp_path: Path) -> None:
    """Media may still flow when the OPTIONS pings fail: an answered call is not ended."""

    async def main() -> None:
        async with lab(tmp_path, 1) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            pings_mark_down(lab_, "Gateway1")
            await asyncio.sleep(0.2)
            assert len(lab_.role.b2bua.bridges) == 1
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())
