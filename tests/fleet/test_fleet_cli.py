"""``hybridvoice up --config FLEET.toml`` refuses a bad fleet description with every key and
reason (exit 2) before it starts anything, and an address in use with its fleet key (exit 1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from ports import free_port_block

from hybridvoice.cms.fleet_plan import is_fleet_file, load_fleet

HV = [sys.executable, "-m", "hybridvoice"]

GOOD = """\
[Fleet]
SIPDomains = "contoso.example"
BasePort = {base}
MediaPortStart = {media}
MediaPortsPerAppliance = 8

[Online]
ServiceURL = "http://127.0.0.1:{api}"
SIPPort = {sip}

[[Site]]
Name = "Amsterdam"
Appliances = 2
[[Site.Gateway]]
Name = "ams-gw"
IP = "127.0.0.1"
Port = {gw}
Protocol = "UDP"
Lab = true
"""


def up(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200"}  # fmt: skip
    return subprocess.run(
        [*HV, "up", "--config", str(path), "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def test_a_bad_fleet_description_is_refused_with_keys_and_reasons(tmp_path: Path) -> None:
    text = GOOD.format(base=21000, media=40000, api=8470, sip=5060, gw=5080)
    text = text.replace("Appliances = 2", "Appliances = 20").replace("Port = 5080", "Port = 0")
    result = up(tmp_path, text)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "fleet description refused" in result.stderr
    assert "Site[Amsterdam].Appliances: input should be less than or equal to 16" in result.stderr
    assert "Site[Amsterdam].Gateway[ams-gw].Port: must be 1-65535, got 0" in result.stderr
    assert not (tmp_path / "state").exists()  # nothing started, nothing written


def test_an_address_in_use_is_named_by_its_fleet_key(tmp_path: Path) -> None:
    ports = free_port_block(40)
    base, media, api, sip, gw = ports, ports + 20, ports + 36, ports + 37, ports + 38
    text = GOOD.format(base=base, media=media, api=api, sip=sip, gw=gw)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", base + 14))  # amsterdam-2's gateway-side UDP port
        result = up(tmp_path, text)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "amsterdam-2.MediationServer.UDPPort" in result.stderr, result.stderr


def test_init_fleet_writes_the_example_of_the_docs(tmp_path: Path) -> None:
    out = tmp_path / "fleet.toml"
    result = subprocess.run([*HV, "init", "--fleet", "-o", str(out)], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"next: hybridvoice up --config {out}" in result.stdout.replace("\n", "")
    assert is_fleet_file(out)
    plan = load_fleet(out)
    assert [a.name for a in plan.of_site("Seattle")] == ["seattle-1", "seattle-2", "seattle-3"]
    docs = (Path(__file__).parents[2] / "docs" / "fleet.md").read_text()
    assert out.read_text() in docs  # the docs show exactly what init writes
    again = subprocess.run([*HV, "init", "--fleet", "--ini", str(out), "-o", str(out), "--force"],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert again.returncode == 2
    assert "--fleet and --ini do not go together" in again.stderr
