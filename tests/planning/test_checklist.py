"""The DNS, firewall and certificate checklist (``planning.checklist``) from the embedded
defaults of ``up``, the sample CloudConnector.ini, settings files of two sites and a two-site
fleet: specific records, rules and SANs, the 4-ports-per-call arithmetic, and findings."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
from geo_dns_seed import AMSTERDAM, NAME, SEATTLE, seed_raw

from hybridvoice.cms.fleet_template import FLEET_EXAMPLE
from hybridvoice.cms.listeners import listeners
from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.cms.settings_geo_dns import parse_geo_dns
from hybridvoice.cms.template import lab_settings, render_settings
from hybridvoice.edge.tls_names import tls_names
from hybridvoice.mediation.geo_dns import policy_from_settings
from hybridvoice.mediation.geo_dns_export import windows_commands
from hybridvoice.planning.checklist import Checklist, MediaSizing, build_checklist
from hybridvoice.planning.checklist_firewall import FirewallRule
from hybridvoice.planning.checklist_report import geo_dns_toml, to_markdown
from hybridvoice.planning.checklist_source import (
    ChecklistSourceError,
    defaults_deployment,
    deployment_from_settings,
    deployment_from_text,
    merge_deployments,
)

INI = Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini"


def rules(c: Checklist, **match: str) -> list[FirewallRule]:
    return [r for r in c.firewall if all(getattr(r, k) == v for k, v in match.items())]


def findings(c: Checklist, key: str) -> list[str]:
    return [f.message for f in c.findings if f.key == key]


def site_settings(site: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A production-like appliance of ``site`` (addresses only parsed, never bound)."""
    raw = tomllib.loads(render_settings(lab_settings(domain="contoso.com", site=site)))
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


# --- the embedded defaults of `hybridvoice up` -------------------------------------------------


def test_defaults_are_what_up_runs_without_config() -> None:
    deployment = defaults_deployment()
    assert [a.settings for a in deployment.appliances] == [lab_settings()]
    assert deployment.sites == ("Lab",)


def test_defaults_dns_records() -> None:
    c = build_checklist(defaults_deployment())
    edge = [r for r in c.dns if r.visibility == "external"]
    assert [(r.name, r.type, r.value, r.site) for r in edge] == [
        ("edge.contoso.example", "A", "127.0.0.1", "Lab")
    ]
    bypass = [r for r in c.dns if r.name == "hybridvoice.contoso.example"]
    assert [(r.type, r.value, r.visibility) for r in bypass] == [("A", "127.0.0.1", "internal")]
    assert c.bypass_name == "hybridvoice.contoso.example"


def test_defaults_firewall_has_this_deployments_ports() -> None:
    c = build_checklist(defaults_deployment())
    inbound = rules(c, key="EdgeServer.ExternalSIPPort")
    assert [(r.side, r.protocol, r.ports, r.direction) for r in inbound] == [
        ("external", "TCP", "5061", "inbound")
    ]
    to_gw = rules(c, key="Gateway1.Port")
    assert [(r.protocol, r.ports, r.direction) for r in to_gw] == [("UDP", "5080", "outbound")]
    from_gw = rules(c, key="MediationServer.UDPPort")
    assert [(r.source, r.protocol, r.ports) for r in from_gw] == [
        ("gateway Gateway1 127.0.0.1", "UDP", "5069")
    ]
    media = rules(c, key="MediationServer.MediaPortStart", protocol="UDP")
    assert {r.ports for r in media} == {"49152-57500"}
    assert rules(c, key="MediationServer.BypassServicePort")[0].ports == "8471"
    assert rules(c, key="Gateway1.MediaBypass")[0].source == "internal clients 127.0.0.0/8"
    assert not [r for r in c.firewall if r.key.startswith("MediaRelay.")]  # relay off


