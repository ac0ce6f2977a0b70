"""``hybridvoice dns show|export|serve`` as a user runs them: the seed's policy file, the server
as its own process on loopback queried with dnspython from 127.0.0.2 ("Amsterdam") and
127.0.0.3 ("Seattle"), a down file re-read on SIGHUP, STATS on SIGTERM; stopped by PID."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from geo_dns_seed import AMSTERDAM, NAME, SEATTLE, SEED_TOML
from ports import free_port

HV = [sys.executable, "-m", "hybridvoice"]
TIMEOUT = 10.0

pytestmark = pytest.mark.live  # `hybridvoice dns serve` as its own process


def hv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HV, *args], capture_output=True, text=True, timeout=60, check=False)


def policy_file(tmp_path: Path, text: str = SEED_TOML) -> Path:
    path = tmp_path / "geo.toml"
    path.write_text(text)
    return path


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def test_help_lists_the_commands() -> None:
    shown = hv("dns", "--help")
    assert shown.returncode == 0
    for command in ("show", "export", "serve"):
        assert command in shown.stdout


def test_show_json_and_export_json(tmp_path: Path) -> None:
    geo = policy_file(tmp_path)
    shown = hv("dns", "show", str(geo), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [s["name"] for s in data["sites"]] == ["Amsterdam", "Seattle"]
    assert data["sites"][1]["mediation_ips"] == SEATTLE
    exported = hv("dns", "export", str(geo), "--format", "windows", "--json")
    assert exported.returncode == 0, exported.stderr
    ps1 = json.loads(exported.stdout)["files"]["geo-dns.ps1"]
    assert 'Add-DnsServerZoneScope -ZoneName "adatum.biz" -Name "SeattleZoneScope"' in ps1
    written = hv("dns", "export", str(geo), "--format", "bind", "--out", str(tmp_path / "b"))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "b" / "named.conf.geo").is_file()
    assert (tmp_path / "b" / "db.adatum.biz.Seattle").read_text().count("\tA\t10.10.1.") == 3


def test_mediation_addresses_from_appliance_settings_files(tmp_path: Path) -> None:
    text = SEED_TOML.replace('MediationIPs = ["10.10.1.8", "10.10.1.9", "10.10.1.10"]\n', "")
    geo = policy_file(tmp_path, text)
    apps = []
    for n in (8, 9, 10):
        path = tmp_path / f"sea{n}.toml"
        path.write_text(
            f'[Common]\nSIPDomains = "adatum.biz"\nSiteName = "Seattle"\nServerName = "sea{n}"\n'
            f'[MediationServer]\nIP = "10.10.1.{n}"\n'
        )
        apps += ["--appliance-config", str(path)]
    shown = hv("dns", "show", str(geo), *apps, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["sites"][1]["mediation_ips"] == SEATTLE


def test_bad_settings_exit_2_naming_the_key(tmp_path: Path) -> None:
    geo = policy_file(tmp_path, SEED_TOML.replace('"10.10.1.9"', '"10.10.1.x"'))
    shown = hv("dns", "show", str(geo))
    assert shown.returncode == 2
    assert "GeoDns.Sites.Seattle.MediationIPs[1]" in shown.stderr
    assert "not an IP address" in shown.stderr
    assert hv("dns", "export", str(geo), "--format", "xml").returncode == 2


def test_serve_answers_each_site_and_takes_the_down_file_on_sighup(tmp_path: Path) -> None:
    geo = policy_file(tmp_path)
    down = tmp_path / "down.txt"
    down.write_text("# none down yet\n")
    port, metrics_port = free_port(), free_port()
    argv = [*HV, "dns", "serve", str(geo), "--listen", f"127.0.0.1:{port}"]
    argv += ["--metrics", f"127.0.0.1:{metrics_port}"]
    proc = subprocess.Popen(
        [*argv, "--down-file", str(down)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith(f"READY 127.0.0.1:{port}"), ready + proc.stderr.read()
        assert f"metrics=http://127.0.0.1:{metrics_port}/metrics" in ready
        query = dns.message.make_query(NAME, "A")
        for source, expected in (("127.0.0.2", AMSTERDAM), ("127.0.0.3", SEATTLE)):
            udp = dns.query.udp(query, "127.0.0.1", port=port, source=source, timeout=TIMEOUT)
            tcp = dns.query.tcp(query, "127.0.0.1", port=port, source=source, timeout=TIMEOUT)
            assert addresses(udp) == addresses(tcp) == sorted(expected)
        refused = dns.query.udp(query, "127.0.0.1", port=port, timeout=TIMEOUT)
        assert refused.rcode() == dns.rcode.REFUSED
        down.write_text("10.10.1.9  # drained for an update\n")
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout.readline().startswith("RELOADED down=['10.10.1.9']")
        reply = dns.query.udp(query, "127.0.0.1", port=port, source="127.0.0.3", timeout=TIMEOUT)
        assert addresses(reply) == ["10.10.1.10", "10.10.1.8"]
        scraped = urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=TIMEOUT
        )
        text = scraped.read().decode()
        assert 'hybridvoice_geo_dns_queries_total{result="answer",site="Seattle"} 3.0' in text
        assert "hybridvoice_geo_dns_down_addresses 1.0" in text
        down.write_text("10.10.1.999\n")
        proc.send_signal(signal.SIGHUP)
        assert "down.txt:1: not an IP address" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stats = json.loads(rest.split("STATS ", 1)[1])
    assert stats["queries"]["Amsterdam"]["answer"] == 2
    assert stats["queries"]["Seattle"]["answer"] == 3
    assert stats["queries"]["unmatched"]["refused"] == 1
    assert proc.returncode == 0
