"""Gateways changed while the appliance runs (``hybridvoice gateway add/set/enable/disable``):
the next call uses them, pingers follow, bad values are refused with their settings key and
change nothing, and the change survives a restart (the state directory's gateways.toml)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chain_harness import call_once, lab
from ports import free_port

from hybridvoice.app import LabGateway
from hybridvoice.cms.settings import Gateway
from hybridvoice.cms.template import lab_settings
from hybridvoice.mediation.health import HealthMonitor
from hybridvoice.mediation.trunks import Health, TrunkTable
from hybridvoice.mgmt.appliance import Appliance
from hybridvoice.mgmt.gateways import GATEWAYS_FILE, GatewayChangeError, changed_settings
from hybridvoice.net.endpoint import Endpoint


def test_a_gateway_added_at_run_time_takes_the_next_call_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()

    async def main() -> Appliance:
        async with lab(tmp_path) as up:
            appliance = up.appliance
            assert appliance is not None and appliance.mediation is not None
            mediation = appliance.mediation
            second = await LabGateway.start("TCP", "127.0.0.1", port)
            try:
                added = await appliance.put_gateway("gw2", {"IP": "127.0.0.1", "Port": port,
                    "Protocol": "TCP", "VoiceRoutes": "LocalRoute"}, create=True)  # fmt: skip
                assert added["address"] == f"tcp:127.0.0.1:{port}"
                await appliance.put_gateway("Gateway1", {"Enabled": False}, create=False)
                result = await call_once(up)
                assert result.ok, result
                assert mediation.records is not None and result.call_id is not None
                await mediation.records.aflush()
                record = mediation.records.by_call_id(result.call_id)
                assert record is not None and record.gateway == "gw2"
                assert mediation.health is not None
                pingers = {t.get_name() for t in mediation.health._tasks if not t.done()}
                assert pingers == {"options-gw2"}  # Gateway1's stopped with it
                with pytest.raises(GatewayChangeError) as refused:
                    await appliance.put_gateway("gw2", {"Port": 70000}, create=False)
                assert [str(p) for p in refused.value.problems] == [
                    "gw2.Port: must be 1-65535, got 70000"
                ]
                assert mediation.trunks is not None and mediation.trunks["gw2"].config.port == port
            finally:
                await second.stop()
            return Appliance(up.settings)  # the next start, on the same state directory

    restarted = asyncio.run(main())
    try:
        names = [(g.name, g.enabled, g.port) for g in restarted.settings.gateways]
        assert names[1:] == [("gw2", True, port)] and names[0][1] is False
        saved = restarted.state_dir
        assert saved is not None and (saved / GATEWAYS_FILE).exists()
    finally:
        restarted.close()


def test_trunk_put_keeps_calls_and_restarts_health_when_the_address_moves() -> None:
    gw = Gateway(name="gw1", ip="127.0.0.1", port=5070, voice_routes=())
    trunks = TrunkTable([gw])
    trunks.call_started("gw1")
    trunks.options_answered("gw1", 1.0, 200, 0.5)
    trunks.put(gw.model_copy(update={"max_concurrent_sessions": 2}))
    assert trunks["gw1"].health is Health.UP and trunks["gw1"].active_calls == 1
    trunks.put(gw.model_copy(update={"ip": "127.0.0.2"}))
    assert trunks["gw1"].health is Health.UNKNOWN and trunks["gw1"].active_calls == 1
    assert trunks.gateway_for_source("127.0.0.2") is trunks["gw1"]
    assert trunks.gateway_for_source("127.0.0.1") is None
    trunks.put(Gateway(name="gw2", ip="127.0.0.1", port=5080))
    assert [g.name for g in trunks] == ["gw1", "gw2"]
    assert trunks.gateway_for_source("127.0.0.1") is trunks["gw2"]


def test_an_unreachable_gateway_is_reported_once_without_the_request_line(tmp_path: Path) -> None:
    """``gateway health`` showed "transport error: OPTIONS sip:...;transport=tcp: transport"."""
    port = free_port()  # nothing listens there

    async def main() -> str | None:
        endpoint = Endpoint()
        await endpoint.listen("TCP", "127.0.0.1", 0)
        trunks = TrunkTable([Gateway(name="gw", ip="127.0.0.1", port=port, protocol="TCP")])
        try:
            await HealthMonitor(endpoint, trunks, interval=5.0).probe(trunks["gw"])
        finally:
            await endpoint.close()
        return trunks["gw"].last_options_error

    assert asyncio.run(main()) == "transport error: refused or unreachable"


@pytest.mark.parametrize("loose", ["yes", 1, "true"])
def test_gateway_flags_take_json_booleans_only(loose: object) -> None:
    settings = lab_settings()
    with pytest.raises(GatewayChangeError) as refused:
        changed_settings(settings, "Gateway1", {"Enabled": loose}, create=False)
    assert [p.key for p in refused.value.problems] == ["Gateway1.Enabled"]
    off = changed_settings(settings, "Gateway1", {"enabled": False}, create=False)
    assert off.gateway("Gateway1").enabled is False
    assert off.gateway("Gateway1").port == settings.gateway("Gateway1").port
