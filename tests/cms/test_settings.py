"""Appliance settings: defaults, CloudConnector.ini-style keys, one test per kind of problem,
every problem listed at once, TOML loading, CloudConnector.ini import."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from hybridvoice.cms.ini import import_ini
from hybridvoice.cms.settings import (
    Common,
    Gateway,
    Settings,
    SettingsError,
    TrunkConfiguration,
    listener_clashes,
    listeners,
    load_settings,
    parse_settings,
    python_template,
)

SAMPLE = """\
# keys as in CloudConnector.ini
[Common]
SIPDomains = "contoso.com fabrikam.com"
SiteName = "Amsterdam"
ServerName = "cc-ams-1"
HardwareType = "Minimum"
CountryCode = "nl"

[MediationServer]
IP = "10.0.1.5"
UDPPort = 5070
InternalSubnets = ["10.0.0.0/16", "fd00::/8"]

[Gateway1]
FQDN = "gw1.contoso.com"
IP = "10.0.2.1"
Port = 5060
Protocol = "TCP"
VoiceRoutes = "LocalRoute"

[Gateway2]
FQDN = "gw2.contoso.com"
Protocol = "tls"
VoiceRoutes = ["LocalRoute", "International"]
MaxConcurrentSessions = 30
FailoverResponseCodes = [408, 480, 503]
ForwardPAI = true
InboundCalleeRules = [["^0(\\\\d{9})$", "+31$1"]]
OutboundCallerRules = [{ Pattern = "^\\\\+31(\\\\d+)$", Replacement = "0\\\\1" }]

[HybridVoiceRoutes]
LocalRoute = "^\\\\+31"
International = ".*"

