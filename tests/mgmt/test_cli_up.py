"""`hybridvoice init`, `up`, `test-call` and the admin commands, run as an admin runs them:
`up` in its own process on a settings file with free ports, the other commands from another
process, talking to it over SIP and HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports

from hybridvoice.cms.settings import Settings, load_settings
from hybridvoice.cms.template import render_settings

CCE_INI = (Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini").read_text()
HV = [sys.executable, "-m", "hybridvoice"]
# rich wraps tables at the terminal width; `up` saves its admin token in the user's config
# directory, where the other commands find it: a directory of these tests' own
CONFIG_HOME = tempfile.mkdtemp(prefix="hybridvoice-config-")
WIDE = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": CONFIG_HOME}
WIDE.pop("HYBRIDVOICE_TOKEN", None)


def hv(
    *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HV, *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**WIDE, **(env or {})},
    )  # fmt: skip


@contextlib.contextmanager
def up(tmp_path: Path) -> Iterator[tuple[Settings, list[str]]]:
    """`hybridvoice up --config` on free ports; yields the settings and the URL options."""
    settings = settings_on_free_ports()
    config = tmp_path / "hybridvoice.toml"
    config.write_text(render_settings(settings))
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [*HV, "up", "--config", str(config), "--state-dir", str(tmp_path / "state"),
         "--lab-gateway"],
        stdout=log, stderr=subprocess.STDOUT, env=WIDE,
    )  # fmt: skip
    online = settings.online
    urls = ["--url", online.service_url,
            "--appliance", f"http://127.0.0.1:{settings.management.port}"]  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if hv("appliance", "status", "--json", *urls[2:], timeout=10).returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.1)
        else:
            pytest.fail("hybridvoice up did not come up:\n" + (tmp_path / "up.log").read_text())
        yield settings, urls
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def call_once(settings: Settings, urls: list[str], *extra: str) -> dict[str, object]:
    online = settings.online
    proxy = f"udp:{online.sip_addresses[0]}:{online.sip_port}"
    result = hv("test-call", "--from", "alice", "--to", "+15550199", "--proxy", proxy,
                "--duration", "0.4", *urls, *extra)  # fmt: skip
    if "--json" in extra:
        data: dict[str, object] = json.loads(result.stdout)
        data["exit"] = result.returncode
        return data
    return {"exit": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def test_test_call_passes_on_a_fresh_up_and_bypass_switches_without_restart(
    tmp_path: Path,
) -> None:
    with up(tmp_path) as (settings, urls):
        table = call_once(settings, urls)
        assert table["exit"] == 0, table
        out = str(table["stdout"])
        assert "PASSED" in out and "anchored" in out and "<- 200 OK (INVITE)" in out

        first = call_once(settings, urls, "--json")
        assert first["exit"] == 0 and first["ok"] is True
        assert first["media_path"] == "anchored"

        enabled = hv("bypass", "enable", "--json", *urls[:2])
        assert enabled.returncode == 0, enabled.stderr
        assert json.loads(enabled.stdout)["media_bypass_enabled"] is True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # replication: well under a second
            status = json.loads(hv("appliance", "status", "--json", *urls[2:]).stdout)
            if status["media_bypass"]:
                break
            time.sleep(0.05)
        second = call_once(settings, urls, "--json")
        assert second["exit"] == 0 and second["media_path"] == "bypass", second

        status = json.loads(hv("appliance", "status", "--json", *urls[2:]).stdout)
        assert status["roles"] == ["edge", "mediation"]
        assert status["online"]["registered"] is True
        assert status["gateways"][0]["health"] == "up"
        listed = json.loads(hv("appliance", "list", "--json", *urls[:2]).stdout)
        assert [a["status"] for a in listed] == ["online"]


def test_admin_commands_change_the_tenant(tmp_path: Path) -> None:
    with up(tmp_path) as (settings, urls):
        online = urls[:2]
        made = hv("site", "new", "Stockholm", "--edge-fqdn", "edge.sthlm.contoso.example",
                  "--country-code", "46", "--json", *online)  # fmt: skip
        assert made.returncode == 0, made.stderr
        user = hv("user", "set", "sip:carol@contoso.example", "--line-uri", "tel:+46812345678",
                  "--site", "Stockholm", "--enterprise-voice", "--no-international",
                  "--json", *online)  # fmt: skip
        assert user.returncode == 0, user.stderr
        carol = json.loads(user.stdout)
        assert carol["hybrid_pstn_site"] == "Stockholm"
        assert carol["international_calls_allowed"] is False
        assert "ha1_md5" not in carol
        again = hv("site", "new", "Stockholm", "--edge-fqdn", "x.example", *online)
        assert again.returncode == 1 and "hybridvoice site set Stockholm" in again.stderr
        sites = hv("site", "get", *online)
        assert "Stockholm" in sites.stdout and settings.common.site_name in sites.stdout
        busy = hv("site", "remove", "Stockholm", *online)
        assert busy.returncode == 1  # carol is still assigned to it: refused with a hint


def test_admin_commands_without_a_service_say_what_to_do() -> None:
    result = hv("site", "get", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "hybridvoice up" in result.stderr


def test_init_writes_lab_settings_and_imports_an_ini(tmp_path: Path) -> None:
    target = tmp_path / "hybridvoice.toml"
    made = hv("init", "--output", str(target))
    assert made.returncode == 0, made.stderr
    assert load_settings(target).gateways[0].port == 5080
    refused = hv("init", "--output", str(target))
    assert refused.returncode == 1 and "--force" in refused.stderr

    ini = tmp_path / "CloudConnector.ini"
    ini.write_text(CCE_INI)
    imported = hv("init", "--ini", str(ini), "--output", str(target), "--force")
    assert imported.returncode == 0, imported.stderr
    assert "PrimaryCMS.ShareName" in imported.stdout  # listed as not carried over
    assert load_settings(target).common.site_name == "Amsterdam"
    bad = tmp_path / "bad.ini"
    bad.write_text(CCE_INI.replace("Port=5060", "Port=70000"))
    refused = hv("init", "--ini", str(bad), "--output", str(tmp_path / "x.toml"))
    assert refused.returncode == 2 and "Gateway1.Port: must be 1-65535" in refused.stderr


def test_up_refuses_bad_settings_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[Common]\nSIPDomains = "contoso.example"\nSiteName = "Lab"\n'
                      "[MediationServer]\nTCPPort = 99999\n")  # fmt: skip
    result = hv("up", "--config", str(config))
    assert result.returncode == 2
    assert "MediationServer.TCPPort" in result.stderr


def test_tokens_and_the_audit_log_from_the_command_line(tmp_path: Path) -> None:
    """`up` saved its admin token (0600) where the CLI finds it; tokens are made (shown once),
    listed and revoked; a read token cannot write; `audit` shows who changed what."""
    with up(tmp_path) as (_, urls):
        online = urls[:2]
        saved = Path(CONFIG_HOME) / "hybridvoice" / "token"
        assert saved.stat().st_mode & 0o777 == 0o600
        made = hv("token", "create", "--name", "dashboard", "--scope", "read", *online)
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip()
        assert secret.startswith("hv_") and "shown once" in made.stderr
        listed = json.loads(hv("token", "list", "--json", *online).stdout)
        assert [t["name"] for t in listed] == ["lab-admin", "appliance1", "dashboard"]
        assert secret not in json.dumps(listed)
        table = hv("token", "list", *online)
        assert "dashboard" in table.stdout and "read" in table.stdout

        read_only = ("--token", secret)
        assert hv(*read_only, "site", "get", *online).returncode == 0
        refused = hv(*read_only, "site", "new", "Oslo", "--edge-fqdn", "edge.oslo.example",
                     *online)  # fmt: skip
        assert refused.returncode == 1 and "403" in refused.stderr
        assert "scope admin" in refused.stderr
        env = hv("site", "get", *online, env={"HYBRIDVOICE_TOKEN": "hv_00000000_" + "A" * 43})
        assert env.returncode == 1 and "401" in env.stderr and "--token" in env.stderr

        assert hv("bypass", "enable", *online).returncode == 0  # the saved lab admin token
        dashboard = next(t["id"] for t in listed if t["name"] == "dashboard")
        assert hv("token", "revoke", dashboard, *online).returncode == 0
        gone = hv(*read_only, "site", "get", *online)
        assert gone.returncode == 1 and "401" in gone.stderr

        log = json.loads(hv("audit", "--json", "--since", "1h", *online).stdout)
        assert [e["operation"] for e in log][:2] == ["token.revoke", "bypass.enable"]
        bypass = log[1]
        assert bypass["token_name"] == "lab-admin" and bypass["source"] == "127.0.0.1"
        assert bypass["before"]["media_bypass_enabled"] is False
        assert bypass["after"]["media_bypass_enabled"] is True
        shown = hv("audit", "--operation", "bypass", *online)
        assert "media_bypass_enabled: False -> True" in shown.stdout, shown.stdout
        maintenance = hv("appliance", "maintenance", "enter", *urls[2:])
        assert maintenance.returncode == 0, maintenance.stderr
        appliance_log = json.loads(hv("audit", "--json", "--url", urls[3]).stdout)
        assert appliance_log[0]["operation"] == "maintenance.enter"