def test_defaults_certificates_and_sizing() -> None:
    c = build_checklist(defaults_deployment())
    (external,) = c.certificates  # TCP between the roles: no site CA
    assert external.subject == "CN=edge.contoso.example"
    assert external.sans == ("DNS:edge.contoso.example", "DNS:sip.contoso.example")
    assert external.issuer == "a public CA"
    (size,) = c.sizing
    assert (size.calls, size.calls_from, size.ports) == (500, "HardwareType Normal", 8349)
    assert (size.ports_needed, size.calls_fit, size.enough) == (2000, 2087, True)
    assert not [f for f in c.findings if f.severity == "error"]
    assert findings(c, "EdgeServer.ExternalSIPPoolName")  # left to its default: said so


# --- the sample CloudConnector.ini ------------------------------------------------------------


def test_ini_is_told_apart_by_content_and_imported() -> None:
    text = INI.read_text()
    by_name = deployment_from_text("CloudConnector.ini", text)
    by_content = deployment_from_text("cce-export.txt", text)
    assert by_name.kind == by_content.kind == "ini"
    assert by_name.appliances == by_content.appliances
    assert by_name.appliances[0].name == "CCE-AMS-1"
    assert by_name.notes  # what the import moved to run on one host


def test_ini_certificates() -> None:
    c = build_checklist(deployment_from_text("CloudConnector.ini", INI.read_text()))
    by_role = {x.role: x for x in c.certificates}
    external = by_role["access edge (external)"]
    assert external.sans == ("DNS:edge.contoso.com", "DNS:sip.contoso.com", "DNS:sip.fabrikam.com")
    assert "sip." not in external.subject
    assert by_role["site CA"].subject == "CN=Amsterdam site CA, O=hybridvoice"
    appliance = by_role["edge and mediation"]
    settings = deployment_from_text("x.ini", INI.read_text()).appliances[0].settings
    dns, ips = tls_names(settings)["appliance"]  # what `up` issues
    assert appliance.sans == (*(f"DNS:{n}" for n in dns), *(f"IP:{i}" for i in ips))
    assert "DNS:mspool.cce.local" in appliance.sans and "IP:192.168.213.6" in appliance.sans
    assert appliance.issuer == "site CA of Amsterdam"
    gateway = by_role["gateway"]  # Gateway2 speaks TLS
    assert (gateway.holder, gateway.subject, gateway.sans) == (
        "Gateway2 (site Amsterdam)",
        "CN=gw2.contoso.com",
        ("DNS:gw2.contoso.com",),
    )
    client = by_role["appliance client (online API)"]  # the import's ServiceURL is https
    assert client.sans == ("URI:urn:hybridvoice:appliance:Amsterdam:CCE-AMS-1",)


def test_ini_firewall_and_dns() -> None:
    c = build_checklist(deployment_from_text("CloudConnector.ini", INI.read_text()))
    tcp = rules(c, key="MediationServer.TCPPort")
    tls = rules(c, key="MediationServer.TLSPort")
    assert [(r.source, r.ports) for r in tcp] == [("gateway Gateway1 192.168.213.200", "5068")]
    assert [(r.source, r.ports) for r in tls] == [("gateway Gateway2 gw2.contoso.com", "5067")]
    assert [(r.protocol, r.ports) for r in rules(c, key="Gateway2.Port")] == [("TCP", "5061")]
    records = {(r.name, r.value, r.visibility) for r in c.dns}
    assert ("hybridvoice.contoso.com", "192.168.213.6", "internal") in records
    assert ("mspool.cce.local", "192.168.213.6", "internal") in records
    assert ("gw1.contoso.com", "192.168.213.200", "internal") in records


# --- 4 ports per call -------------------------------------------------------------------------


def test_four_ports_per_call_arithmetic() -> None:
    size = MediaSizing("a", calls=250, calls_from="x", start=50000, end=50999)
    assert (size.ports, size.ports_needed, size.calls_fit, size.enough) == (1000, 1000, 250, True)
    one_more = MediaSizing("a", calls=251, calls_from="x", start=50000, end=50999)
    assert (one_more.ports_needed, one_more.enough) == (1004, False)


