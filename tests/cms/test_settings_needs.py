"""Settings that need another switched on (``cms.settings_needs``): every gateway transport
needs the mediation role's listener of that transport; refused at load and at ``gateway
add|set`` with the gateway's key, the listener's key and what to set."""

from __future__ import annotations

from typing import Any

import pytest

from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.mgmt.gateways import GatewayChangeError, changed_settings

LISTENER = {"TCP": "TCPPort", "UDP": "UDPPort", "TLS": "TLSPort", "MTLS": "TLSPort"}
ALL_ON = {"TCPPort": 5068, "UDPPort": 5069, "TLSPort": 5067}


def raw(protocol: str, **mediation: Any) -> dict[str, Any]:
    return {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "AMS"},
        "MediationServer": {**ALL_ON, **mediation},
        "Gateway1": {"FQDN": "sbc1.contoso.com", "IP": "10.0.0.9", "Protocol": protocol},
    }


@pytest.mark.parametrize("protocol", sorted(LISTENER))
def test_every_gateway_transport_needs_its_listener(protocol: str) -> None:
    key = LISTENER[protocol]
    parse_settings(raw(protocol))  # on: fine
    with pytest.raises(SettingsError) as info:
        parse_settings(raw(protocol, **{key: False}))
    found = [str(p) for p in info.value.problems]
    assert found == [
        f"Gateway1.Protocol: {protocol} needs [MediationServer] {key} switched on (it is "
        f"false): the gateway calls in there; set {key} = {ALL_ON[key]}, or give Gateway1 "
        "another Protocol"
    ]


def test_a_disabled_gateway_needs_nothing() -> None:
    data = raw("MTLS", TLSPort=False)
    data["Gateway1"]["Enabled"] = False
    assert parse_settings(data).gateways[0].mutual_tls


def test_gateway_set_to_mtls_without_the_tls_port_is_refused_and_changes_nothing() -> None:
    settings = parse_settings(raw("TCP", TLSPort=False))
    with pytest.raises(GatewayChangeError) as info:
        changed_settings(settings, "Gateway1", {"protocol": "MTLS"}, create=False)
    assert [p.key for p in info.value.problems] == ["Gateway1.Protocol"]
    assert "TLSPort switched on" in info.value.problems[0].reason
    assert settings.gateways[0].protocol == "TCP"
