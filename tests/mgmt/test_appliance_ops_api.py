"""The appliance API's site CA and test-call operations (``ca status``, ``ca export-root``,
``ca renew`` and ``test-call`` for an admin who reaches the appliance only through its API):
what they answer, their refusals (naming the field, changing nothing), and a real test call
placed by a running lab's appliance."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from api_harness import bearer, client
from chain_harness import DOMAIN, LAB_PASSWORD, lab, proxy_of, settings_on_free_ports
from fastapi import FastAPI
from typer.testing import CliRunner, Result
from ua_harness import run

from hybridvoice.cli import app as cli_app
from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.appliance_api import create_appliance_api
from hybridvoice.net.http import serve_asgi
from hybridvoice.pki import PkiStore


@pytest.fixture
def pki_app(tmp_path: Path) -> Iterator[tuple[Appliance, FastAPI, str, PkiStore]]:
    store = PkiStore(tmp_path / "pki")
    now = datetime.now(UTC)
    ca = store.ensure_ca("Amsterdam", now)
    store.ensure_server(ca, "mediation", now, dns_names=["med1.contoso.com"])
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path / "state")})
    appliance = Appliance(settings, ApplianceOptions(serve_api=False, pki_dir=tmp_path / "pki"))
    _, admin = appliance.access.tokens.create("ops", "admin")
    try:
        yield appliance, create_appliance_api(appliance), admin, store
    finally:
        appliance.close()


def test_certificates_root_and_renewal(pki_app: tuple[Appliance, FastAPI, str, PkiStore]) -> None:
    appliance, app, admin, store = pki_app

    async def main() -> None:
        async with client(app, admin) as ops:
            listed = (await ops.get("/v1/ca/certificates")).json()
            names = {c["name"] for c in listed["certificates"]}
            assert {"ca", "cert:mediation"} <= names
            assert all(c["days_left"] > 30 and not c["warn"] for c in listed["certificates"])
            root = (await ops.get("/v1/ca/root")).json()["root"]
            assert root.startswith("-----BEGIN CERTIFICATE-----")
            before = store.load_credential("mediation").generation
            renewed = await ops.post("/v1/ca/renew", json={"name": "mediation"})
            assert renewed.status_code == 200, renewed.text
            [row] = renewed.json()["renewed"]
            assert row["name"] == "mediation" and row["generation"] == before + 1
            assert store.load_credential("mediation").generation == before + 1

    asyncio.run(main())
    entry = appliance.access.audit.entries(limit=1)[0]
    assert (entry.operation, entry.target, entry.status) == ("ca.renew", "mediation", 200)
    assert entry.after == {"renewed": ["mediation"]}


def test_refusals_name_the_field_and_change_nothing(
    pki_app: tuple[Appliance, FastAPI, str, PkiStore],
) -> None:
    _, app, admin, store = pki_app
    generation = store.load_credential("mediation").generation
    root = store.root_pem()
    refused = [
        ("/v1/ca/renew", {"name": "nope"}, 404, "name"),
        ("/v1/ca/renew", {"name": "mediation", "ca": True}, 422, "ca"),
        ("/v1/ca/renew", {"ca": "yes"}, 422, "ca"),
        ("/v1/ca/renew", {"bogus": 1}, 422, "bogus"),
        ("/v1/test-calls", {"from": "alice", "to": "+1555"}, 422, "from"),
        ("/v1/test-calls", {"from": "a@b.c", "to": "+1", "proxy": "pigeon:x"}, 422, "proxy"),
        ("/v1/test-calls", {"from": "a@b.c", "to": "+1", "duration": 3600}, 422, "duration"),
        ("/v1/test-calls", {"to": "+1555"}, 422, "from"),
    ]

    async def main() -> None:
        async with client(app, admin) as ops:
            for path, body, status, field in refused:
                answer = await ops.post(path, json=body)
                assert answer.status_code == status, (body, answer.text)
                shaped = answer.json()
                assert shaped["field"] == field and shaped["hint"], (body, shaped)

    asyncio.run(main())
    assert store.load_credential("mediation").generation == generation
    assert store.root_pem() == root


def test_an_appliance_without_a_site_ca_says_so(tmp_path: Path) -> None:
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path)})
    appliance = Appliance(settings, ApplianceOptions(serve_api=False))
    _, admin = appliance.access.tokens.create("ops", "admin")
    app = create_appliance_api(appliance)

    async def main() -> None:
        async with client(app, admin) as ops:
            for answer in (await ops.get("/v1/ca/certificates"),
                           await ops.post("/v1/ca/renew", json={})):  # fmt: skip
                assert answer.status_code == 409
                assert "no site CA" in answer.json()["error"]

    try:
        asyncio.run(main())
    finally:
        appliance.close()


def test_the_appliance_places_a_test_call_and_reports_it_as_json(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.appliance.api is not None and up.admin_token
            proxy = proxy_of(up)
            body = {"from": f"alice@{DOMAIN}", "to": "+15550199", "password": LAB_PASSWORD,
                    "proxy": f"udp:{proxy.host}:{proxy.port}", "duration": 0.4}  # fmt: skip
            async with httpx.AsyncClient(
                base_url=up.appliance.api.url, headers=bearer(up.admin_token), timeout=60
            ) as http:
                answer = await http.post("/v1/test-calls", json=body)
                assert answer.status_code == 200, answer.text
                result = answer.json()
                assert result["ok"], result
                assert result["status"] == 200 and result["rtp_received"] > 0
                assert any("INVITE" in line for line in result["ladder"])
                wrong = await http.post("/v1/test-calls", json={**body, "password": "wrong"})
                assert wrong.status_code == 200 and not wrong.json()["ok"]
                assert wrong.json()["error"]
                log = (await http.get("/v1/audit", params={"operation": "test-call"})).json()
                assert len(log["entries"]) == 2

    run(main(), timeout=120)


def test_the_cli_renews_and_lists_a_remote_appliances_certificates(
    pki_app: tuple[Appliance, FastAPI, str, PkiStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ca status --appliance URL`` and ``ca renew --appliance URL``: the same operations as
    on the machine itself, through the appliance's API (one implementation, two front ends)."""
    _, app, admin, store = pki_app
    monkeypatch.setenv("HYBRIDVOICE_TOKEN", admin)
    runner = CliRunner()
    before = store.load_credential("mediation").generation

    async def main() -> tuple[Result, Result, Result]:
        server = await serve_asgi(app, "127.0.0.1", 0)
        try:

            def cli(*args: str) -> Result:
                return runner.invoke(cli_app, ["ca", *args, "--appliance", server.url])

            listed = await asyncio.to_thread(cli, "status", "--json")
            renewed = await asyncio.to_thread(cli, "renew", "mediation")
            unknown = await asyncio.to_thread(cli, "renew", "nope")
            return listed, renewed, unknown
        finally:
            await server.stop()

    listed, renewed, unknown = asyncio.run(main())
    assert listed.exit_code == 0, listed.output
    assert {"ca", "cert:mediation"} <= {row["name"] for row in json.loads(listed.stdout)}
    assert renewed.exit_code == 0 and f"generation {before + 1}" in renewed.stdout
    assert store.load_credential("mediation").generation == before + 1
    assert unknown.exit_code == 1 and "no certificate 'nope'" in unknown.output
    assert "/v1/" not in unknown.output and "ca status --appliance" in unknown.output