@pytest.mark.parametrize(
    ("common", "calls"),
    [({"MaxConcurrentCalls": 250}, 250), ({"HardwareType": "Minimum"}, 50)],
)
def test_a_range_that_holds_the_capacity_is_no_finding(common: dict[str, Any], calls: int) -> None:
    raw = site_settings(
        "Lab", Common=common, MediationServer={"MediaPortStart": 40000, "MediaPortEnd": 40999}
    )
    c = build_checklist(deployment_from_settings(parse_settings(raw)))
    assert c.sizing[0].calls == calls and c.sizing[0].enough
    assert not findings(c, "MediationServer.MediaPortEnd")


def test_a_range_too_small_for_the_capacity_is_a_finding() -> None:
    raw = site_settings(
        "Lab",
        Common={"MaxConcurrentCalls": 251},
        MediationServer={"MediaPortStart": 40000, "MediaPortEnd": 40999},
    )
    c = build_checklist(deployment_from_settings(parse_settings(raw)))
    (message,) = findings(c, "MediationServer.MediaPortEnd")
    assert "1000 ports = 250 calls" in message and "251 calls (MaxConcurrentCalls)" in message
    assert "set MediaPortEnd = 41003" in message
    assert [f.severity for f in c.findings if f.key == "MediationServer.MediaPortEnd"] == ["error"]


def test_the_media_relay_rules_and_its_range() -> None:
    raw = site_settings(
        "Lab", MediaRelay={"Enabled": True}, EdgeServer={"ExternalMRPortRange": "50000-50099"}
    )
    c = build_checklist(deployment_from_settings(parse_settings(raw)))
    assert [(r.protocol, r.ports) for r in rules(c, key="MediaRelay.UDPPort")] == [("UDP", "3478")]
    assert [r.ports for r in rules(c, key="EdgeServer.ExternalMRPortRange")] == ["50000-50099"]
    (message,) = findings(c, "EdgeServer.ExternalMRPortRange")
    assert "100 relay ports = 50 relayed calls" in message
    assert any(x.role == "site CA" for x in c.certificates)  # MRAS is mutual TLS


# --- several sites ----------------------------------------------------------------------------


def two_sites() -> Checklist:
    ams = site_settings(
        "Amsterdam",
        Common={"ServerName": "ams-1"},
        EdgeServer={"ExternalSIPPoolName": "ams.contoso.com", "ExternalSIPIPs": "192.168.1.5"},
        MediationServer={"IP": "192.168.1.45", "InternalSubnets": "192.168.1.0/24"},
    )
    sea = site_settings(
        "Seattle",
        Common={"ServerName": "sea-1"},
        EdgeServer={"ExternalSIPPoolName": "sea.contoso.com", "ExternalSIPIPs": "10.10.1.5"},
        MediationServer={"IP": "10.10.1.8", "InternalSubnets": "10.10.1.0/24"},
    )
    parts = [
        (f"{n}.toml", deployment_from_settings(parse_settings(r), source=n))
        for n, r in (("ams", ams), ("sea", sea))
    ]
    return build_checklist(merge_deployments(parts))


def test_two_sites_of_settings_files_edge_records_and_geo_dns() -> None:
    c = two_sites()
    assert c.sites == ("Amsterdam", "Seattle")
    edge = {(r.name, r.value, r.site) for r in c.dns if r.visibility == "external"}
    assert edge == {
        ("ams.contoso.com", "192.168.1.5", "Amsterdam"),
        ("sea.contoso.com", "10.10.1.5", "Seattle"),
    }
    bypass = {(r.value, r.site) for r in c.dns if r.name == "hybridvoice.contoso.com"}
    assert bypass == {("192.168.1.45", "Amsterdam"), ("10.10.1.8", "Seattle")}
    assert c.geo_dns is not None
    sites = {
        s.name: ([str(n) for n in s.subnets], [str(a) for a in s.addresses])
        for s in c.geo_dns.sites
    }
    assert sites == {
        "Amsterdam": (["192.168.1.0/24"], ["192.168.1.45"]),
        "Seattle": (["10.10.1.0/24"], ["10.10.1.8"]),
    }
    assert not [f for f in c.findings if f.severity == "error"]
    edges = [x for x in c.certificates if x.role == "access edge (external)"]
    assert [(x.holder, x.subject) for x in edges] == [
        ("site Amsterdam", "CN=ams.contoso.com"),
        ("site Seattle", "CN=sea.contoso.com"),
    ]


