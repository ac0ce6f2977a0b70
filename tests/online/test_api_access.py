"""The online API's bearer tokens, scopes and audit log, on every route the app has (walked
from ``app.routes``, so a new route is covered the day it lands), and its strict request
models: a boolean given as a string is refused on every boolean field of every body."""

from __future__ import annotations

import asyncio
import sqlite3
import types
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from api_harness import bearer, client, reads, send, writes
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hybridvoice.cms.audit import MASK
from hybridvoice.cms.guard import TokenIn
from hybridvoice.online.api import create_online_api
from hybridvoice.online.models import DialPlanRule, HybridConfig, NetworkConfig, Site, User
from hybridvoice.online.store import TenantStore

APPLIANCE = {
    "name": "ams-1", "site": "Amsterdam", "mediation_fqdn": "med1.contoso.com",
    "edge_fqdn": "edge.contoso.com", "edge_sip_host": "192.0.2.10", "version": "1.0",
}  # fmt: skip
ALICE = "sip:alice@contoso.com"


def online(path: str | Path = ":memory:") -> tuple[TenantStore, FastAPI]:
    store = TenantStore(path)
    store.add_domain("contoso.com")
    store.new_site(Site(name="Amsterdam", edge_fqdn="edge.contoso.com"))
    return store, create_online_api(store)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


# --- who may do what ---------------------------------------------------------------------------


def test_every_route_refuses_a_request_without_a_token_or_with_a_bad_one() -> None:
    store, app = online()
    every = reads(app) + writes(app)
    assert len(every) > 30  # the walk found the API, not an empty list

    async def main() -> None:
        async with client(app) as anonymous:
            for method, path in every:
                answer = await send(anonymous, method, path, json={})
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
                assert "hybridvoice token create" in answer.json()["hint"]
        _, good = store.access.tokens.create("ops", "admin")
        for bad in (good[:-1] + "x", "hv_00000000_" + "A" * 43, "garbage", ""):
            async with client(app, bad) as forged:
                for method, path in every:
                    answer = await send(forged, method, path, json={})
                    assert answer.status_code == 401, (bad, method, path)
                    if bad:
                        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]

    run(main)
    assert store.access.audit.entries() == []  # nobody was let in, nothing was changed


def test_a_read_token_reads_and_is_refused_every_write_with_a_hint() -> None:
    store, app = online()
    _, token = store.access.tokens.create("dashboard", "read")
    version = store.version

    async def main() -> None:
        async with client(app, token) as http:
            for method, path in reads(app):
                answer = await send(http, method, path)
                assert answer.status_code not in (401, 403), (method, path, answer.text)
            for method, path in writes(app):
                answer = await send(http, method, path, json={})
                assert answer.status_code == 403, (method, path, answer.text)
                assert "scope admin" in answer.json()["hint"]
                assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]

    run(main)
    assert store.version == version  # nothing changed
    refused = store.access.audit.entries(limit=1000)
    assert len(refused) == len(writes(app)) and {e.status for e in refused} == {403}
    assert {e.token_name for e in refused} == {"dashboard"}


def test_an_admin_token_writes_and_every_write_leaves_an_audit_row() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "admin")

    async def main() -> None:
        async with client(app, token) as http:
            for method, path in writes(app):
                answer = await send(http, method, path, json={})
                assert answer.status_code not in (401, 403), (method, path, answer.text)

    run(main)
    rows = store.access.audit.entries(limit=1000)
    assert len(rows) == len(writes(app))  # refused or not, every write is on record
    assert {(r.token_name, r.source) for r in rows} == {("ops", "192.0.2.7")}


def test_a_revoked_token_is_refused() -> None:
    store, app = online()
    row, token = store.access.tokens.create("leaver", "admin")

    async def main() -> None:
        async with client(app, token) as http:
            assert (await http.get("/v1/users")).status_code == 200
            revoked = await http.delete(f"/v1/tokens/{row.id}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
            assert (await http.get("/v1/users")).status_code == 401
            assert (await http.put(f"/v1/users/{ALICE}", json={})).status_code == 401

    run(main)


def test_tokens_are_made_listed_and_revoked_over_the_api_and_shown_once() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "admin")

    async def main() -> None:
        async with client(app, token) as http:
            made = await http.post("/v1/tokens", json={"name": "ci", "scope": "read"})
            assert made.status_code == 201
            secret, token_id = made.json()["token"], made.json()["id"]
            listed = (await http.get("/v1/tokens")).json()["tokens"]
            assert [t["name"] for t in listed] == ["ops", "ci"]
            assert all("token" not in t and "sha256" not in t for t in listed)
            async with client(app, secret) as ci:
                assert (await ci.get("/v1/sites")).status_code == 200
            assert (await http.delete(f"/v1/tokens/{token_id}")).status_code == 200
            assert (await http.delete("/v1/tokens/nope")).status_code == 404
            bad = await http.post("/v1/tokens", json={"name": "x", "scope": "root"})
            assert bad.status_code == 422 and "scope" in bad.json()["error"]
            async with client(app, secret) as ci:
                assert (await ci.get("/v1/sites")).status_code == 401

    run(main)
    done = [(e.operation, e.status) for e in store.access.audit.entries() if e.status < 400]
    assert done == [("token.revoke", 200), ("token.create", 201)]
    refused = [(e.operation, e.status) for e in store.access.audit.entries() if e.status >= 400]
    assert refused == [("POST /v1/tokens", 422), ("DELETE /v1/tokens/{token_id}", 404)]


