"""``Appliance.drain`` (SIGTERM on ``appliance serve``, ``appliance remove``): maintenance at
once, then it waits for the calls in progress, up to the deadline, and says how many were
still up. The mediation role is the real call admission, without sockets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from chain_harness import settings_on_free_ports

from hybridvoice.mediation.routing import CallAdmission
from hybridvoice.mgmt.appliance import Appliance


def _appliance(active: int) -> tuple[Appliance, CallAdmission]:
    settings = settings_on_free_ports()
    appliance = Appliance(settings)
    admission = CallAdmission.from_settings(settings)
    for _ in range(active):
        assert admission.admit() is None
    appliance.mediation = SimpleNamespace(  # type: ignore[assignment]
        admission=admission, enter_maintenance=admission.enter_maintenance
    )
    return appliance, admission


def test_drain_waits_for_calls_in_progress_to_end() -> None:
    appliance, admission = _appliance(2)

    async def main() -> int:
        async def calls_end() -> None:
            while not admission.maintenance:  # the drain began: no new calls
                await asyncio.sleep(0.01)
            assert admission.admit() is not None  # a new call is refused
            admission.release()
            await asyncio.sleep(0.05)
            admission.release()

        ending = asyncio.create_task(calls_end())
        left = await appliance.drain(deadline=60.0, poll=0.01)
        await ending
        return left

    assert asyncio.run(main()) == 0
    assert admission.maintenance and admission.active == 0
    appliance.close()


def test_drain_gives_up_at_the_deadline_and_counts_the_calls_left() -> None:
    appliance, admission = _appliance(3)
    assert asyncio.run(appliance.drain(deadline=0.2, poll=0.01)) == 3
    assert admission.maintenance
    appliance.close()