def fleet() -> Any:
    return deployment_from_text("fleet.toml", FLEET_EXAMPLE)


def test_fleet_per_site_edge_records_and_the_shared_name_finding() -> None:
    c = build_checklist(fleet())
    assert c.sites == ("Amsterdam", "Seattle")
    assert len(c.sizing) == 7  # 4 + 3 appliances
    edge = {(r.name, r.site) for r in c.dns if r.visibility == "external"}
    assert edge == {("edge.contoso.example", "Amsterdam"), ("edge.contoso.example", "Seattle")}
    shared = [m for m in findings(c, "EdgeServer.ExternalSIPPoolName") if "both publish" in m]
    assert shared == [
        "sites Amsterdam and Seattle both publish edge.contoso.example: each site "
        "needs its own access edge pool FQDN (the online service tells sites "
        "apart by it)"
    ]
    gateways = {r.destination for r in rules(c, direction="outbound", key="ams-gw.Port")}
    assert gateways == {"gateway ams-gw 127.0.0.3"}


def test_fleet_media_ports_per_appliance_too_small() -> None:
    c = build_checklist(fleet())
    assert {(s.ports, s.calls_fit, s.calls) for s in c.sizing} == {(400, 100, 500)}
    assert findings(c, "Fleet.MediaPortsPerAppliance") == [
        "every appliance's media range holds 400 ports = 100 calls at 4 ports per call, but "
        "the appliance takes 500 calls (HardwareType Normal): it needs 2000 ports: set "
        "MediaPortsPerAppliance = 2000"
    ]


def test_fleet_geo_dns_needs_subnets_per_site() -> None:
    c = build_checklist(fleet())  # every site's InternalSubnets is the host's loopback
    assert c.geo_dns is None
    (message,) = set(findings(c, "MediationServer.InternalSubnets"))
    assert "overlaps" in message and "a client must belong to one site" in message
    geo = {
        "GeoDns": {
            "ServiceName": "hybridvoice.contoso.example",
            "NameServerIPs": ["192.168.1.2"],
            "Sites": {
                "Amsterdam": {"ClientSubnets": ["192.168.1.0/24"]},
                "Seattle": {"ClientSubnets": ["10.10.1.0/24", "2001:db8:2::/48"]},
            },
        }
    }
    c = build_checklist(fleet(), geo_dns=geo)
    assert c.geo_dns is not None
    subnets = {s.name: [str(n) for n in s.subnets] for s in c.geo_dns.sites}
    assert subnets == {
        "Amsterdam": ["192.168.1.0/24"],
        "Seattle": ["10.10.1.0/24", "2001:db8:2::/48"],
    }
    assert {str(a) for s in c.geo_dns.sites for a in s.addresses} == {"127.0.0.1"}
    assert not findings(c, "MediationServer.InternalSubnets")


def test_a_geo_dns_file_missing_a_site_is_refused_naming_it() -> None:
    geo = {
        "GeoDns": {
            "ServiceName": "hybridvoice.contoso.example",
            "Sites": {"Amsterdam": {"ClientSubnets": ["192.168.1.0/24"]}},
        }
    }
    with pytest.raises(SettingsError) as caught:
        build_checklist(fleet(), geo_dns=geo)
    assert any(p.key == "GeoDns.Sites.Seattle" for p in caught.value.problems)


# --- what cannot be read ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        (
            "notes.txt",
            "hello: world [",
            "neither TOML (a settings or fleet file) nor a CloudConnector.ini",
        ),
        (
            "x.toml",
            "[Nothing]\nA = 1\n",
            "TOML without [Common] (a settings file), [Fleet] or "
            "[[Site]] (a fleet file): found Nothing",
        ),
        ("x.ini", "[Network]\nA=1\n", "not a CloudConnector.ini: it has no [Common] section"),
        ("x.toml", "", "empty"),
    ],
)
def test_files_of_no_known_kind_are_refused_with_the_reason(
    name: str, text: str, reason: str
) -> None:
    with pytest.raises(ChecklistSourceError) as caught:
        deployment_from_text(name, text)
    assert caught.value.name == name and reason in caught.value.reason


