"""``plan verify``'s run (mgmt.plan_verify) against fake APIs (httpx.MockTransport): the
tenant's media bypass is switched per scenario and put back as it was even when every test
call fails; what it refuses to run on, and why."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from ports import free_port

from hybridvoice.mgmt.plan_verify import CannotVerifyError, VerifyOptions, run_verify

SEGMENTS = {"customer": ["127.0.0.0/16"], "peering": [], "cloud": ["127.64.0.1/32"],
            "edge_relay": ["127.0.0.1"]}  # fmt: skip


class FakeApis:
    """The online service's network config and the appliance's status and segments."""

    def __init__(
        self, segments: dict[str, Any], bypass: bool = False, records: bool = True
    ) -> None:
        self.segments = segments
        self.bypass = bypass
        self.records = records  # False: as `up --state-dir :memory:` (no call records)
        self.patches: list[bool] = []
        self.sip_port = free_port()  # nobody listens: every test call fails

    def online(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.bypass = json.loads(request.content)["media_bypass_enabled"]
            self.patches.append(self.bypass)
        return httpx.Response(200, json={"media_bypass_enabled": self.bypass})

    def appliance(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/status":
            return httpx.Response(200, json={"media_bypass": self.bypass})
        if request.url.path == "/v1/segments":
            sip = {"host": "127.0.0.1", "port": self.sip_port}
            return httpx.Response(200, json={**self.segments, "online_sip": sip})
        if not self.records:
            return httpx.Response(404, json={"error": "this appliance keeps no call records"})
        if request.url.path == "/v1/calls":
            return httpx.Response(200, json=[])
        return httpx.Response(404, json={"error": "no such call"})

    def client(self, base: str) -> httpx.AsyncClient:
        handler = self.online if base.endswith("8470") else self.appliance
        return httpx.AsyncClient(base_url=base, transport=httpx.MockTransport(handler))


def options(apis: FakeApis, **changes: Any) -> VerifyOptions:
    return VerifyOptions(
        online_url="http://127.0.0.1:8470", appliance_url="http://127.0.0.1:8472",
        user="alice", domain="contoso.example", password="pw", number="+15550199",
        timeout=2.0, http=apis.client, internal_address="127.0.0.1", **changes,
    )  # fmt: skip


def test_bypass_is_switched_per_scenario_and_restored_when_every_call_fails() -> None:
    apis = FakeApis(SEGMENTS, bypass=False)
    segments, results = asyncio.run(run_verify(options(apis)))
    assert [r.scenario.name for r in results] == [
        "internal, bypass", "internal, no bypass", "internet client",
    ]  # fmt: skip
    assert all(not r.ok and r.error for r in results)  # no registrar: every call failed
    assert [r.address for r in results] == ["127.0.0.1", "127.0.0.1", "127.128.0.1"]
    assert apis.patches == [True, False, True, False]  # the last one: back as it was
    assert apis.bypass is False and not segments.has_peering
    on = FakeApis(SEGMENTS, bypass=True)
    asyncio.run(run_verify(options(on)))
    assert on.patches[-1] is True and on.bypass is True


@pytest.mark.parametrize(
    ("segments", "said"),
    [
        ({**SEGMENTS, "cloud": ["127.0.0.1/32"]}, "the internal client's address 127.0.0.1 is "
         "not in the customer's network (it is cloud"),
        ({**SEGMENTS, "customer": ["127.0.0.0/8"]}, "no loopback address is outside the "
         "customer's subnets (127.0.0.0/8)"),
        ({**SEGMENTS, "edge_relay": []}, "the edge's media relay is off"),
    ],
)  # fmt: skip
def test_what_verify_cannot_run_on_is_named_before_anything_changes(
    segments: dict[str, Any], said: str
) -> None:
    apis = FakeApis(segments)
    with pytest.raises(CannotVerifyError) as raised:
        asyncio.run(run_verify(options(apis)))
    assert str(raised.value).startswith(said)
    assert raised.value.hint
    assert apis.patches == []  # the tenant untouched


def test_an_appliance_without_call_records_is_named_before_anything_changes() -> None:
    apis = FakeApis(SEGMENTS, records=False)
    with pytest.raises(CannotVerifyError, match="keeps no call records") as raised:
        asyncio.run(run_verify(options(apis)))
    assert "not :memory:" in raised.value.hint
    assert apis.patches == []


def test_a_given_internet_address_inside_the_customer_network_is_refused() -> None:
    apis = FakeApis(SEGMENTS)
    with pytest.raises(CannotVerifyError, match=r"--internet-address 127\.0\.0\.9 is not on "):
        asyncio.run(run_verify(options(apis, internet_address="127.0.0.9")))


def test_an_unreachable_appliance_says_what_to_do() -> None:
    dead = VerifyOptions(
        online_url=f"http://127.0.0.1:{free_port()}", appliance_url=f"http://127.0.0.1:{free_port()}",
        user="alice", domain="contoso.example", password="pw", number="+15550199",
    )  # fmt: skip
    with pytest.raises(CannotVerifyError, match="cannot reach") as raised:
        asyncio.run(run_verify(dead))
    assert "hybridvoice up" in raised.value.hint
