"""`hybridvoice gateway add|set` with the TLS keys (``mgmt.gateways.changed_settings``, what
the appliance API runs): Protocol MTLS, MutualTls, TrustedRootsFile, each refused with its key
and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridvoice.cms.settings import parse_settings
from hybridvoice.mgmt.gateways import GatewayChangeError, changed_settings

BASE = parse_settings({
    "Common": {"SIPDomains": "contoso.com", "SiteName": "AMS"},
    "Gateway1": {"FQDN": "sbc1.contoso.com", "IP": "10.0.0.9", "Protocol": "TLS"},
})  # fmt: skip


def test_protocol_mtls_and_back() -> None:
    mtls = changed_settings(BASE, "Gateway1", {"Protocol": "MTLS"}, create=False)
    gw = mtls.gateway("Gateway1")
    assert (gw.protocol, gw.mutual_tls, gw.port) == ("TLS", True, 5061)  # its port kept
    plain = changed_settings(mtls, "Gateway1", {"MutualTls": False}, create=False)
    assert plain.gateway("Gateway1").mutual_tls is False
    made = changed_settings(BASE, "gw2", {"IP": "10.0.0.8", "Protocol": "mtls"}, create=True)
    assert made.gateway("gw2").port == 5067


def test_bad_tls_changes_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(GatewayChangeError) as info:
        changed_settings(BASE, "Gateway1", {"TrustedRootsFile": str(tmp_path / "x.pem")},
                         create=False)  # fmt: skip
    (problem,) = info.value.problems
    assert problem.key == "Gateway1.TrustedRootsFile" and "cannot read" in problem.reason
    with pytest.raises(GatewayChangeError) as info:
        changed_settings(BASE, "Gateway1", {"Protocol": "TCP", "MutualTls": True}, create=False)
    (problem,) = info.value.problems
    assert "MutualTls is for TLS gateways" in problem.reason
    with pytest.raises(GatewayChangeError) as info:
        changed_settings(BASE, "Gateway1", {"MutualTls": "yes"}, create=False)
    assert info.value.problems[0].key == "Gateway1.MutualTls"