def test_bad_values_are_named_by_key() -> None:
    ini = INI.read_text().replace("Port=5060", "Port=70000")
    with pytest.raises(SettingsError) as caught:
        deployment_from_text("CloudConnector.ini", ini)
    assert any(p.key == "Gateway1.Port" for p in caught.value.problems)
    fleet_text = FLEET_EXAMPLE.replace("Appliances = 4", "Appliances = 17")
    with pytest.raises(SettingsError) as caught:
        deployment_from_text("fleet.toml", fleet_text)
    assert any(p.key == "Site[Amsterdam].Appliances" for p in caught.value.problems)


def test_merging_refuses_a_fleet_and_two_appliances_of_one_name() -> None:
    one = deployment_from_settings(lab_settings())
    with pytest.raises(ChecklistSourceError, match="give it alone"):
        merge_deployments([("a.toml", one), ("fleet.toml", fleet())])
    with pytest.raises(ChecklistSourceError, match=r"'appliance1' is a\.toml's too"):
        merge_deployments([("a.toml", one), ("b.toml", copy.copy(one))])


def test_findings_of_several_appliances_are_one_naming_them_all() -> None:
    c = build_checklist(fleet())
    unset = findings(c, "EdgeServer.ExternalSIPPoolName")
    names = ", ".join(
        [*(f"amsterdam-{n}" for n in range(1, 5)), *(f"seattle-{n}" for n in (1, 2, 3))]
    )
    assert [m for m in unset if m.startswith(f"{names}: not set, so the access edge is ")]
    assert len(c.findings) == len(set(c.findings))
    severities = [f.severity for f in c.findings]
    assert severities == sorted(severities)  # "error" before "warning"


def test_the_geo_dns_policy_file_of_the_report_reads_back() -> None:
    geo = {
        "GeoDns": {
            "ServiceName": "hybridvoice.contoso.example",
            "NameServer": "ns1.example.net",
            "Sites": {
                "Amsterdam": {"ClientSubnets": ["192.168.1.0/24"]},
                "Seattle": {"ClientSubnets": ["10.10.1.0/24"]},
            },
        }
    }
    given = build_checklist(fleet(), geo_dns=geo).geo_dns
    assert given is not None
    again = policy_from_settings(parse_geo_dns(tomllib.loads(geo_dns_toml(given))))
    assert again == given
    derived = two_sites().geo_dns  # no name server of ours: the file says to add one
    assert derived is not None and derived.nameserver == ""
    text = geo_dns_toml(derived)
    assert '# NameServer = "ns1.contoso.com"' in text
    raw = tomllib.loads(text)
    raw["GeoDns"]["NameServer"] = "ns1.example.net"
    assert policy_from_settings(parse_geo_dns(raw)).sites == derived.sites


def test_ini_with_the_edges_names_and_its_media_relay() -> None:
    edge = (
        "InternalServerName=EdgeServer\nExternalSIPPoolName=ap.contoso.com\n"
        "ExternalSIPIPs=192.168.213.10\nExternalMRFQDNPoolName=mr.contoso.com\n"
        "ExternalMRIPs=192.168.213.20\nExternalMRPublicIPs=198.51.100.20\n"
    )
    text = INI.read_text().replace("InternalServerName=EdgeServer\n", edge)
    c = build_checklist(deployment_from_text("CloudConnector.ini", text))
    external = {(r.name, r.value) for r in c.dns if r.visibility == "external"}
    assert external == {("ap.contoso.com", "192.168.213.10"), ("mr.contoso.com", "198.51.100.20")}
    (cert,) = [x for x in c.certificates if x.role == "access edge (external)"]
    assert cert.subject == "CN=ap.contoso.com"
    assert cert.sans == ("DNS:ap.contoso.com", "DNS:sip.contoso.com", "DNS:sip.fabrikam.com")
    relay = "CCE-AMS-1 media relay 192.168.213.20 (public 198.51.100.20)"
    assert [(r.destination, r.ports) for r in rules(c, key="MediaRelay.UDPPort")] == [
        (relay, "3478")
    ]
    assert [r.ports for r in rules(c, key="EdgeServer.ExternalMRPortRange")] == ["50000-59999"]
    assert not findings(c, "EdgeServer.ExternalSIPPoolName")
    assert findings(c, "EdgeServer.ExternalMRPublicIPs")  # a documentation address, not public
    assert not findings(c, "EdgeServer.ExternalMRPortRange")  # 10,000 ports: 5,000 calls


