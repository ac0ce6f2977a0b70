"""The geo-DNS exports (hybridvoice.mediation.geo_dns_export): the seed's example as BIND views
and zone files, and as Windows DNS Server policy commands, compared to the expected text; the
BIND files checked by ``named-checkconf -z`` and ``named-checkzone`` (Debian bind9-utils) when
installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from geo_dns_seed import seed_raw

from hybridvoice.cms.settings_geo_dns import parse_geo_dns
from hybridvoice.mediation.geo_dns import GeoPolicy, policy_from_settings
from hybridvoice.mediation.geo_dns_export import BIND_CONF, bind_files, windows_commands

EXPECTED = Path(__file__).parent.parent / "fixtures" / "geo_dns"


def seed(**changes: object) -> GeoPolicy:
    return policy_from_settings(parse_geo_dns(seed_raw(**changes)))


def test_windows_commands_of_the_seed() -> None:
    assert windows_commands(seed()) == (EXPECTED / "seed-windows.ps1").read_text()


def test_bind_views_and_zone_files_of_the_seed() -> None:
    files = bind_files(seed())
    assert sorted(files) == ["db.adatum.biz.Amsterdam", "db.adatum.biz.Seattle", BIND_CONF]
    for name, text in files.items():
        assert text == (EXPECTED / f"seed-bind-{name}").read_text(), name


def test_unmatched_clients_in_the_exports() -> None:
    everyone = bind_files(seed(Unmatched="all"))
    others = everyone["db.adatum.biz.others"]
    assert others.count("hybridvoice\tIN\tA\t") == 7
    nobody = bind_files(seed(Unmatched="nxdomain"))["db.adatum.biz.others"]
    assert "hybridvoice" not in nobody.split("\n", 1)[1]
    windows_all = windows_commands(seed(Unmatched="all")).split("# 5.")[1]
    assert windows_all.count("Add-DnsServerResourceRecord") == 7 and "ZoneScope" not in windows_all
    assert "DENY" not in windows_commands(seed(Unmatched="nxdomain"))


def test_ttl_as_a_windows_timespan() -> None:
    assert "-TimeToLive 1.00:00:00" in windows_commands(seed(TTL=86400))
    assert "-TimeToLive 00:02:05" in windows_commands(seed(TTL=125))


@pytest.mark.skipif(shutil.which("named-checkconf") is None, reason="bind9-utils not installed")
@pytest.mark.parametrize("unmatched", ["refuse", "nxdomain", "all"])
def test_bind_accepts_the_export(tmp_path: Path, unmatched: str) -> None:
    for name, text in bind_files(seed(Unmatched=unmatched)).items():
        (tmp_path / name).write_text(text)
    (tmp_path / "named.conf").write_text(
        f'options {{ directory "{tmp_path}"; }};\ninclude "{tmp_path / BIND_CONF}";\n'
    )
    checked = subprocess.run(
        ["named-checkconf", "-z", str(tmp_path / "named.conf")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for zone_file in tmp_path.glob("db.*"):
        zone = subprocess.run(
            ["named-checkzone", "adatum.biz", str(zone_file)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert zone.returncode == 0, zone.stdout + zone.stderr