def test_the_logs_command_shows_the_apis_refusal(
    pki_app: tuple[Appliance, FastAPI, str, PkiStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``logs start`` with a level the appliance refuses prints the API's error (it read
    ``detail``, which the error shape no longer has, and showed only the HTTP reason)."""
    _, app, admin, _ = pki_app
    monkeypatch.setenv("HYBRIDVOICE_TOKEN", admin)

    async def main() -> Result:
        server = await serve_asgi(app, "127.0.0.1", 0)
        try:
            args = ["logs", "start", "--level", "loud", "--appliance", server.url]
            return await asyncio.to_thread(CliRunner().invoke, cli_app, args)
        finally:
            await server.stop()

    refused = asyncio.run(main())
    assert refused.exit_code == 1, refused.output
    assert "loud" in refused.output and "Unprocessable" not in refused.output


def test_calls_trace_shows_the_apis_refusal(
    pki_app: tuple[Appliance, FastAPI, str, PkiStore], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    """``calls trace`` on an appliance without a capture prints what the appliance said, not
    the HTTP reason ("Not Found")."""
    _, app, admin, _ = pki_app
    monkeypatch.setenv("HYBRIDVOICE_TOKEN", admin)

    async def main() -> Result:
        server = await serve_asgi(app, "127.0.0.1", 0)
        try:
            args = ["calls", "trace", "nope", "--out", str(tmp_path / "x.pcap"),
                    "--appliance", server.url]  # fmt: skip
            return await asyncio.to_thread(CliRunner().invoke, cli_app, args)
        finally:
            await server.stop()

    refused = asyncio.run(main())
    assert refused.exit_code == 1, refused.output
    assert "does not capture SIP" in refused.output, refused.output
