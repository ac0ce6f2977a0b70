"""A gateway that calls (not OPTIONS pings) mark down moves the calls ringing on it too.

With ``SendSipOptions = false`` (the default for many gateways, and SIPp gateways in the
interop tests), or between two pings, the first to see a dead gateway is a call: its INVITE
times out (Timer B, the local 408) or cannot be sent (a refused TCP connection), which is a
passive miss (``TrunkTable.invite_failed``). With ``UnhealthyAfterMissed = 1`` (or after
enough misses) that miss alone marks the gateway down, and the pings that follow find it
already down, so they report no change. A call that was ringing on that gateway (a 180 has
stopped its fast-failover timer, RFC 3261 §17.1.1.2: Timer B too) then rang until its caller
gave up: only the pinger's changes reached the B2BUA. Now the trunk table reports the changes
calls see as well (``TrunkTable.on_change``), on the next loop turn (the call that saw it is
still in its own step), and the ringing call goes to the next gateway.

Main fixed the same defect meanwhile by reporting such a change at the end of the probe the
passive miss wakes; that probe can take ``OptionsTimeoutSeconds`` (the interval, 60 s by
default) when the gateway is silent. Both paths take the change from the table
(``TrunkTable.take_changes``), so it is reported once, by whichever comes first. The tests
here stop the pinger first: the change must not wait for a probe.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest
from lab_harness import WAIT, lab, run

from hybridvoice.cms.settings import Gateway
from hybridvoice.mediation.health import HealthMonitor
from hybridvoice.mediation.trunks import Health, HealthChange, TrunkTable
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.sip.session import Ringing


def test_a_call_ringing_on_a_gateway_that_a_call_marks_down_goes_to_the_next(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with lab(tmp_path, 2) as lab_:
            role = lab_.role
            trunks, health = role.trunks, role.health
            assert trunks is not None and health is not None
            await health.stop()  # no probe reports it (a silent gateway's takes its timeout)
            a = lab_.call_out()
            b1, dead, other = await lab_.first_gateway_leg()
            b1.ring()
            await a.wait_for(Ringing, WAIT)
            now = asyncio.get_running_loop().time()
            change = None
            while change is None:  # another call's INVITEs to it fail (passive misses)
                change = trunks.invite_failed(dead, now, "transport error")
            assert change.health is Health.DOWN
            # nothing else is told: the table reports the change itself
            await lab_.moved_on(a, b1, dead, other)

    run(main())


def test_a_change_a_call_saw_is_reported_after_the_calls_own_step(tmp_path: Path) -> None:
    """The call whose INVITE failed is still giving up its attempt when the table sees the
    change: the monitor reports it on the next loop turn, never from inside that step."""

    async def main() -> None:
        async with lab(tmp_path, 1) as lab_:
            trunks, health = lab_.role.trunks, lab_.role.health
            assert trunks is not None and isinstance(health, HealthMonitor)
            await health.stop()  # no probe takes the changes first
            heard: list[HealthChange] = []
            health.on_change = heard.append
            now = asyncio.get_running_loop().time()
            changes = []
            while not changes or changes[-1] is None:
                changes.append(trunks.invite_failed("Gateway1", now, "408 (no answer)"))
            assert heard == []  # not from inside the call's step
            await asyncio.sleep(0)
            assert heard == [changes[-1]]
            assert heard[0].health is Health.DOWN and "408 (no answer)" in heard[0].reason
            up = trunks.invite_answered("Gateway1", now + 1, 200)
            assert up is not None and up.health is Health.UP
            await asyncio.sleep(0)
            assert heard == [changes[-1], up]

    run(main())


def test_a_failing_listener_is_logged_and_the_other_changes_still_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        gateways = [Gateway(name=f"Gateway{n}", ip=f"10.0.0.{n}", voice_routes=("All",))
                    for n in (1, 2)]  # fmt: skip
        trunks = TrunkTable(gateways, unhealthy_after=1)
        heard: list[str] = []

        def listener(change: HealthChange) -> None:
            heard.append(change.gateway)
            if change.gateway == "Gateway1":
                raise RuntimeError("a bug in a listener")

        HealthMonitor(cast(Endpoint, None), trunks, on_change=listener)  # not started
        for name in ("Gateway1", "Gateway2"):
            trunks.invite_failed(name, 1.0, "408 (no answer)")
        for _ in range(3):
            await asyncio.sleep(0)
        assert heard == ["Gateway1", "Gateway2"]
        assert "Gateway1 down: reporting the change failed" in caplog.text

    asyncio.run(main())