[TrunkConfiguration]
EnableReferSupport = false
OptionsIntervalSeconds = 0.2
UnhealthyAfterMissed = 2
"""


def minimal(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"Common": {"SIPDomains": "contoso.com", "SiteName": "AMS"}}
    raw.update(sections)
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(raw)
    return [str(p) for p in info.value.problems]


def one_problem(raw: dict[str, Any]) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


# --- loading and defaults -----------------------------------------------------------------------


def test_load_sample_toml(tmp_path: Path) -> None:
    path = tmp_path / "hybridvoice.toml"
    path.write_text(SAMPLE)
    s = load_settings(path)
    assert s.common.sip_domains == ("contoso.com", "fabrikam.com")
    assert s.common.default_domain == "contoso.com"
    assert s.common.country_code == "NL"
    assert s.common.max_concurrent_calls == 50
    assert s.mediation_server.ip == "10.0.1.5"
    assert (s.mediation_server.tcp_port, s.mediation_server.tls_port) == (5068, 5067)
    assert s.mediation_server.udp_port == 5070
    assert ipaddress.ip_network("fd00::/8") in s.mediation_server.internal_subnets
    assert [g.name for g in s.gateways] == ["Gateway1", "Gateway2"]
    gw1, gw2 = s.gateways
    assert gw1.voice_routes == ("LocalRoute",)
    assert gw2.protocol == "TLS" and gw2.port == 5061  # TLS default port
    assert gw2.failover_response_codes == (408, 480, 503)
    assert gw2.max_concurrent_sessions == 30
    assert gw2.inbound_callee_rules[0].template == r"+31\g<1>"
    assert gw2.outbound_caller_rules[0].replacement == r"0\1"
    assert s.trunk_configuration.enable_refer_support is False
    assert s.trunk_configuration.options_interval_seconds == 0.2
    assert s.trunk_configuration.unhealthy_after_missed == 2
    # per-gateway ForwardPAI overrides [TrunkConfiguration]; unset inherits it
    assert gw2.forwards_pai(s.trunk_configuration) is True
    assert gw1.forwards_pai(s.trunk_configuration) is False


def test_defaults_mirror_cce_and_direct_routing() -> None:
    s = parse_settings(
        minimal(
            Gateway1={"IP": "10.0.0.9", "VoiceRoutes": "LocalRoute"},
            HybridVoiceRoutes={"LocalRoute": ".*"},
        )
    )
    assert s.common.hardware_type == "Normal" and s.common.max_concurrent_calls == 500
    ms = s.mediation_server
    assert (ms.tcp_port, ms.tls_port, ms.udp_port) == (5068, 5067, None)
    assert (ms.media_port_start, ms.media_port_end) == (49152, 57500)
    assert ms.media_calls == (57500 - 49152 + 1) // 4
    assert ms.bypass_bind == (ms.ip, 80)
    gw = s.gateways[0]
    assert (gw.port, gw.protocol, gw.enabled, gw.send_sip_options) == (5060, "TCP", True, True)
    assert gw.failover_time_seconds == 10 and gw.failover_response_codes == (408, 503, 504)
    assert gw.max_concurrent_sessions is None and gw.media_bypass is False
    tc = s.trunk_configuration
    assert tc.enable_refer_support and tc.enable_fast_failover_timer
    assert not tc.forward_pai and not tc.forward_call_history
    assert tc.options_interval_seconds == 60 and tc.unhealthy_after_missed == 3


def test_max_concurrent_calls_override() -> None:
    s = parse_settings(
        minimal(Common={"SIPDomains": "a.com", "SiteName": "x", "MaxConcurrentCalls": 7})
    )
    assert s.common.max_concurrent_calls == 7


def test_settings_are_frozen() -> None:
    s = parse_settings(minimal())
    with pytest.raises(ValueError, match="frozen"):
        s.common.site_name = "other"


def test_python_construction_checks_cross_section_problems() -> None:
    gw = Gateway(name="Gateway1", ip="10.0.0.1", voice_routes=("Missing",))
    with pytest.raises(ValueError, match=r"Gateway1\.VoiceRoutes: unknown route Missing"):
        Settings(common=Common(sip_domains=("a.com",), site_name="x"), gateways=(gw,))
    assert TrunkConfiguration().options_interval_seconds == 60


def test_python_template() -> None:
    assert python_template("+31$1") == r"+31\g<1>"
    assert python_template("${area}-$12") == r"\g<area>-\g<12>"
    assert python_template("$$5") == "$5"
    assert python_template(r"0\1") == r"0\1"


# --- one test per kind of problem --------------------------------------------------------------


def test_port_out_of_range() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1"}, Gateway2={"IP": "10.0.0.2", "Port": 70000})
    assert one_problem(raw) == "Gateway2.Port: must be 1-65535, got 70000"


def test_voice_route_unknown() -> None:
    raw = minimal(
        Gateway1={"IP": "10.0.0.1", "VoiceRoutes": "LocalRoute Intl"},
        HybridVoiceRoutes={"LocalRoute": ".*"},
    )
    assert one_problem(raw) == (
        "Gateway1.VoiceRoutes: unknown route Intl (HybridVoiceRoutes has: LocalRoute)"
    )


def test_route_regex_does_not_compile() -> None:
    msg = one_problem(minimal(HybridVoiceRoutes={"Bad": "^+1(["}))
    assert msg.startswith("HybridVoiceRoutes.Bad: regular expression does not compile (")
    assert msg.endswith("got '^+1(['")


def test_translation_rule_pattern_does_not_compile() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "OutboundCalleeRules": [["(\\d", "x"]]})
    assert one_problem(raw).startswith(
        "Gateway1.OutboundCalleeRules[0].Pattern: regular expression does not compile"
    )


def test_translation_rule_replacement_does_not_fit() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "InboundCallerRules": [["^0(\\d+)$", "+31$2"]]})
    msg = one_problem(raw)
    assert msg.startswith("Gateway1.InboundCallerRules[0]: Replacement '+31$2' does not fit")
    assert "invalid group reference 2" in msg


def test_translation_rule_shape() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "InboundCallerRules": [["a", "b", "c"]]})
    assert one_problem(raw) == (
        "Gateway1.InboundCallerRules[0]: must be [pattern, replacement], got ['a', 'b', 'c']"
    )


def test_unknown_key_and_unknown_section() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "Prot": "TCP"}, Gateways3={})
    assert problems(raw) == ["Gateway1.Prot: unknown key", "Gateways3: unknown key"]


def test_missing_required_key() -> None:
    assert one_problem({"Common": {"SIPDomains": "a.com"}}) == "Common.SiteName: required"
    assert one_problem({}) == "Common: required"


def test_bad_choice() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "Protocol": "sctp"})
    assert (
        one_problem(raw) == "Gateway1.Protocol: input should be 'TCP', 'TLS' or 'UDP', got 'SCTP'"
    )


def test_bad_hardware_type() -> None:
    raw = minimal(Common={"SIPDomains": "a.com", "SiteName": "x", "HardwareType": "Huge"})
    assert one_problem(raw) == (
        "Common.HardwareType: input should be 'Normal' or 'Minimum', got 'Huge'"
    )


def test_not_a_number() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "MaxConcurrentSessions": "lots"})
    assert one_problem(raw) == (
        "Gateway1.MaxConcurrentSessions: input should be a valid integer, unable to parse "
        "string as an integer, got 'lots'"
    )


def test_number_below_minimum() -> None:
    raw = minimal(TrunkConfiguration={"OptionsIntervalSeconds": 0})
    assert one_problem(raw) == (
        "TrunkConfiguration.OptionsIntervalSeconds: input should be greater than or equal to "
        "0.05, got 0"
    )


def test_bad_ip_address() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.300"})
    assert one_problem(raw) == "Gateway1.IP: not an IP address, got '10.0.0.300'"


def test_bad_host_name() -> None:
    raw = minimal(Gateway1={"FQDN": "gw_1 .example.com"})
    assert one_problem(raw) == "Gateway1.FQDN: not a valid host name, got 'gw_1 .example.com'"


def test_bad_subnet() -> None:
    raw = minimal(MediationServer={"InternalSubnets": ["10.0.0.1/8"]})
    assert one_problem(raw) == (
        "MediationServer.InternalSubnets[0]: not a subnet (10.0.0.1/8 has host bits set), "
        "got '10.0.0.1/8'"
    )


def test_gateway_needs_an_address() -> None:
    assert one_problem(minimal(Gateway1={"Port": 5060})) == "Gateway1: needs FQDN or IP (or both)"


def test_failover_codes_range() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.1", "FailoverResponseCodes": "408, 200"})
    assert one_problem(raw) == (
        "Gateway1.FailoverResponseCodes: response codes must be 300-699, got 200"
    )


def test_media_port_range() -> None:
    odd = minimal(MediationServer={"MediaPortStart": 49153})
    assert one_problem(odd).startswith("MediationServer.MediaPortStart: must be even")
    small = minimal(MediationServer={"MediaPortStart": 50000, "MediaPortEnd": 50002})
    assert one_problem(small) == (
        "MediationServer: MediaPortStart-MediaPortEnd must hold at least 4 ports (one call), "
        "got 50000-50002"
    )


def test_nothing_to_listen_on() -> None:
    raw = minimal(MediationServer={"TCPPort": None, "TLSPort": None})
    assert "nothing to listen on" in one_problem(raw)


def test_country_code() -> None:
    raw = minimal(Common={"SIPDomains": "a.com", "SiteName": "x", "CountryCode": "NLD"})
    assert one_problem(raw) == "Common.CountryCode: must be a two-letter ISO 3166 code, got 'NLD'"


def test_two_gateways_one_address() -> None:
    raw = minimal(Gateway1={"IP": "10.0.0.9"}, Gateway2={"IP": "10.0.0.9"})
    assert one_problem(raw) == "Gateway2.IP: 10.0.0.9:5060 is Gateway1's too"


def test_defaults_fit_on_one_host() -> None:
    """Every role with its default listeners on 127.0.0.1: no two on one address."""
    s = parse_settings(minimal())
    found = listeners(s)
    assert listener_clashes(found) == []
    assert {x.key for x in found} >= {
        "EdgeServer.ExternalSIPPort", "EdgeServer.InternalPort", "MediationServer.InternalPort",
        "MediationServer.TCPPort", "MediationServer.TLSPort", "Online.SIPPort",
        "Online.ServiceURL", "Management.Port", "MediationServer.BypassServicePort",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("sections", "key", "other"),
    [
        # the original's per-VM ports, written into one file for one host
        ({"EdgeServer": {"InternalPort": 5061, "ExternalSIPPort": 5061}},
         "EdgeServer.InternalPort", "[EdgeServer] ExternalSIPPort"),
        ({"MediationServer": {"InternalPort": 5068, "InternalProtocol": "TCP"}},
         "MediationServer.TCPPort", "[MediationServer] InternalPort"),
        # TLS and HTTP share TCP's port space
        ({"Management": {"Port": 5067}}, "Management.Port", "[MediationServer] TLSPort"),
        # the wildcard address takes the port on every address of its family
        ({"MediationServer": {"IP": "0.0.0.0", "UDPPort": 5060}},
         "Online.SIPPort", "[MediationServer] UDPPort"),
        ({"Online": {"ServiceURL": "http://127.0.0.1:8472"}},
         "Management.Port", "[Online] ServiceURL"),
    ],
)  # fmt: skip
def test_listeners_on_one_address_are_refused_naming_both_keys(
    sections: dict[str, Any], key: str, other: str
) -> None:
    problem = one_problem(minimal(**sections))
    assert problem.startswith(f"{key}: ") and f"is also {other}'s" in problem


def test_listeners_that_do_not_clash() -> None:
    """UDP and TCP on one port, two IPs, two families, port 0 (any free port) are fine."""
    parse_settings(minimal(MediationServer={"UDPPort": 5068}))
    parse_settings(minimal(MediationServer={"IP": "127.0.0.2", "InternalPort": 5071}))
    parse_settings(minimal(MediationServer={"IP": "::", "InternalPort": 5071}))
    parse_settings(minimal(EdgeServer={"InternalPort": 0}, MediationServer={"InternalPort": 0}))


def test_every_problem_is_listed() -> None:
    raw = {
        "Common": {"SIPDomains": "a.com", "SiteName": "", "Colour": "blue"},
        "Gateway1": {"IP": "10.0.0.1", "Port": 0, "VoiceRoutes": "Nope"},
        "Gateway2": {"IP": "x"},
        "HybridVoiceRoutes": {"R": "["},
        "TrunkConfiguration": {"EnableReferSupport": "maybe"},
    }
    found = problems(raw)
    keys = [p.split(":")[0] for p in found]
    assert keys == [
        "Common.SiteName",
        "Common.Colour",
        "Gateway1.Port",
        "Gateway1.VoiceRoutes",
        "Gateway2.IP",
        "HybridVoiceRoutes.R",
        "TrunkConfiguration.EnableReferSupport",
    ]
    with pytest.raises(SettingsError, match="7 problems in the settings"):
        parse_settings(raw)


def test_load_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[Common\nSiteName = 1\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    (problem,) = info.value.problems
    assert problem.key == str(path) and problem.reason.startswith("not valid TOML")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")


def test_load_invalid_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SAMPLE.replace("Port = 5060", "Port = 70000"))
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert [str(p) for p in info.value.problems] == ["Gateway1.Port: must be 1-65535, got 70000"]


# --- CloudConnector.ini import ------------------------------------------------------------------

#: a CloudConnector.ini as the CCE docs show it (sample values), kept as a fixture file
CCE_INI = (Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini").read_text()


def test_import_cloudconnector_ini() -> None:
    imported = import_ini(CCE_INI)
    s, unmapped = imported.settings, imported.unmapped
    assert s.common.sip_domains == ("contoso.com", "fabrikam.com")
    assert s.common.site_name == "Amsterdam" and s.common.max_concurrent_calls == 500
    assert s.common.state is None  # empty = unset
    assert s.mediation_server.ip == "192.168.213.6"
    assert s.mediation_server.pool_name == "mspool.cce.local"
    assert s.trunk_configuration.forward_pai is True
    gw1, gw2 = s.gateways
    assert (gw1.fqdn, gw1.ip, gw1.port, gw1.protocol) == (
        "gw1.contoso.com",
        "192.168.213.200",
        5060,
        "TCP",
    )
    assert (gw2.ip, gw2.protocol, gw2.voice_routes) == (None, "TLS", ("LocalRoute", "Intl"))
    assert s.hybrid_voice_routes == {"LocalRoute": r"^\+31", "Intl": ".*"}
    assert unmapped == (
        "Common.BaseVMIP",
        "Common.WSUSServer",
        "Network.CorpnetIPPrefixLength",
        "Network.CorpnetSwitchName",
        "Network.CorpnetDefaultGateway",
        "PrimaryCMS.ServerName",
        "PrimaryCMS.IP",
        "PrimaryCMS.ShareName",
        "Gateway2.CodecPreference",
    )


def test_import_ini_reports_invalid_values_by_ini_key() -> None:
    text = CCE_INI.replace("Port=5060", "Port=70000").replace("Intl=.*", "Intl=([")
    with pytest.raises(SettingsError) as info:
        import_ini(text)
    found = [str(p) for p in info.value.problems]
    assert "Gateway1.Port: must be 1-65535, got 70000" in found
    assert any(p.startswith("HybridVoiceRoutes.Intl: regular expression") for p in found)


def test_import_ini_not_an_ini_file() -> None:
    with pytest.raises(SettingsError, match="not an ini file"):
        import_ini("SIPDomains=contoso.com\n")
    with pytest.raises(SettingsError, match="not an ini file"):
        import_ini("[Common]\nSiteName=a\n[Common]\nSiteName=b\n")
