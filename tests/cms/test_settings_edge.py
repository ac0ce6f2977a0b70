"""``[MediaRelay]``: the edge's TURN relay and MRAS settings, their checks and listeners."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from hybridvoice.cms.ini import import_ini
from hybridvoice.cms.listeners import listeners
from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.cms.settings_edge import relay_addresses
from hybridvoice.cms.template import render_settings


def _raw(relay: dict[str, Any] | None = None, **edge: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"Common": {"SIPDomains": "example.com", "SiteName": "s1"}}
    if relay is not None:
        raw["MediaRelay"] = relay
    if edge:
        raw["EdgeServer"] = edge
    return raw


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(raw)
    return {p.key: p.reason for p in info.value.problems}


def test_defaults_leave_the_relay_off_without_external_mr_ips() -> None:
    s = parse_settings(_raw())
    mr, edge = s.media_relay, s.edge_server
    assert (mr.udp_port, mr.tcp_port, mr.mras_port) == (3478, 443, 8474)
    on, *_ = relay_addresses(mr, edge)
    assert not on
    assert not any(x.key.startswith("MediaRelay.") for x in listeners(s))


def test_external_mr_ips_switch_it_on_and_public_ips_are_advertised() -> None:
    s = parse_settings(
        _raw({"TCPPort": 3479}, ExternalMRIPs="127.0.0.2", ExternalMRPublicIPs="192.0.2.5")
    )
    edge = s.edge_server
    assert relay_addresses(s.media_relay, edge) == (True, "127.0.0.2", "192.0.2.5", "127.0.0.1")
    found = {x.key: (x.transport, x.host, x.port) for x in listeners(s)}
    assert found["MediaRelay.UDPPort"] == ("UDP", "127.0.0.2", 3478)
    assert found["MediaRelay.TCPPort"] == ("TCP", "127.0.0.2", 3479)
    assert found["MediaRelay.MRASPort"] == ("HTTP", "127.0.0.1", 8474)


def test_enabled_and_tcp_off() -> None:
    s = parse_settings(_raw({"Enabled": True, "TCPPort": False, "MRASIP": "127.0.0.3"}))
    keys = {x.key: x for x in listeners(s)}
    assert "MediaRelay.UDPPort" in keys and "MediaRelay.TCPPort" not in keys
    assert keys["MediaRelay.MRASPort"].host == "127.0.0.3"
    off = parse_settings(_raw({"Enabled": False}, ExternalMRIPs="127.0.0.2"))
    assert not any(x.key.startswith("MediaRelay.") for x in listeners(off))


def test_bad_values_name_the_key_and_the_reason() -> None:
    found = _problems(
        _raw(
            {
                "Enabled": True,
                "UDPPort": 70000,
                "UserQuota": 0,
                "MRASIP": "nowhere",
                "SecretFile": " ",
                "RequestsPerSecond": 0,
                "Realm": "",
                "Bogus": 1,
            }
        )
    )
    assert "65535" in found["MediaRelay.UDPPort"]
    assert "greater than or equal to 1" in found["MediaRelay.UserQuota"]
    assert "not an IP address" in found["MediaRelay.MRASIP"]
    assert "must name a file" in found["MediaRelay.SecretFile"]
    assert "greater than 0" in found["MediaRelay.RequestsPerSecond"]
    assert "printable" in found["MediaRelay.Realm"]
    assert found["MediaRelay.Bogus"] == "unknown key"


def test_relay_ports_clash_with_other_listeners() -> None:
    found = _problems(_raw({"Enabled": True, "MRASPort": 8472, "TCPPort": 5061}))
    assert "[Management] Port" in found["MediaRelay.MRASPort"]
    assert "[EdgeServer] ExternalSIPPort" in found["MediaRelay.TCPPort"]


def test_an_imported_ini_with_a_media_relay_moves_tcp_443_and_round_trips() -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini"
    text = fixture.read_text().replace(
        "ExternalMRPortRange=50000 59999", "ExternalMRPortRange=50000 59999\nExternalMRIPs=10.9.9.9"
    )
    imported = import_ini(text)
    moved = {n.key: (n.old, n.new) for n in imported.notes}
    assert moved["MediaRelay.TCPPort"] == ("443", "3478")  # privileged: TCP beside UDP 3478
    s = imported.settings
    found = {x.key: x for x in listeners(s)}
    assert (found["MediaRelay.UDPPort"].host, found["MediaRelay.TCPPort"].port) == (
        "10.9.9.9",
        3478,
    )
    again = parse_settings(tomllib.loads(render_settings(s)))
    assert again.media_relay == s.media_relay and again == s
