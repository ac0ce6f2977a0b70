"""CloudConnector.ini import: what cannot run on one host is moved and said, nothing is
dropped without a word (keys under the wrong section, unknown keys, empty values)."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.cms.ini import import_ini
from hybridvoice.cms.settings import (
    PRIVILEGED_PORTS,
    SettingsError,
    ini_key,
    listener_clashes,
    listeners,
)
from hybridvoice.cms.template import render_settings

CCE_INI = (Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini").read_text()
#: the fixture with every role on one address, as on one host
ONE_HOST = CCE_INI.replace("IP=192.168.213.6", "IP=127.0.0.1")


def test_the_fixture_imports_to_listeners_that_fit_one_host() -> None:
    imported = import_ini(ONE_HOST)
    found = listeners(imported.settings)
    assert listener_clashes(found) == []
    assert all(x.port >= PRIVILEGED_PORTS for x in found)
    moved = {n.key: (n.old, n.new) for n in imported.notes}
    # the original's per-VM ports: edge external keeps 5061, the rest moves
    assert imported.settings.edge_server.external_sip_port == 5061
    assert moved["EdgeServer.InternalPort"] == ("5061", "5071")
    assert moved["MediationServer.InternalPort"] == ("5061", "5062")
    assert moved["Online.SIPPort"] == ("5061", "5060")
    assert moved["MediationServer.BypassServicePort"] == ("80", "8471")
    why = {n.key: n.why for n in imported.notes}
    assert "[EdgeServer] ExternalSIPPort" in why["EdgeServer.InternalPort"]
    assert "privilege" in why["MediationServer.BypassServicePort"]
    assert import_ini(ONE_HOST) == imported  # deterministic


def test_tls_between_co_hosted_roles_is_kept_for_the_site_ca() -> None:
    imported = import_ini(CCE_INI)
    s = imported.settings
    hops = (s.online.sip_protocol, s.edge_server.external_protocol,
            s.edge_server.internal_protocol, s.mediation_server.internal_protocol)  # fmt: skip
    assert hops == ("TLS",) * 4  # MTLS as in the original: hybridvoice up issues certificates
    assert not [n for n in imported.notes if (n.old, n.new) == ("TLS", "TCP")]
    text = render_settings(s, notes=imported.notes)
    assert "the site CA issues the" in text and "hybridvoice ca status" in text
    # a gateway's own TLS is its business: kept
    assert s.gateway("Gateway2").protocol == "TLS"


_PORTS = st.sampled_from([0, 80, 443, 5060, 5061, 5062, 5067, 5068, 5069, 5071, 8470, 8471])
_PORT_KEYS = {
    "MediationServer": ("TCPPort", "TLSPort", "UDPPort", "InternalPort", "BypassServicePort"),
    "EdgeServer": ("InternalPort", "ExternalSIPPort"),
}


@settings(max_examples=150, deadline=None)
@given(
    ports=st.fixed_dictionaries(
        {f"{s}.{k}": _PORTS for s, keys in _PORT_KEYS.items() for k in keys}
    ),
    protocols=st.lists(st.sampled_from(["TCP", "TLS", "UDP"]), min_size=3, max_size=3),
)
def test_any_clash_is_separated(ports: dict[str, int], protocols: list[str]) -> None:
    """Whatever ports the ini writes (clashing, privileged, 0 = any free one), the result
    starts on one host: no two listeners on one address, nothing below 1024, every move
    noted with its key, the same moves for the same input."""
    sections: dict[str, list[str]] = {"MediationServer": ["IP=127.0.0.1"], "EdgeServer": []}
    for key, port in ports.items():
        section, _, name = key.partition(".")
        sections[section].append(f"{name}={port}")
    for key, protocol in zip(("MediationServer.InternalProtocol", "EdgeServer.InternalProtocol",
                              "EdgeServer.ExternalProtocol"), protocols, strict=True):  # fmt: skip
        section, _, name = key.partition(".")
        sections[section].append(f"{name}={protocol}")
    text = "[Common]\nSIPDomains=contoso.com\nSiteName=AMS\n" + "".join(
        f"[{name}]\n" + "".join(f"{line}\n" for line in lines) for name, lines in sections.items()
    )
    imported = import_ini(text)
    found = listeners(imported.settings)
    assert listener_clashes(found) == []
    assert all(x.port == 0 or x.port >= PRIVILEGED_PORTS for x in found)
    keys = {x.key for x in found}
    for note in imported.notes:
        assert note.key in keys or note.key.endswith("Protocol"), note
    for key, port in ports.items():
        now = next(x.port for x in found if x.key == key)
        if now != port:
            assert any(n.key == key and n.old == str(port) for n in imported.notes), key
    assert import_ini(text) == imported


def test_trunk_keys_under_common_go_to_trunk_configuration_with_a_note() -> None:
    text = CCE_INI.replace("[TrunkConfiguration]\n", "[TrunkConfiguration]\nForwardPAI=false\n")
    text = text.replace("ForwardPAI=true\n", "").replace(
        "HardwareType=Normal\n",
        "HardwareType=Normal\nForwardPAI=true\nForwardCallHistory=true\n"
        "EnableFastFailoverTimer=false\nMaxConcurrentSessions=20\n",
    )
    text = text.replace("ForwardCallHistory=false\n", "").replace(
        "EnableFastFailoverTimer=true\n", ""
    )
    imported = import_ini(text)
    trunk = imported.settings.trunk_configuration
    assert trunk.forward_call_history is True and trunk.enable_fast_failover_timer is False
    assert trunk.forward_pai is False  # [TrunkConfiguration] says so itself: it wins
    notes = {n.key: n for n in imported.notes}
    for key in ("ForwardCallHistory", "EnableFastFailoverTimer"):
        assert "written under [Common]" in notes[f"TrunkConfiguration.{key}"].why
    assert "[TrunkConfiguration] sets it" in notes["Common.ForwardPAI"].why
    # a per-gateway key under [Common]: every gateway that does not set it
    assert [g.max_concurrent_sessions for g in imported.settings.gateways] == [20, 20]
    assert "Gateway1.MaxConcurrentSessions" in notes
    assert not any(k.startswith("Common.") for k in imported.unmapped if "Forward" in k)


def test_nothing_is_dropped_without_a_word() -> None:
    """Every non-empty key of the ini is carried over, noted, or listed as not mapped."""
    text = CCE_INI.replace("LocalRoute=^\\+31", "LocalRoute=^\\+31\nEmptyRoute=")
    text = text.replace("[EdgeServer]\n", "[EdgeServer]\nColour=blue\nForwardPAI=true\n")
    text = text.replace("[Gateway1]\n", "[Gateway1]\nTimeZone=CET\nName=gw-one\n")
    imported = import_ini(text)
    dumped = imported.settings.model_dump(by_alias=True, mode="json")
    gateways = {g["Name"]: g for g in dumped["Gateways"]}
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(text)
    noted = {n.key.split(".")[1] for n in imported.notes}
    for section in parser.sections():
        for key, value in parser[section].items():
            where = f"{section}.{key}"
            carried = gateways.get(section) or dumped.get(section) or {}
            found = {k.lower() for k in carried}
            ok = where in imported.unmapped or key in noted or key.lower() in found
            assert ok or not value.strip(), f"{where} vanished"
    assert {"EdgeServer.Colour", "Gateway1.TimeZone", "Gateway1.Name",
            "HybridVoiceRoutes.EmptyRoute"} <= set(imported.unmapped)  # fmt: skip


def test_a_key_given_twice_keeps_the_later_with_a_note() -> None:
    text = CCE_INI.replace("[Gateway2]", "[gateway1]\nPort=5070\n[Gateway2]")
    imported = import_ini(text)
    assert imported.settings.gateway("Gateway1").port == 5070
    (note,) = [n for n in imported.notes if n.key == "Gateway1.Port"]
    assert (note.old, note.new) == ("5060", "5070") and "set twice" in note.why


def test_import_problems_still_name_the_ini_key() -> None:
    with pytest.raises(SettingsError) as info:
        import_ini(CCE_INI.replace("[MediationServer]", "[MediationServer]\nTCPPort=70000"))
    assert [p.key for p in info.value.problems] == [f"MediationServer.{ini_key('tcp_port')}"]


def test_an_imported_ini_reaches_the_online_api_over_https() -> None:
    """Appliances authenticate with site certificates: the imported ServiceURL is https on
    the management interface, and survives the settings file."""
    imported = import_ini(ONE_HOST)
    assert imported.settings.online.service_url == "https://127.0.0.1:8470"
    rendered = render_settings(imported.settings)
    assert 'ServiceURL = "https://127.0.0.1:8470"' in rendered
    assert "client certificate from the site CA" in rendered
