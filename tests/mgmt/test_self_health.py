"""The appliance's own health monitor: the core's back-off schedule on a fake clock (CCE: 10 s x
3, then doubling up to 1 h), and the whole chain: a role's SIP listener closed makes the
appliance drain and go offline at the cloud, and it comes back online when the listener is
open again."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from api_harness import bearer
from chain_harness import lab, settings_on_free_ports
from ua_harness import run

from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.mediation.routing import CallAdmission
from hybridvoice.mgmt.cli_health import health_line
from hybridvoice.mgmt.self_health import CheckResult, SelfHealth, backoff
from hybridvoice.mgmt.self_health_io import SelfHealthMonitor
from hybridvoice.pki import PkiStore

OK = [CheckResult("roles", True), CheckResult("listeners", True)]
BAD = [CheckResult("roles", True), CheckResult("listeners", False, "not accepting: x:1")]


def test_backoff_schedule_is_the_originals_exactly() -> None:
    core = SelfHealth(interval=60, retry=10, retries=3, cap=3600)
    v = core.checked(OK, 0.0)
    assert (v.action, v.state, v.next_check) == ("none", "online", 60.0)
    v = core.checked(BAD, 60.0)
    assert (v.action, v.state, v.next_check) == ("drain", "offline", 70.0)
    assert [r.name for r in v.failing] == ["listeners"]
    now, deadlines = 70.0, []
    for _ in range(13):
        v = core.checked(BAD, now)
        assert v.action == "none" and v.state == "offline"
        deadlines.append(v.next_check - now)
        now = v.next_check
    assert deadlines == [10, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]
    v = core.checked(OK, now)
    assert (v.action, v.state, v.next_check) == ("restore", "online", now + 60)
    assert core.failures == 0 and core.transitions == {"drain": 1, "restore": 1}
    v = core.checked(BAD, now + 60)  # a new failure starts the schedule from the beginning
    assert v.next_check == now + 70


def test_backoff_function_and_bad_arguments() -> None:
    assert [backoff(k, 10, 3, 3600) for k in (1, 2, 3, 4, 5, 11, 12)] == [
        10, 10, 10, 20, 40, 2560, 3600,
    ]  # fmt: skip
    assert backoff(1, 10, 0, 3600) == 20  # no plain retries: doubling at once
    with pytest.raises(ValueError, match="failures"):
        backoff(0, 10, 3, 3600)
    with pytest.raises(ValueError, match="interval"):
        SelfHealth(interval=0)


def test_a_failing_first_check_drains_at_once() -> None:
    core = SelfHealth(interval=5, retry=10)
    v = core.checked(BAD, 3.0)
    assert (v.action, v.state, v.next_check) == ("drain", "offline", 13.0)
    assert core.checked(OK, 13.0).action == "restore"


def test_health_monitor_settings_name_key_and_reason() -> None:
    raw = {"Common": {"SIPDomains": "a.com", "SiteName": "x"}, "HealthMonitor": {"Retries": -1}}
    with pytest.raises(SettingsError, match=r"HealthMonitor\.Retries: input should be greater"):
        parse_settings(raw)


def test_a_closed_listener_takes_the_appliance_offline_and_back(tmp_path: Path) -> None:
    settings = settings_on_free_ports(
        Online={"HeartbeatSeconds": 60},
        HealthMonitor={"IntervalSeconds": 0.5, "RetrySeconds": 0.5, "MaxRetrySeconds": 1},
    )

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            appliance, online = up.appliance, up.online
            assert appliance is not None and online is not None and up.admin_token
            assert appliance.self_health is not None and appliance.mediation is not None
            assert appliance.api is not None

            async def cloud_sees(status: str) -> None:
                for _ in range(600):  # 30 s: generous for a loaded machine
                    seen = online.store.get_appliance(appliance.name)
                    if seen is not None and seen.status == status:
                        return
                    await asyncio.sleep(0.05)
                pytest.fail(f"the cloud never saw the appliance {status}")

            await cloud_sees("online")
            while appliance.self_health.core.last_check is None:
                await asyncio.sleep(0.05)
            assert appliance.self_health.core.state == "online"

            edge = appliance.edge
            assert edge is not None and edge.endpoint is not None
            listener = next(t for t in edge.endpoint.transports if t.kind == "TCP")
            host, port = listener.local[0], listener.local[1]
            listener.close()  # the fault: the edge's SIP listener stops accepting
            await cloud_sees("offline")
            assert appliance.mediation.admission.maintenance  # drained: no new calls
            admin = bearer(up.admin_token)
            async with httpx.AsyncClient(base_url=appliance.api.url, headers=admin) as http:
                health = (await http.get("/v1/status")).json()["health"]
            assert health["state"] == "offline"
            assert [f["check"] for f in health["failing"]] == ["listeners"]
            assert f"{host}:{port}" in health["failing"][0]["detail"]
            assert health["next_check_in_seconds"] <= 1.0

            await edge.endpoint.listen("TCP", host, port)  # the fault cleared
            await cloud_sees("online")
            assert not appliance.mediation.admission.maintenance
            assert appliance.self_health.core.transitions == {"drain": 1, "restore": 1}

    run(main(), timeout=120)


class FakeLink:
    def __init__(self) -> None:
        self.beats = 0

    def beat_now(self) -> None:
        self.beats += 1


def test_a_certificate_expiring_on_the_fake_clock_drains_and_renewal_restores(
    tmp_path: Path,
) -> None:
    """The adapter's checks on a stand-in appliance: the wall clock moves past the site
    certificate's notAfter (2 years), the appliance is drained and the cloud told; back
    before it (a renewed certificate), restored. An admin's maintenance is left alone."""
    store = PkiStore(tmp_path / "pki")
    start = datetime.datetime.now(datetime.UTC)
    ca = store.ensure_ca("AMS", start)
    store.ensure_server(ca, "appliance", start, dns_names=["ms.contoso.test"])
    admission = CallAdmission(10)
    mediation = SimpleNamespace(
        admission=admission, trunks=None, edge_endpoint=None, gateway_endpoint=None,
        enter_maintenance=admission.enter_maintenance, exit_maintenance=admission.exit_maintenance,
    )  # fmt: skip
    link = FakeLink()
    appliance = SimpleNamespace(
        edge=SimpleNamespace(endpoint=None), mediation=mediation, link=link,
        options=SimpleNamespace(pki_dir=store.directory),
    )  # fmt: skip
    wall = [start]
    clock = [100.0]

    async def main() -> None:
        monitor = SelfHealthMonitor(
            appliance,  # type: ignore[arg-type]
            SelfHealth(interval=5, retry=10),
            clock=lambda: clock[0],
            wall=lambda: wall[0],
        )
        assert (await monitor.check_once()).action == "none"
        wall[0] = start + datetime.timedelta(days=800)  # past the server certificate
        verdict = await monitor.check_once()
        assert (verdict.action, verdict.next_check) == ("drain", 110.0)
        assert verdict.failing[0].name == "certificates"
        assert "expired: cert:appliance" in verdict.failing[0].detail
        assert admission.maintenance and monitor.drained and link.beats == 1
        assert monitor.status()["failing"][0]["check"] == "certificates"
        wall[0] = start
        clock[0] = 110.0
        assert (await monitor.check_once()).action == "restore"
        assert not admission.maintenance and link.beats == 2
        admission.enter_maintenance()  # the admin's maintenance
        wall[0] = start + datetime.timedelta(days=800)
        assert (await monitor.check_once()).action == "drain" and not monitor.drained
        wall[0] = start
        assert (await monitor.check_once()).action == "restore"
        assert admission.maintenance  # still the admin's

    asyncio.run(main())


def test_status_line_says_state_failing_checks_and_next_retry() -> None:
    online = {"state": "online", "last_check_seconds_ago": 2.1, "failing": [],
              "failures_in_a_row": 0, "next_check_in_seconds": 7.9}  # fmt: skip
    assert health_line(online) == "online, last check 2.1 s ago, next in 7.9 s"
    offline = {**online, "state": "offline", "failures_in_a_row": 4,
               "failing": [{"check": "listeners", "detail": "not accepting: 127.0.0.1:5061"}],
               "next_check_in_seconds": 20}  # fmt: skip
    assert health_line(offline) == (
        "OFFLINE (listeners: not accepting: 127.0.0.1:5061), last check 2.1 s ago, "
        "4 failures in a row, next retry in 20 s"
    )