def test_a_pool_name_that_is_no_fqdn_is_a_finding() -> None:
    raw = site_settings("Lab", EdgeServer={"ExternalSIPPoolName": "ap"})
    c = build_checklist(deployment_from_settings(parse_settings(raw)))
    (message,) = findings(c, "EdgeServer.ExternalSIPPoolName")
    assert "'ap' is no fully qualified name" in message and "ap.contoso.com" in message


@pytest.mark.parametrize("variant", ["defaults", "ini", "relay", "fleet"])
def test_every_listener_in_use_has_its_firewall_rule(variant: str) -> None:
    """Each address a role listens on (cms.listeners, what `up` binds) is in a rule with its
    key and port; a gateway-side listener only when a gateway speaks its transport."""
    if variant == "defaults":
        deployment = defaults_deployment()
    elif variant == "ini":
        deployment = deployment_from_text("CloudConnector.ini", INI.read_text())
    elif variant == "relay":
        raw = site_settings("Lab", MediaRelay={"Enabled": True})
        deployment = deployment_from_settings(parse_settings(raw))
    else:
        deployment = fleet()
    c = build_checklist(deployment)
    by_key = {(r.key, r.ports) for r in c.firewall}
    transports = {"MediationServer.TCPPort": "TCP", "MediationServer.TLSPort": "TLS",
                  "MediationServer.UDPPort": "UDP"}  # fmt: skip
    checked = 0
    for a in deployment.appliances:
        used = {g.protocol for g in a.settings.gateways if g.enabled}
        for x in listeners(a.settings):
            if x.key in transports and transports[x.key] not in used:
                continue
            assert (x.key, str(x.port)) in by_key, f"{variant}: no rule for {x}"
            checked += 1
    assert checked >= 6


def test_the_seeds_bypass_example_from_seven_appliance_settings() -> None:
    """Seed 003: hybridvoice.adatum.biz, Amsterdam 192.168.1.45-48, Seattle 10.10.1.8-10. The
    sites' addresses come from the appliances' settings; the policy file only names the
    subnets. The report's Windows commands are the checked fixture, byte for byte."""
    addresses = {"Amsterdam": AMSTERDAM, "Seattle": SEATTLE}
    parts = []
    for site, ips in addresses.items():
        for n, ip in enumerate(ips, start=1):
            raw = site_settings(site, Common={"SIPDomains": "adatum.biz",
                                              "ServerName": f"{site.lower()}-{n}"},
                                MediationServer={"IP": ip})  # fmt: skip
            parts.append((f"{site}-{n}.toml", deployment_from_settings(parse_settings(raw))))
    geo = seed_raw()
    for site in geo["GeoDns"]["Sites"].values():
        del site["MediationIPs"]
    c = build_checklist(merge_deployments(parts), geo_dns=geo)
    bypass = [(r.value, r.site) for r in c.dns if r.name == NAME]
    assert bypass == [(ip, site) for site, ips in addresses.items() for ip in ips]
    assert all(r.visibility == "internal" for r in c.dns if r.name == NAME)
    assert c.geo_dns is not None
    fixture = Path(__file__).parents[1] / "fixtures" / "geo_dns" / "seed-windows.ps1"
    assert windows_commands(c.geo_dns) == fixture.read_text()
    assert fixture.read_text().rstrip("\n") in to_markdown(c)
