"""``GET /metrics`` of the appliance API and the online API: Prometheus text exposition, a
registry per app, values read from live state at scrape time (after a real call through the
lab chain: online proxy, edge, mediation, lab gateway)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from chain_harness import DOMAIN, lab, proxy_of
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, LAB_USERS, Lab
from hybridvoice.cms.tokens import TokenStore
from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.appliance_api import create_appliance_api
from hybridvoice.mgmt.testcall import place_test_call
from hybridvoice.net.proxy import ProxyCounters
from hybridvoice.online.api import create_online_api, proxy_metrics
from hybridvoice.online.models import Appliance as ApplianceRecord
from hybridvoice.online.store import TenantStore

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(response: httpx.Response) -> tuple[set[str], Samples]:
    """The family names and every sample as ``(name, labels) -> value``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    families, samples = set(), {}
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def bearer(tokens: TokenStore, scope: str = "read") -> dict[str, str]:
    """Prometheus scrapes with a read token (``authorization`` in its scrape config)."""
    return {"Authorization": f"Bearer {tokens.create('prometheus', scope)[1]}"}


async def scrape(url: str, token: str | None) -> tuple[set[str], Samples]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        return parse(await client.get("/metrics"))


async def scrape_app(app: object, headers: dict[str, str]) -> tuple[set[str], Samples]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return parse(await client.get("/metrics", headers=headers))


# --- the online API on its own -------------------------------------------------------------------


def test_online_metrics_read_the_store_at_scrape_time() -> None:
    store = TenantStore()
    counters = ProxyCounters()

    def extra() -> list[Metric]:
        probe = GaugeMetricFamily("hybridvoice_online_bindings", "bindings", value=3)
        return [probe, *proxy_metrics([("online", counters)])]

    app = create_online_api(store, metrics=extra)
    read = bearer(store.access.tokens)

    async def main() -> None:
        families, samples = await scrape_app(app, read)
        assert value(samples, "hybridvoice_online_users") == 0
        assert value(samples, "hybridvoice_online_appliances", status="online") == 0
        assert value(samples, "hybridvoice_online_tenant_version") == store.version
        assert value(samples, "hybridvoice_online_bindings") == 3
        assert value(samples, "hybridvoice_proxy_failovers_total", proxy="online") == 0
        assert "hybridvoice_proxy_requests_forwarded" in families

        store.add_domain("contoso.com")
        record = ApplianceRecord(
            name="ams-1", site="Amsterdam", mediation_fqdn="med.contoso.com",
            edge_fqdn="edge.contoso.com", edge_sip_host="192.0.2.10",
        )  # fmt: skip
        store.register_appliance(record, 1000.0)
        counters.requests_forwarded["INVITE"] = 2
        counters.local_responses[407] = 1
        counters.failovers = 1
        counters.provisional_timeouts = 4
        _, samples = await scrape_app(app, read)
        assert value(samples, "hybridvoice_online_appliances", status="online") == 1
        assert value(samples, "hybridvoice_online_appliances", status="offline") == 0
        assert value(samples, "hybridvoice_online_tenant_version") == store.version > 0
        forwarded = "hybridvoice_proxy_requests_forwarded_total"
        assert value(samples, forwarded, proxy="online", method="INVITE") == 2
        assert (
            value(samples, "hybridvoice_proxy_local_responses_total", proxy="online", status="407")
            == 1
        )
        assert value(samples, "hybridvoice_proxy_failovers_total", proxy="online") == 1
        assert value(samples, "hybridvoice_proxy_provisional_timeouts_total", proxy="online") == 4

    asyncio.run(main())


def test_every_app_has_its_own_registry() -> None:
    first, second = TenantStore(), TenantStore()
    second.add_domain("contoso.com")
    apps = create_online_api(first), create_online_api(second)
    assert apps[0].state.metrics is not apps[1].state.metrics

    async def main() -> None:
        (_, a) = await scrape_app(apps[0], bearer(first.access.tokens))
        (_, b) = await scrape_app(apps[1], bearer(second.access.tokens))
        assert value(a, "hybridvoice_online_tenant_version") == first.version
        assert value(b, "hybridvoice_online_tenant_version") == second.version != first.version

    asyncio.run(main())


def test_appliance_metrics_without_roles_show_the_replica_only(tmp_path: Path) -> None:
    from chain_harness import settings_on_free_ports  # noqa: PLC0415

    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path)})
    appliance = Appliance(settings, ApplianceOptions(serve_api=False))
    try:

        async def main() -> None:
            read = bearer(appliance.access.tokens)
            families, samples = await scrape_app(create_appliance_api(appliance), read)
            assert value(samples, "hybridvoice_replica_version") == 0
            assert "hybridvoice_calls_active" not in families  # no mediation role: no family

        asyncio.run(main())
    finally:
        appliance.close()


# --- both APIs after a real call -----------------------------------------------------------------


