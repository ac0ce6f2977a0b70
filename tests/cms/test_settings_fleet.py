"""The fleet description (``cms.settings_fleet``) and its plan (``cms.fleet_plan``): ports
allocated without clashes, every appliance's settings valid, every problem named by its key
and reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hybridvoice.cms.fleet_plan import SLOTS, is_fleet_file, load_fleet, plan_fleet
from hybridvoice.cms.listeners import listener_clashes, listeners
from hybridvoice.cms.settings import SettingsError
from hybridvoice.cms.settings_fleet import PORT_STRIDE, is_fleet_document, parse_fleet
from hybridvoice.cms.template import lab_settings, render_settings

SEED: dict[str, Any] = {
    "Fleet": {"SIPDomains": "contoso.example", "BasePort": 21000, "MediaPortStart": 40000},
    "Online": {"ServiceURL": "http://127.0.0.1:8470", "SIPPort": 5060, "SIPProtocol": "TCP"},
    "Site": [
        {
            "Name": "Amsterdam", "Appliances": 4, "CountryCode": "31",
            "Gateway": [{"Name": "ams-gw", "IP": "127.0.0.1", "Port": 5080, "Protocol": "UDP",
                         "Lab": True}],
            "User": [{"Name": "alice", "Number": "+31205550100"}],
        },
        {
            "Name": "Seattle", "Appliances": 3,
            "Gateway": [{"Name": "sea-gw", "IP": "127.0.0.1", "Port": 5081, "Protocol": "UDP"}],
            "User": [{"Name": "bob", "Number": "+12065550101", "Password": "secret"}],
        },
    ],
}  # fmt: skip


def seed(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(SEED)
    raw.update(changes)
    return raw


def problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SettingsError) as caught:
        plan_fleet(parse_fleet(raw))
    return {p.key: p.reason for p in caught.value.problems}


def test_the_seed_plans_seven_appliances_on_separate_ports() -> None:
    plan = plan_fleet(parse_fleet(SEED))
    assert [a.name for a in plan.appliances] == [
        "amsterdam-1", "amsterdam-2", "amsterdam-3", "amsterdam-4",
        "seattle-1", "seattle-2", "seattle-3",
    ]  # fmt: skip
    assert [a.site for a in plan.of_site("Seattle")] == ["Seattle"] * 3
    for n, appliance in enumerate(plan.appliances):
        first = 21000 + PORT_STRIDE * n
        assert appliance.ports == {key: first + offset for key, offset in SLOTS.items()}
        ms = appliance.settings.mediation_server
        assert (ms.media_port_start, ms.media_port_end) == (40000 + 400 * n, 40399 + 400 * n)
        assert appliance.settings.common.server_name == appliance.name
        # each appliance trunks to its own site's gateways only
        site_gateway = "ams-gw" if appliance.site == "Amsterdam" else "sea-gw"
        assert [g.name for g in appliance.settings.gateways] == [site_gateway]
        assert appliance.settings.gateways[0].voice_routes == ("All",)
    every = [x for a in plan.appliances for x in listeners(a.settings)
             if not x.key.startswith("Online.")]  # fmt: skip
    assert len({(x.socket_kind, x.port) for x in every}) == len(every)
    assert [(g.site, g.gateway.name) for g in plan.lab_gateways] == [("Amsterdam", "ams-gw")]
    users = {u.sip_uri: (u.site, u.password) for u in plan.users}
    assert users == {"sip:alice@contoso.example": ("Amsterdam", "hybridvoice"),
                     "sip:bob@contoso.example": ("Seattle", "secret")}  # fmt: skip
    assert plan.online_settings.online.sip_port == 5060
    assert not listener_clashes(listeners(plan.online_settings))


def test_a_site_settings_file_is_not_a_fleet(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(render_settings(lab_settings()))
    assert not is_fleet_file(site)
    assert not is_fleet_file(tmp_path / "missing.toml")
    assert is_fleet_document({"Site": []}) and is_fleet_document({"Fleet": {}})


def test_load_fleet_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[Fleet]\nSIPDomains = "contoso.example"\n\n[[Site]]\nName = "Lab"\nAppliances = 2\n'
        '[[Site.Gateway]]\nName = "gw"\nIP = "127.0.0.1"\nPort = 5080\nProtocol = "UDP"\n'
    )
    assert is_fleet_file(path)
    plan = load_fleet(path)
    assert [a.name for a in plan.appliances] == ["lab-1", "lab-2"]
    path.write_text("[Fleet\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_fleet(path)


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (lambda r: r.pop("Fleet"), "Fleet", "required"),
        (lambda r: r["Site"][1]["User"][0].update(Number="12065550101"),
         "Site[Seattle].User[bob].Number", "must be an E.164 number"),
        (lambda r: r["Site"][0].update(Appliances=17), "Site[Amsterdam].Appliances",
         "less than or equal to 16"),
        (lambda r: r["Site"][0].update(Name="1st"), "Site[1st].Name", "must start with a letter"),
        (lambda r: r["Site"][1].update(Gateway=[]), "Site[Seattle].Gateway", "at least 1"),
        (lambda r: r["Site"][0]["Gateway"][0].update(Port=70000),
         "Site[Amsterdam].Gateway[ams-gw].Port", "must be 1-65535"),
        (lambda r: r["Site"][0]["Gateway"][0].update(Colour="red"),
         "Site[Amsterdam].Gateway[ams-gw].Colour", "unknown key"),
        (lambda r: r["Fleet"].update(MediaPortsPerAppliance=10),
         "Fleet.MediaPortsPerAppliance", "multiple of 4"),
        (lambda r: r["Fleet"].update(HeartbeatTimeoutSeconds=0),
         "Fleet.HeartbeatTimeoutSeconds", "greater than 0"),
        (lambda r: r.update(Appliance={"MediationServer": {"TCPPort": 5068}}), "Appliance",
         "MediationServer.TCPPort is not yours to set in a fleet: ports come from"),
        (lambda r: r.update(Appliance={"Gateway1": {"IP": "127.0.0.1"}}), "Appliance",
         "gateways belong to a site"),
    ],
)  # fmt: skip
def test_bad_descriptions_name_the_key_and_the_reason(change: Any, key: str, reason: str) -> None:
    raw = seed()
    change(raw)
    found = problems(raw)
    assert key in found, found
    assert reason in found[key]


def test_problems_between_sites_and_appliances_are_named() -> None:
    raw = seed()
    raw["Site"][1]["User"].append({"Name": "alice", "Number": "+12065550199"})
    raw["Site"][1]["User"][0]["Number"] = "+31205550100"
    raw["Site"][1]["Name"] = "amsterdam"
    found = problems(raw)
    assert "a user belongs to one site" in found["Site[amsterdam].User[alice]"]
    assert found["Site[amsterdam].User[bob].Number"] == "+31205550100 is alice's too"
    assert found["Site[amsterdam].Name"] == "two sites have this name"


def test_ports_past_65535_are_refused_with_the_key() -> None:
    raw = seed()
    raw["Fleet"]["BasePort"] = 65500
    assert "would need ports above 65535" in problems(raw)["Fleet.BasePort"]
    raw = seed()
    raw["Fleet"]["MediaPortStart"] = 64000
    assert "would need ports above 65535" in problems(raw)["Fleet.MediaPortStart"]


def test_a_lab_gateway_on_an_appliance_port_is_a_clash_naming_both() -> None:
    raw = seed()
    raw["Site"][0]["Gateway"][0]["Port"] = 21014  # amsterdam-2's gateway-side UDP port
    found = problems(raw)
    reason = found["Site[Amsterdam].Gateway[ams-gw].Port"]
    assert "amsterdam-2.MediationServer.UDPPort" in reason


def test_the_online_service_inside_an_appliance_block_is_a_clash() -> None:
    raw = seed()
    raw["Online"]["SIPPort"] = 21020  # amsterdam-3's edge external port (TCP)
    found = problems(raw)
    assert "amsterdam-3" in found["Online.SIPPort"], found


def test_appliance_template_is_validated_as_a_site_file() -> None:
    raw = seed(Appliance={"HealthMonitor": {"Retries": -1}, "TrunkConfiguration": {
        "OptionsIntervalSeconds": 1}})  # fmt: skip
    found = problems(raw)
    assert "greater than or equal to 0" in found["Appliance.HealthMonitor.Retries"]
    ok = seed(Appliance={"HealthMonitor": {"IntervalSeconds": 2}})
    plan = plan_fleet(parse_fleet(ok))
    assert all(a.settings.health_monitor.interval_seconds == 2 for a in plan.appliances)


def test_gateway_voice_routes_must_be_known() -> None:
    raw = seed()
    raw["Site"][0]["Gateway"][0]["VoiceRoutes"] = "Nowhere"
    found = problems(raw)
    assert "Nowhere" in found["Site[Amsterdam].Gateway[ams-gw].VoiceRoutes"]


def test_online_defaults_and_what_a_fleet_refuses() -> None:
    plan = plan_fleet(parse_fleet(seed(Online={"SIPPort": 5070})))
    online = plan.online_settings.online
    assert (online.sip_port, online.sip_protocol, online.digest_algorithms) == (
        5070,
        "TCP",
        ("MD5",),
    )
    assert online.service_url == "http://127.0.0.1:8470"
    found = problems(seed(Online={"ServiceURL": "https://127.0.0.1:8470"}))
    assert "https is not supported in a fleet yet" in found["Online"]
    found = problems(seed(Online={"SIPProtocol": "TLS"}))
    assert "TLS is not supported in a fleet yet" in found["Online"]
