"""``[GeoDns]`` settings (hybridvoice.cms.settings_geo_dns): the seed's example, sites derived from
appliance settings, and every refusal naming its key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from geo_dns_seed import AMSTERDAM, SEED_TOML, seed_raw

from hybridvoice.cms.settings import Settings, SettingsError, parse_settings
from hybridvoice.cms.settings_geo_dns import load_geo_dns, parse_geo_dns


def appliance(site: str, ip: str, name: str) -> Settings:
    return parse_settings(
        {
            "Common": {"SIPDomains": "adatum.biz", "SiteName": site, "ServerName": name},
            "MediationServer": {"IP": ip},
        }
    )


def problems(raw: dict[str, object], appliances: list[Settings] | None = None) -> dict[str, str]:
    with pytest.raises(SettingsError) as caught:
        parse_geo_dns(raw, appliances or [])
    return {p.key: p.reason for p in caught.value.problems}


def test_the_seed_parses() -> None:
    geo = parse_geo_dns(seed_raw())
    assert geo.zone_name == "adatum.biz"
    assert geo.sites["Amsterdam"].mediation_ips == tuple(AMSTERDAM)
    assert geo.ttl == 60 and geo.unmatched == "refuse"


def test_mediation_addresses_come_from_the_appliance_settings() -> None:
    raw = seed_raw()
    del raw["GeoDns"]["Sites"]["Seattle"]["MediationIPs"]
    apps = [appliance("Seattle", f"10.10.1.{n}", f"sea{n}") for n in (8, 9, 10)]
    geo = parse_geo_dns(raw, apps)
    assert geo.sites["Seattle"].mediation_ips == ("10.10.1.8", "10.10.1.9", "10.10.1.10")


def test_an_appliance_of_an_unknown_site_is_refused_by_key() -> None:
    found = problems(seed_raw(), [appliance("Oslo", "10.9.9.9", "osl1")])
    assert (
        "'osl1' (10.9.9.9) is in site 'Oslo', which has no client subnets"
        in (found["GeoDns.Sites.Oslo"])
    )


def test_overlapping_subnets_between_sites_are_refused_naming_both() -> None:
    raw = seed_raw()
    raw["GeoDns"]["Sites"]["Seattle"]["ClientSubnets"].append("192.168.0.0/16")
    found = problems(raw)
    reason = found["GeoDns.Sites.Seattle.ClientSubnets[2]"]
    assert "192.168.0.0/16 overlaps 192.168.1.0/24 of site Amsterdam" in reason


def test_addresses_and_subnets_that_are_not_ip_are_refused_by_key() -> None:
    raw = seed_raw()
    raw["GeoDns"]["Sites"]["Amsterdam"]["MediationIPs"][1] = "192.168.1.300"
    raw["GeoDns"]["Sites"]["Seattle"]["ClientSubnets"][0] = "10.10.1.0/33"
    found = problems(raw)
    assert "not an IP address" in found["GeoDns.Sites.Amsterdam.MediationIPs[1]"]
    assert "not a subnet" in found["GeoDns.Sites.Seattle.ClientSubnets[0]"]


def test_other_refusals() -> None:
    assert "required" in problems({})["GeoDns"]
    assert problems(seed_raw(Unmatched="drop"))["GeoDns.Unmatched"] == (
        "input should be 'all', 'nxdomain' or 'refuse', got 'drop'"
    )
    assert "below the zone" in problems(seed_raw(Zone="example.com"))["GeoDns.Zone"]
    assert "glue" in problems(seed_raw(NameServerIPs=[]))["GeoDns.NameServerIPs"]
    assert problems(seed_raw(Colour="blue"))["GeoDns.Colour"] == "unknown key"
    raw = seed_raw()
    raw["GeoDns"]["Sites"]["Amster dam"] = raw["GeoDns"]["Sites"].pop("Amsterdam")
    assert "site name 'Amster dam'" in problems(raw)["GeoDns.Sites"]
    raw = seed_raw()
    raw["GeoDns"]["Sites"]["Oslo"] = {"ClientSubnets": ["10.30.0.0/16"]}
    assert "required" in problems(raw)["GeoDns.Sites.Oslo.MediationIPs"]


def test_load_reads_toml_and_says_what_is_wrong_with_a_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "geo.toml"
    good.write_text(SEED_TOML)
    assert load_geo_dns(good).service_name == "hybridvoice.adatum.biz"
    bad = tmp_path / "bad.toml"
    bad.write_text("[GeoDns\n")
    with pytest.raises(SettingsError, match="not TOML"):
        load_geo_dns(bad)
    with pytest.raises(SettingsError, match="cannot read"):
        load_geo_dns(tmp_path / "missing.toml")
