"""``GET /v1/calls/{id}/quality`` on the appliance API: the MOS estimate of a call in progress
from the relay's counters (media anchored by the mediation role), then the recorded one once
the call has ended; 404 naming the call otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from chain_harness import DOMAIN, lab, proxy_of
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER
from hybridvoice.mgmt.testcall import place_test_call

WAIT = 60.0


def test_live_then_recorded_mos(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.appliance.api is not None
            headers = {"Authorization": f"Bearer {up.admin_token}"}
            call = asyncio.create_task(place_test_call(
                user="alice", domain=DOMAIN, password=LAB_PASSWORD, number=LAB_PSTN_NUMBER,
                proxy=proxy_of(up), duration=4.0, timeout=30.0,
            ))  # fmt: skip
            async with httpx.AsyncClient(base_url=up.appliance.api.url, headers=headers) as h:
                live = None
                deadline = asyncio.get_running_loop().time() + WAIT
                while live is None and asyncio.get_running_loop().time() < deadline:
                    active = (await h.get("/v1/calls", params={"result": "active"})).json()
                    for row in active:
                        answer = (await h.get(f"/v1/calls/{row['a_call_id']}/quality")).json()
                        if answer["live"] and answer["mos"] is not None:
                            live = answer
                    if live is None:
                        await asyncio.sleep(0.2)
                assert live is not None, "no live call with relayed media seen"
                assert 1.0 <= live["mos"] <= 4.5 and live["mos_poor"] is False
                assert live["loss_percent"] == 0.0 and live["delay_ms"] >= 20.0
                result = await call
                assert result.ok, result
                ended = live
                while ended["live"] and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.2)  # the BYE reaches the mediation role after
                    ended = (await h.get(f"/v1/calls/{live['a_call_id']}/quality")).json()
                assert ended["live"] is False and ended["mos"] is not None
                record = (await h.get(f"/v1/calls/{live['record_id']}")).json()
                assert record["mos"] == ended["mos"] and record["mos_poor"] is False
                missing = await h.get("/v1/calls/nope/quality")
                assert missing.status_code == 404 and "no call 'nope'" in missing.text
            if not call.done():
                call.cancel()

    run(main(), timeout=120)
