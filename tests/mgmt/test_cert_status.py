"""`hybridvoice appliance status` warns 30 days before a certificate of the site PKI expires
(table and --json), from ``pki.expiry_report``."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hybridvoice.cli import app
from hybridvoice.cms.settings import parse_settings
from hybridvoice.mgmt import cli_appliance
from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.cert_status import certificate_rows, warnings
from hybridvoice.pki import PkiStore

RUNNER = CliRunner()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    """The site CA, a fresh appliance certificate and one issued 710 days ago (20 left)."""
    store = PkiStore(tmp_path / "pki")
    ca = store.ensure_ca("AMS", now() - datetime.timedelta(days=710))
    store.ensure_server(ca, "appliance", now(), dns_names=["ms.contoso.test"])
    store.ensure_server(ca, "online", now() - datetime.timedelta(days=710), ips=["127.0.0.1"])
    return store.directory


def test_rows_soonest_first_and_the_warning_says_what_to_type(pki_dir: Path) -> None:
    rows = certificate_rows(pki_dir, now())
    assert rows[0]["name"] == "cert:online"
    first = rows[0]
    assert first["days_left"] in (19, 20) and first["warn"] and not first["expired"]
    assert {r["name"]: r["warn"] for r in rows}["cert:appliance"] is False
    (warning,) = warnings(rows)
    assert warning == (
        f"certificate cert:online expires in {first['days_left']} days (warning at 30 days): "
        "hybridvoice ca renew"
    )
    later = certificate_rows(pki_dir, now() + datetime.timedelta(days=40))
    assert "cert:online expired (warning at 30 days)" in warnings(later)[0]
    assert certificate_rows(None, now()) == [] and certificate_rows(pki_dir / "none", now()) == []


def test_appliance_status_carries_certificates_and_warnings(pki_dir: Path) -> None:
    settings = parse_settings({"Common": {"SIPDomains": "contoso.com", "SiteName": "AMS"}})
    appliance = Appliance(settings, ApplianceOptions(pki_dir=pki_dir, serve_api=False))
    try:
        status = appliance.status()
    finally:
        appliance.close()
    assert status["certificates"][0]["name"] == "cert:online"
    assert len(status["warnings"]) == 1 and "cert:online" in status["warnings"][0]


def test_the_cli_shows_the_table_and_warns(pki_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = certificate_rows(pki_dir, now())
    status: dict[str, Any] = {
        "name": "ams-1", "site": "AMS", "state": "online", "version": "0", "roles": [],
        "calls_now": 0, "call_limit": 50, "media_bypass": False,
        "replica": {"version": 1, "connected": True, "lag_seconds": 0.1},
        "online": {"url": "http://127.0.0.1:1", "registered": True, "heartbeats": 1},
        "listeners": [], "gateways": [], "certificates": rows, "warnings": warnings(rows),
    }  # fmt: skip
    monkeypatch.setattr(cli_appliance, "api", lambda *args, **kwargs: status)
    result = RUNNER.invoke(app, ["appliance", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "certificates (site PKI)" in result.stdout and "cert:appliance" in result.stdout
    assert "warning: certificate cert:online expires in" in result.stderr
    result = RUNNER.invoke(app, ["appliance", "status", "--json"])
    shown = json.loads(result.stdout)
    assert shown["warnings"] == status["warnings"] and shown["certificates"][0]["warn"] is True