def test_an_appliance_token_registers_and_beats_for_its_own_appliance_only() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ams-1", "appliance")

    async def main() -> None:
        async with client(app, token) as http:
            assert (await http.post("/v1/appliances", json=APPLIANCE)).status_code == 201
            beat = await http.post("/v1/appliances/ams-1/heartbeat", json={"status": "online"})
            assert beat.status_code == 200
            assert (await http.get("/v1/changes", params={"since": 0})).status_code == 200
            other = await http.post("/v1/appliances", json={**APPLIANCE, "name": "ams-2"})
            assert other.status_code == 403 and "own token" in other.json()["hint"]
            assert (await http.post("/v1/appliances/ams-2/heartbeat")).status_code == 403
            assert (await http.put(f"/v1/users/{ALICE}", json={})).status_code == 403
            assert (await http.delete("/v1/appliances/ams-1")).status_code == 403

    run(main)
    assert store.get_appliance("ams-2") is None


# --- the audit log -----------------------------------------------------------------------------


def test_a_password_change_is_audited_with_who_what_before_after_and_no_secret(
    tmp_path: Path,
) -> None:
    db = tmp_path / "online.db"
    store, app = online(db)
    row, token = store.access.tokens.create("helpdesk", "admin")
    password = "correct-horse-battery-staple"

    async def main() -> None:
        async with client(app, token) as http:
            await http.put(f"/v1/users/{ALICE}", json={"line_uri": "tel:+31201234567"})
            changed = await http.put(f"/v1/users/{ALICE}", json={"line_uri": "tel:+31201234567",
                                                                 "password": password})  # fmt: skip
            assert changed.status_code == 200
            seen = (await http.get("/v1/audit", params={"operation": "user", "limit": 1})).json()
            assert seen["entries"][0]["after"]["has_password"] is True

    run(main)
    entry = store.access.audit.entries(operation="user.set", limit=1)[0]
    assert (entry.token_id, entry.token_name, entry.source) == (row.id, "helpdesk", "192.0.2.7")
    assert (entry.operation, entry.target, entry.status) == ("user.set", ALICE, 200)
    assert entry.before["has_password"] is False and entry.after["has_password"] is True
    assert entry.before["line_uri"] == entry.after["line_uri"] == "tel:+31201234567"
    assert entry.at > 0
    store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert password.encode() not in stored and token.encode() not in stored
    assert token.split("_")[2].encode() not in stored  # not even the secret part
    hashes = sqlite3.connect(db).execute("SELECT sha256 FROM tokens").fetchall()
    assert len(hashes[0][0]) == 64


def test_secrets_in_a_refused_body_are_masked_in_the_audit_log() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "admin")

    async def main() -> None:
        async with client(app, token) as http:
            refused = await http.put(f"/v1/users/{ALICE}", json={"password": "s3cret", "x": 1})
            assert refused.status_code == 422

    run(main)
    entry = store.access.audit.entries(limit=1)[0]
    assert entry.status == 422 and entry.after == {"password": MASK, "x": 1}


def test_a_steady_heartbeat_is_not_a_change_but_a_new_status_is() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ams-1", "appliance")

    async def main() -> None:
        async with client(app, token) as http:
            await http.post("/v1/appliances", json=APPLIANCE)
            for _ in range(5):
                await http.post("/v1/appliances/ams-1/heartbeat", json={"status": "online"})
            await http.post("/v1/appliances/ams-1/heartbeat", json={"status": "maintenance"})

    run(main)
    entries = store.access.audit.entries()
    assert [e.operation for e in entries] == ["appliance.status", "appliance.register"]
    assert (entries[0].before["status"], entries[0].after["status"]) == ("online", "maintenance")


# --- strict booleans, short 422s ---------------------------------------------------------------

#: the models behind the routes that take a JSON object and build the model themselves
JSON_BODIES: dict[tuple[str, str], tuple[type[BaseModel], dict[str, Any]]] = {
    ("POST", "/v1/sites"): (Site, {"name": "Paris", "edge_fqdn": "edge.contoso.com"}),
    ("PUT", "/v1/sites/{name}"): (Site, {"edge_fqdn": "edge.contoso.com"}),
    ("PUT", "/v1/users/{sip_uri}"): (User, {}),
    ("PUT", "/v1/hybrid-config"): (HybridConfig, {}),
    ("PATCH", "/v1/hybrid-config"): (HybridConfig, {}),
    ("PUT", "/v1/network-config"): (NetworkConfig, {}),
    ("PATCH", "/v1/network-config"): (NetworkConfig, {}),
    ("PUT", "/v1/dialplan/{name}"): (DialPlanRule, {"pattern": r"(\d+)", "translation": "+$1"}),
}
#: a valid body of each model FastAPI validates itself
VALID: dict[str, dict[str, Any]] = {
    "ApplianceIn": APPLIANCE, "DomainIn": {"name": "contoso.com"}, "HeartbeatIn": {},
    "BypassIn": {}, "TokenIn": {"name": "x"},
}  # fmt: skip


