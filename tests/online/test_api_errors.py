"""Both management APIs answer every error in one shape, ``{"error", "field", "hint"}``, serve
their OpenAPI document at ``/v1/openapi.json`` (every operation with its error answers), and
refuse bad input without changing anything: the tenant's version and tokens stay, and the one
audit row a refused request leaves records the refusal (its 4xx status: who tried what).

Every route of both apps is walked from ``app.routes`` with no token, a read token and an admin
token, so a route added tomorrow is checked the day it lands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import client, online_api, reads, send, writes
from chain_harness import settings_on_free_ports
from fastapi import FastAPI

from hybridvoice.cms.api_errors import shaped
from hybridvoice.cms.guard import Access
from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.dashboard import appliance_app
from hybridvoice.online.models import Site
from hybridvoice.online.store import TenantStore

ALICE = "sip:alice@contoso.com"
#: routes an admin walk with made-up bodies must not take: they end the appliance's service
LEAVES = {("POST", "/v1/leave")}


def _online() -> tuple[TenantStore, FastAPI]:
    store = TenantStore(":memory:")
    store.add_domain("contoso.com")
    store.new_site(Site(name="Amsterdam", edge_fqdn="edge.contoso.com"))
    return store, online_api(store)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[tuple[str, FastAPI, Access]]]:
    store, online = _online()
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path)})
    appliance = Appliance(settings, ApplianceOptions(serve_api=False))
    try:
        yield [("online", online, store.access),
               ("appliance", appliance_app(appliance), appliance.access)]  # fmt: skip
    finally:
        appliance.close()
        store.close()


def _check_shape(answer: httpx.Response, where: object) -> dict[str, Any]:
    assert answer.status_code < 500, (where, answer.text)
    body: dict[str, Any] = answer.json()
    assert isinstance(body.get("error"), str) and body["error"], (where, body)
    assert "field" in body and (body["field"] is None or isinstance(body["field"], str))
    assert isinstance(body.get("hint"), str) and body["hint"], (where, body)
    assert "detail" not in body, (where, body)
    return body


def test_every_error_of_every_route_has_the_shape_for_every_kind_of_token(
    apps: list[tuple[str, FastAPI, Access]],
) -> None:
    async def main() -> None:
        for name, app, access in apps:
            _, read = access.tokens.create("noc", "read")
            _, admin = access.tokens.create("ops", "admin")
            every = [(m, p) for m, p in reads(app) + writes(app) if p.startswith("/v1/")]
            async with client(app) as anonymous:
                for method, path in every:
                    answer = await send(anonymous, method, path, json={})
                    assert answer.status_code == 401
                    assert _check_shape(answer, (name, method, path))["field"] is None
            async with client(app, read) as noc:
                for method, path in writes(app):
                    assert path.startswith("/v1/")  # the dashboard's pages are all reads
                    answer = await send(noc, method, path, json={})
                    assert answer.status_code == 403
                    _check_shape(answer, (name, method, path))
            async with client(app, admin) as ops:
                for method, path in every:
                    if (method, path) in LEAVES:
                        continue
                    for body in ({}, {"bogus": [1]}):
                        answer = await send(ops, method, path, json=body)
                        if answer.status_code >= 400:
                            _check_shape(answer, (name, method, path, body))
                if name == "appliance":  # no mediation role: the appliance's state, a 409
                    drain = await ops.post("/v1/maintenance/enter")
                    assert drain.status_code == 409 and _check_shape(drain, name)
                if name == "appliance":  # the trace a dashboard page links to: an API route
                    async with client(app) as anonymous:
                        trace = await anonymous.get("/v1/calls/x1/trace.pcap")
                        assert trace.status_code == 401 and _check_shape(trace, name)
                        html = {"Accept": "text/html,*/*"}
                        page = await anonymous.get("/v1/calls/x1/trace.pcap", headers=html)
                        assert page.status_code == 401 and "<form" in page.text
                unknown = await ops.get("/v1/no-such-thing")
                assert _check_shape(unknown, name)["error"] == "Not Found"
                wrong = await ops.request("PATCH", "/v1/audit")
                assert wrong.status_code == 405 and _check_shape(wrong, name)

    asyncio.run(main())


def test_a_validation_error_names_the_field() -> None:
    store, app = _online()
    _, admin = store.access.tokens.create("ops", "admin")

    async def main() -> None:
        async with client(app, admin) as ops:
            answer = await ops.post("/v1/tokens", json={"name": "ci", "scope": "root"})
            assert answer.status_code == 422
            assert _check_shape(answer, "tokens")["field"] == "scope"
            answer = await ops.put("/v1/sites/Amsterdam", json={"edge_fqdn": 5})
            assert answer.status_code == 422
            assert _check_shape(answer, "sites")["field"] == "edge_fqdn"
            answer = await ops.get("/v1/audit", params={"limit": "many"})
            assert _check_shape(answer, "audit")["field"] == "query.limit"

    asyncio.run(main())


def test_the_handlers_own_refusals_name_the_field_too() -> None:
    """Not only pydantic's 422s: the checks the handlers make themselves."""
    store = TenantStore(":memory:")
    store.add_domain("contoso.com")
    app = online_api(store)
    _, admin = store.access.tokens.create("ops", "admin")
    refusals = [
        ("PUT", "/v1/users/not-a-uri", {}, "sip_uri"),
        ("PUT", f"/v1/users/{ALICE}", {"password": ""}, "password"),
        ("PUT", f"/v1/users/{ALICE}", {"sip_uri": "sip:bob@contoso.com"}, "sip_uri"),
        ("POST", "/v1/domains", {"name": "not a domain"}, "name"),
        ("GET", "/v1/users/not-a-uri/turn-credentials", None, "sip_uri"),
        ("GET", "/v1/sites/x/update-state?at=2026-12-07T02:00:00", None, "query.at"),
    ]

    async def main() -> None:
        async with client(app, admin) as ops:
            for method, path, body, field in refusals:
                answer = await ops.request(method, path, json=body)
                assert 400 <= answer.status_code < 500, (path, answer.text)
                assert _check_shape(answer, path)["field"] == field, (path, answer.text)

    asyncio.run(main())


