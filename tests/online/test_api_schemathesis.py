"""Schemathesis against the OpenAPI documents of both management APIs, in process (ASGI, no
socket), with an admin token: for every operation, requests made from its schema (valid ones
and, in the negative mode, invalid ones) never get a 5xx, and every answer matches the
document (its schema and its content type). A bounded number of examples per operation keeps
the run to a few minutes on a loaded machine; it is marked ``interop`` as it is slow."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import schemathesis.checks as checks
from api_harness import online_api
from chain_harness import call_once, lab, settings_on_free_ports
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from ua_harness import run

from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.dashboard import appliance_app
from hybridvoice.online.models import Site
from hybridvoice.online.store import TenantStore

pytestmark = pytest.mark.interop

EXAMPLES = 15
CHECKS = [checks.not_a_server_error, checks.response_schema_conformance,
          checks.content_type_conformance]  # fmt: skip
#: operations a fuzzer must not call: ``leave`` ends the appliance's membership of its site; a
#: test call sends SIP to the ``proxy`` the request names (any address a fuzzer makes up; its
#: refusals are in tests/mgmt/test_appliance_ops_api.py); the log levels are the test process's
SKIPPED = {"POST /v1/leave", "POST /v1/test-calls", "PUT /v1/logging"}


@pytest.fixture(params=["online", "appliance"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FastAPI, str]]:
    if request.param == "online":
        store = TenantStore(":memory:")
        store.add_domain("contoso.com")
        store.new_site(Site(name="Amsterdam", edge_fqdn="edge.contoso.com"))
        _, admin = store.access.tokens.create("fuzz", "admin")
        try:
            yield online_api(store), admin
        finally:
            store.close()
        return
    settings_ = settings_on_free_ports(Management={"StateDirectory": str(tmp_path)})
    appliance = Appliance(settings_, ApplianceOptions(serve_api=False))
    _, admin = appliance.access.tokens.create("fuzz", "admin")
    try:
        yield appliance_app(appliance), admin
    finally:
        appliance.close()


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_no_operation_answers_5xx_or_off_its_schema(
    api: tuple[FastAPI, str], mode: schemathesis.GenerationMode
) -> None:
    app, admin = api
    headers = {"Authorization": f"Bearer {admin}"}
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app, headers=headers)
    failed: dict[str, str] = {}
    walked = 0
    for loaded in schema.get_all_operations():
        operation = loaded.ok()
        if operation.label in SKIPPED:
            continue
        walked += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # every operation's failure, then one report
            failed[operation.label] = str(exc)[:2000]
    assert walked >= 8
    assert not failed, "\n\n".join(f"{k}:\n{v}" for k, v in failed.items())


#: on a running lab, also no gateway changes (a made-up gateway's address gets OPTIONS pings),
#: no appliance registrations (a made-up MRAS URL is asked for TURN credentials; calls routed to
#: a made-up mediation FQDN)
LIVE_SKIPPED = SKIPPED | {"POST /v1/gateways", "PATCH /v1/gateways/{name}", "POST /v1/appliances"}


def test_a_running_lab_answers_no_5xx_and_in_its_schemas(tmp_path: Path) -> None:
    """Both APIs of a running lab as served (the dashboard's gate in front, the appliance's
    mediation role, gateways, a call in its records and its SIP capture) over loopback HTTP:
    the routes that read live state are fuzzed too."""

    async def main() -> None:
        async with lab(tmp_path) as up:
            assert (await call_once(up)).ok
            assert up.appliance is not None and up.appliance.api is not None
            assert up.online is not None and up.online.api is not None
            headers = {"Authorization": f"Bearer {up.admin_token}"}

            def fuzz_all(url: str) -> dict[str, str]:
                schema = schemathesis.openapi.from_url(f"{url}/v1/openapi.json", headers=headers)
                failed: dict[str, str] = {}
                for mode in schemathesis.GenerationMode:
                    for loaded in schema.get_all_operations():
                        operation = loaded.ok()
                        if operation.label in LIVE_SKIPPED:
                            continue

                        @given(case=operation.as_strategy(generation_mode=mode))
                        @settings(max_examples=8, deadline=None, database=None,
                                  suppress_health_check=list(HealthCheck))  # fmt: skip
                        def fuzz(case: schemathesis.Case) -> None:
                            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

                        try:
                            fuzz()
                        except Exception as exc:  # every operation's failure, then one report
                            failed[f"{mode.value} {operation.label}"] = str(exc)[:2000]
                return failed

            failed = await asyncio.to_thread(fuzz_all, up.appliance.api.url)
            failed |= await asyncio.to_thread(fuzz_all, up.online.api.url)
            assert not failed, "\n\n".join(f"{k}:\n{v}" for k, v in failed.items())

    run(main(), timeout=600)
