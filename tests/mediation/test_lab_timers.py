"""The lab harness itself: its timers must not decide a test on a loaded machine.

Stop 17's CI failed once on a call the gateway answered at once: the lab's gateways had a
0.5 s no-answer timer (FailoverTimeSeconds), the loaded machine took longer than that to carry
the 200 OK back, and the role failed the call over and answered 503. A late answer must still
connect unless a test asks for a short timer on purpose."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lab_harness import ANSWER, NO_ANSWER, WAIT, lab, run, settle

from hybridvoice.sip.session import Answered


def test_the_no_answer_timer_outlasts_every_harness_wait() -> None:
    assert NO_ANSWER > WAIT


def test_a_slow_gateway_answer_still_connects(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            await asyncio.sleep(0.7)  # what a loaded machine may take to carry the answer
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            assert lab_.role.b2bua.stats.failovers == 0
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())