def test_the_shape_of_bodies_other_code_makes() -> None:
    assert shaped(404, b'{"detail": "Not Found"}') == {
        "error": "Not Found", "field": None,
        "hint": "GET /v1/openapi.json describes the API's operations, fields and answers",
    }  # fmt: skip
    wrapped = shaped(422, b'{"detail": {"error": "bad", "hint": "h", "problems": [{"key": "K"}]}}')
    assert (wrapped["error"], wrapped["field"], wrapped["hint"]) == ("bad", "K", "h")
    assert shaped(500, b"Internal Server Error")["error"] == "Internal Server Error"
    assert shaped(400, b"")["error"] == "HTTP 400"


BAD_BODIES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/sites", {"name": "Paris", "edge_fqdn": 7}),
    ("POST", "/v1/sites", {"name": "Paris", "edge_fqdn": "edge.contoso.com", "bogus": 1}),
    ("PUT", "/v1/sites/Amsterdam", {"name": "Berlin", "edge_fqdn": "edge.contoso.com"}),
    ("PUT", f"/v1/users/{ALICE}", {"hybrid_pstn_site": "Nowhere", "line_uri": "tel:+1555"}),
    ("PUT", f"/v1/users/{ALICE}", {"password": ""}),
    ("PUT", "/v1/users/not-a-uri", {}),
    ("PATCH", "/v1/hybrid-config", {"bogus": True}),
    ("PATCH", "/v1/network-config", {"media_bypass_enabled": "yes"}),
    ("POST", "/v1/network-config/media-bypass/maybe", {}),
    ("POST", "/v1/domains", {"name": "not a domain"}),
    ("DELETE", "/v1/sites/Nowhere", None),
    ("PUT", "/v1/dialplan/r1", {"pattern": 5}),
    ("POST", "/v1/appliances", {"name": "a"}),
    ("POST", "/v1/tokens", {"name": "", "scope": "admin"}),
    ("DELETE", "/v1/tokens/nope", None),
]


def test_bad_input_changes_nothing() -> None:
    store, app = _online()
    _, admin = store.access.tokens.create("ops", "admin")
    before_tokens = [t.to_json() for t in store.access.tokens.tokens()]

    async def main() -> None:
        async with client(app, admin) as ops:
            for method, path, body in BAD_BODIES:
                version = store.version
                seen = len(store.access.audit.entries(limit=10_000))
                answer = await ops.request(method, path, json=body)
                assert 400 <= answer.status_code < 500, (method, path, answer.text)
                _check_shape(answer, (method, path))
                assert store.version == version, (method, path)
                rows = store.access.audit.entries(limit=10_000)
                new = rows[: len(rows) - seen]
                assert len(new) == 1 and new[0].status == answer.status_code, (method, path)

    asyncio.run(main())
    assert [t.to_json() for t in store.access.tokens.tokens()] == before_tokens


def test_both_apis_serve_their_openapi_document_with_the_error_answers(
    apps: list[tuple[str, FastAPI, Access]],
) -> None:
    async def main() -> None:
        for name, app, access in apps:
            _, read = access.tokens.create("noc", "read")
            async with client(app) as anonymous:
                assert (await anonymous.get("/v1/openapi.json")).status_code == 401
            async with client(app, read) as noc:
                answer = await noc.get("/v1/openapi.json")
                assert answer.status_code == 200, name
                doc = answer.json()
                assert (await noc.get("/openapi.json")).status_code == 404
            assert "ErrorOut" in doc["components"]["schemas"]
            made = doc["paths"]["/v1/tokens"]["post"]["responses"]["201"]["content"]
            assert made["application/json"]["schema"]["$ref"].endswith("/TokenMadeOut")
            assert "sha256" not in doc["components"]["schemas"]["TokenOut"]["properties"]
            assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
            listed = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
            for method, path in reads(app) + writes(app):
                if path.startswith("/v1/"):
                    assert any(m == method for m, _ in listed), (name, method, path)
            if name == "online":  # the answers' models (online/api_answers.py)
                users = doc["paths"]["/v1/users"]["get"]["responses"]["200"]["content"]
                assert users["application/json"]["schema"]["$ref"].endswith("/UsersOut")
                shown = doc["components"]["schemas"]["UserOut"]
                assert shown["additionalProperties"] is False
                assert not any(key.startswith("ha1_md5") for key in shown["properties"])
            for path, item in doc["paths"].items():
                for method, operation in item.items():
                    answers = operation["responses"]
                    assert "401" in answers and "422" in answers, (name, method, path)
                    assert ("403" in answers) == (method not in ("get", "head"))
                    for status, answer in answers.items():
                        if status[0] in "45":
                            schema = answer["content"]["application/json"]["schema"]
                            assert schema == {"$ref": "#/components/schemas/ErrorOut"}

    asyncio.run(main())