def _bool_fields(model: type[BaseModel]) -> list[str]:
    def is_bool(annotation: Any) -> bool:
        if annotation is bool:
            return True
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            return bool in typing.get_args(annotation)
        return False

    return [name for name, f in model.model_fields.items() if is_bool(f.annotation)]


def _bodies(app: FastAPI) -> list[tuple[str, str, type[BaseModel], dict[str, Any]]]:
    """(method, path, model, a valid body) of every route that takes a body."""
    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        method = sorted(route.methods)[0]
        annotation = route.body_field.field_info.annotation
        model = next((a for a in typing.get_args(annotation) or (annotation,)
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)  # fmt: skip
        if model is None:  # a JSON object the route builds its model from
            assert (method, route.path) in JSON_BODIES, f"{method} {route.path}: add it above"
            model, body = JSON_BODIES[(method, route.path)]
        else:
            body = VALID[model.__name__]
        out.append((method, route.path.replace("{sip_uri}", ALICE).replace("{name}", "Paris")
                    .replace("{action}", "enable"), model, body))  # fmt: skip
    return out


def test_every_boolean_field_of_every_request_body_refuses_a_string() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "admin")
    bodies = _bodies(app)
    checked = []

    async def main() -> None:
        async with client(app, token) as http:
            for method, path, model, body in bodies:
                for field in _bool_fields(model):
                    for text in ("yes", "true", "1"):
                        answer = await http.request(method, path, json={**body, field: text})
                        assert answer.status_code == 422, (method, path, field, text, answer.text)
                        assert field in [d["field"] for d in answer.json()["details"]]
                    checked.append((path, field))

    run(main)
    assert {f for _, f in checked} >= {"media_bypass_enabled", "always_bypass",
                                       "enterprise_voice_enabled", "use_onprem_dialplan",
                                       "international_calls_allowed"}  # fmt: skip
    assert store.network_config().media_bypass_enabled is False
    assert TokenIn.model_config.get("strict") is True


def test_a_422_never_echoes_a_large_value() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "admin")
    huge = "A" * 200_000

    async def main() -> None:
        async with client(app, token) as http:
            answers = [
                await http.post("/v1/sites", json={"name": huge, "edge_fqdn": "e.contoso.com"}),
                await http.post("/v1/sites", json={"name": "P", "edge_fqdn": "e.c", huge: 1}),
                await http.put("/v1/network-config", json={"media_bypass_enabled": huge}),
                await http.post("/v1/domains", json={"name": huge}),
                await http.put("/v1/sites/Paris", json={"name": huge, "edge_fqdn": "e.c"}),
                await http.get("/v1/changes", params={"since": huge[:60_000]}),
                await http.post("/v1/sites", json={f"k{i}": i for i in range(5000)}),
            ]
            for answer in answers:
                assert answer.status_code in (400, 422), answer.text[:300]
                assert len(answer.content) < 8000, answer.text[:300]
                assert "A" * 300 not in answer.text
            short = await http.put("/v1/network-config", json={"always_bypass": "maybe"})
            assert short.json()["details"][0]["input"] == "maybe"  # short: quoted back

    run(main)


def test_models_are_strict_about_numbers_too() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "admin")

    async def main() -> None:
        async with client(app, token) as http:
            rule = {"pattern": r"(\d+)", "translation": "+$1", "priority": "5"}
            answer = await http.put("/v1/dialplan/r", json=rule)
            assert answer.status_code == 422 and answer.json()["details"][0]["field"] == "priority"
            ok = await http.put("/v1/dialplan/r", json={**rule, "priority": 5})
            assert ok.status_code == 200

    run(main)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "bearer  ", "Token abc"])
def test_other_authorization_schemes_are_refused(header: str) -> None:
    _, app = online()

    async def main() -> None:
        async with client(app) as http:
            answer = await http.get("/v1/users", headers={"Authorization": header})
            assert answer.status_code == 401

    run(main)


def test_the_bearer_scheme_is_case_insensitive() -> None:
    store, app = online()
    _, token = store.access.tokens.create("ops", "read")

    async def main() -> None:
        async with client(app) as http:
            answer = await http.get("/v1/users", headers={"Authorization": f"bearer {token}"})
            assert answer.status_code == 200, answer.text

    run(main)
    assert bearer(token)["Authorization"].endswith(token)