def test_scrapes_after_a_real_call_through_the_lab(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.appliance.api is not None
            assert up.online is not None and up.online.api is not None
            result = await place_test_call(
                user="alice", domain=DOMAIN, password=LAB_PASSWORD, number=LAB_PSTN_NUMBER,
                proxy=proxy_of(up), duration=0.4, appliance_url=up.appliance.api.url,
                timeout=10.0, api_token=up.admin_token,
            )  # fmt: skip
            assert result.ok, result
            assert result.media_path == "anchored"
            await appliance_side(up)
            await online_side(up)

    run(main(), timeout=60)


async def appliance_side(up: Lab) -> None:
    assert up.appliance is not None and up.appliance.api is not None
    gateway = up.settings.gateways[0].name
    families, s = await scrape(up.appliance.api.url, up.admin_token)
    assert value(s, "hybridvoice_calls_total") == 1
    assert value(s, "hybridvoice_calls_active") == 0
    assert value(s, "hybridvoice_calls_admitted_total") == 1
    assert value(s, "hybridvoice_calls_ended_total", result="answered") == 1
    assert value(s, "hybridvoice_calls_ended_total", result="failed") == 0
    assert value(s, "hybridvoice_call_setup_seconds_count") == 1
    assert value(s, "hybridvoice_call_setup_seconds_bucket", le="+Inf") == 1
    assert 0 < value(s, "hybridvoice_call_setup_seconds_sum") < 60
    assert value(s, "hybridvoice_calls_limit") == up.settings.common.max_concurrent_calls
    assert value(s, "hybridvoice_admission_refusals_total", reason="busy") == 0
    assert value(s, "hybridvoice_admission_refusals_total", reason="maintenance") == 0
    assert value(s, "hybridvoice_maintenance") == 0
    for cause in ("sdp", "internal", "application"):
        assert value(s, "hybridvoice_call_failures_total", cause=cause) == 0
    assert value(s, "hybridvoice_unhandled_exceptions_total") == 0
    assert value(s, "hybridvoice_gateway_up", gateway=gateway) == 1
    transitions = "hybridvoice_gateway_health_transitions_total"
    assert value(s, transitions, gateway=gateway, to="up") == 1
    assert value(s, transitions, gateway=gateway, to="down") == 0
    assert value(s, "hybridvoice_appliance_health_offline") == 0
    assert value(s, "hybridvoice_appliance_health_check_failing", check="listeners") == 0
    assert value(s, "hybridvoice_appliance_health_transitions_total", action="drain") == 0
    assert value(s, "hybridvoice_gateway_calls_total", gateway=gateway) == 1
    assert value(s, "hybridvoice_gateway_calls_failed_total", gateway=gateway) == 0
    assert value(s, "hybridvoice_gateway_calls_active", gateway=gateway) == 0
    assert "hybridvoice_gateway_options_rtt_seconds" in families
    assert value(s, "hybridvoice_relay_calls") == 0
    assert value(s, "hybridvoice_relay_packets_total") > 0
    assert value(s, "hybridvoice_relay_bytes_total") > value(s, "hybridvoice_relay_packets_total")
    assert value(s, "hybridvoice_relay_dropped_packets_total") >= 0
    assert value(s, "hybridvoice_relay_srtp_auth_failures_total") == 0
    assert value(s, "hybridvoice_relay_srtp_replays_total") == 0
    invite = {"method": "INVITE"}
    sent = "hybridvoice_sip_requests_sent_total"
    received = "hybridvoice_sip_requests_received_total"
    assert value(s, received, endpoint="edge", **invite) >= 1
    assert value(s, received, endpoint="mediation_edge_side", **invite) >= 1
    assert value(s, sent, endpoint="mediation_gateway_side", **invite) >= 1
    assert value(s, "hybridvoice_sip_responses_sent_total", endpoint="mediation_edge_side",
                 status="200") >= 1  # fmt: skip
    assert value(s, "hybridvoice_edge_refusals_total") == 0
    assert value(s, "hybridvoice_proxy_requests_forwarded_total", proxy="edge", **invite) >= 1
    assert value(s, "hybridvoice_replica_connected") == 1
    assert value(s, "hybridvoice_replica_lag_seconds") >= 0
    assert up.online is not None
    assert value(s, "hybridvoice_replica_version") == up.online.store.version
    assert value(s, "hybridvoice_cloud_registered") == 1
    assert value(s, "hybridvoice_cloud_heartbeats_total") >= 0

    admin = {"Authorization": f"Bearer {up.admin_token}"}
    async with httpx.AsyncClient(base_url=up.appliance.api.url, headers=admin) as client:
        assert (await client.post("/v1/maintenance/enter")).status_code == 200
        _, s = await scrape(up.appliance.api.url, up.admin_token)
        assert value(s, "hybridvoice_maintenance") == 1
        assert (await client.post("/v1/maintenance/exit")).status_code == 200


async def online_side(up: Lab) -> None:
    assert up.online is not None and up.online.api is not None
    families, s = await scrape(up.online.api.url, up.admin_token)
    assert value(s, "hybridvoice_online_users") == len(LAB_USERS)
    # maintenance was just left: the appliance tells the cloud at once, over HTTP
    deadline = asyncio.get_running_loop().time() + 10
    while value(s, "hybridvoice_online_appliances", status="online") != 1:
        assert asyncio.get_running_loop().time() < deadline, "the appliance never came back online"
        await asyncio.sleep(0.05)
        families, s = await scrape(up.online.api.url, up.admin_token)
    assert value(s, "hybridvoice_online_tenant_version") == up.online.store.version
    assert value(s, "hybridvoice_online_bindings") >= 0
    assert "hybridvoice_online_registrations" in families  # counted by result and status
    assert value(s, "hybridvoice_proxy_requests_forwarded_total", proxy="online",
                 method="INVITE") >= 1  # fmt: skip
    assert value(s, "hybridvoice_proxy_local_responses_total", proxy="online", status="407") >= 1
    assert value(s, "hybridvoice_proxy_failovers_total", proxy="online") == 0
    assert "hybridvoice_proxy_provisional_timeouts" in families
    # the online service's own endpoint: what it took in, and what it dropped by reason
    assert "hybridvoice_sip_dropped" in families
    assert "hybridvoice_sip_messages_delivered" in families
