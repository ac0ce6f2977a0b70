"""``hybridvoice plan checklist`` as a user types it (in-process, typer's runner): the three
formats, --output, several --config files, and bad --config / --geo-dns files refused with
exit code 2, the file and the reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hybridvoice.cli import app
from hybridvoice.cms.fleet_template import FLEET_EXAMPLE

INI = Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini"
GEO = """\
[GeoDns]
ServiceName = "hybridvoice.contoso.example"
NameServer = "ns1.example.net"

[GeoDns.Sites.Amsterdam]
ClientSubnets = ["192.168.1.0/24"]

[GeoDns.Sites.Seattle]
ClientSubnets = ["10.10.1.0/24"]
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["plan", "checklist", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_plan_group_lists_checklist() -> None:
    result = CliRunner().invoke(app, ["plan", "--help"])
    assert result.exit_code == 0 and "checklist" in result.stdout


def test_table_of_the_defaults() -> None:
    code, out, _ = run()
    assert code == 0
    for title in ("Findings", "DNS records", "Firewall: external", "Firewall: internal",
                  "Certificates", "Mediation media ports"):  # fmt: skip
        assert title in out
    assert "edge.contoso.example" in out and "49152-57500" in out


def test_json_parses_and_the_alias_gives_the_same() -> None:
    code, out, _ = run("--format", "json")
    assert code == 0
    data = json.loads(out)
    assert json.loads(run("--json")[1]) == data
    assert {"name": "edge.contoso.example", "type": "A", "value": "127.0.0.1",
            "visibility": "external", "site": "Lab"}.items() <= data["dns"][0].items()  # fmt: skip
    (size,) = data["media_ports"]
    assert (size["ports"], size["ports_needed"], size["calls_fit"]) == (8349, 2000, 2087)
    assert data["geo_dns"]["sites"] == [
        {"name": "Lab", "client_subnets": ["127.0.0.0/8"], "mediation_ips": ["127.0.0.1"]}
    ]


def test_markdown_report_of_the_ini_has_the_tables(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    code, out, _ = run("--config", str(INI), "--format", "markdown", "--output", str(report))
    assert code == 0 and f"wrote {report}" in out
    text = report.read_text()
    assert text.startswith("# Network checklist: DNS, firewall and certificates\n")
    for heading in ("## Findings", "## DNS records", "## Firewall: external",
                    "## Firewall: internal", "## Certificates", "## Mediation media ports",
                    "## What the CloudConnector.ini import changed"):  # fmt: skip
        assert f"\n{heading}\n" in text
    assert "| name | type | value | visibility | site | why |\n|---|---|---|---|---|---|\n" in text
    assert "| from | to | protocol | ports | direction | why | setting |" in text
    assert "| gw1.contoso.com | A | 192.168.213.200 | internal | Amsterdam |" in text
    assert "DNS:edge.contoso.com, DNS:sip.contoso.com, DNS:sip.fabrikam.com" in text
    assert "sip.&lt;domain>" in text  # a cell never opens an HTML tag


def test_fleet_with_a_geo_dns_file_gives_the_policy_in_the_report(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET_EXAMPLE)
    geo = tmp_path / "geo.toml"
    geo.write_text(GEO)
    code, out, _ = run("--config", str(fleet), "--geo-dns", str(geo), "--format", "markdown")
    assert code == 0
    assert "## Geo-DNS policy" in out
    assert "| Amsterdam | 192.168.1.0/24 | 127.0.0.1 |" in out
    assert "| Seattle | 10.10.1.0/24 | 127.0.0.1 |" in out
    assert "[GeoDns.Sites.Seattle]" in out  # the policy file for `hybridvoice dns export`
    assert 'Add-DnsServerClientSubnet -Name "SeattleSubnet" -IPv4Subnet "10.10.1.0/24"' in out
    assert "set MediaPortsPerAppliance = 2000" in out


def test_several_settings_files_make_one_deployment(tmp_path: Path) -> None:
    code, out, _ = run("--config", str(INI), "--json")
    ams = json.loads(out)
    lab = tmp_path / "lab.toml"
    assert CliRunner().invoke(app, ["init", "-o", str(lab)]).exit_code == 0
    code, out, _ = run("--config", str(INI), "--config", str(lab), "--json")
    assert code == 0
    both = json.loads(out)
    assert both["sites"] == ["Amsterdam", "Lab"]
    assert len(both["media_ports"]) == 2 and len(ams["media_ports"]) == 1


def test_table_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "checklist.txt"
    code, _, _ = run("--output", str(target))
    assert code == 0 and "DNS records" in target.read_text()


def test_bad_config_paths_and_contents_exit_2_naming_file_and_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    code, _, err = run("--config", str(missing))
    assert code == 2 and "cannot read --config" in err and "No such file" in err
    code, _, err = run("--config", str(tmp_path))
    assert code == 2 and "is a directory" in err
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    code, _, err = run("--config", str(binary))
    assert code == 2 and "not a text file" in err
    prose = tmp_path / "notes.txt"
    prose.write_text("these are not settings [at all\n")
    code, _, err = run("--config", str(prose))
    assert code == 2 and "neither TOML" in err and "no [Common] section" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[Common]\nSIPDomains = "contoso.com"\nSiteName = "A"\n[MediationServer]\n'
                   "MediaPortStart = 40001\n")  # fmt: skip
    code, _, err = run("--config", str(bad))
    assert code == 2 and "settings refused" in err
    assert "MediationServer.MediaPortStart: must be even" in err


def test_a_bad_geo_dns_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    geo = tmp_path / "geo.toml"
    geo.write_text(GEO.replace("10.10.1.0/24", "192.168.0.0/16"))
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET_EXAMPLE)
    code, _, err = run("--config", str(fleet), "--geo-dns", str(geo))
    assert code == 2 and "policy refused" in err
    assert "GeoDns.Sites.Seattle.ClientSubnets[0]: 192.168.0.0/16 overlaps" in err
    geo.write_text("not [toml")
    code, _, err = run("--geo-dns", str(geo))
    assert code == 2 and "not TOML" in err
