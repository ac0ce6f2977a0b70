"""The TLS keys of a ``[GatewayN]`` (``cms.settings_tls``): Protocol MTLS, MutualTls,
TrustedRootsFile; every problem names its key and the reason."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.pki import PkiStore


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def settings_with(**gateway: Any) -> dict[str, Any]:
    return {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "AMS"},
        "Gateway1": {"FQDN": "sbc1.contoso.com", "IP": "10.0.0.9", **gateway},
    }


def problem(raw: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as info:
        parse_settings(raw)
    found = [str(p) for p in info.value.problems]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "pki")
    ca = store.ensure_ca("AMS", now())
    store.ensure_server(ca, "gw", now(), dns_names=["sbc1.contoso.com"])
    return store


def test_mtls_is_tls_with_certificates_both_ways_on_5067() -> None:
    gw = parse_settings(settings_with(Protocol="mtls")).gateways[0]
    assert (gw.protocol, gw.mutual_tls, gw.port, gw.trusted_roots_file) == ("TLS", True, 5067, None)
    assert gw.tls_name == "sbc1.contoso.com"
    gw = parse_settings(settings_with(Protocol="MTLS", Port=5061)).gateways[0]
    assert (gw.protocol, gw.mutual_tls, gw.port) == ("TLS", True, 5061)
    plain = parse_settings(settings_with(Protocol="TLS")).gateways[0]
    assert (plain.mutual_tls, plain.port) == (False, 5061)
    tcp = parse_settings(settings_with()).gateways[0]
    assert (tcp.protocol, tcp.mutual_tls) == ("TCP", False)
    ip_only = parse_settings({**settings_with(), "Gateway1": {"IP": "10.0.0.9"}}).gateways[0]
    assert ip_only.tls_name == "10.0.0.9"


def test_trusted_roots_file_takes_ca_certificates(site: PkiStore, tmp_path: Path) -> None:
    roots = tmp_path / "carrier-root.pem"
    roots.write_bytes(site.root_pem())
    gw = parse_settings(settings_with(Protocol="TLS", TrustedRootsFile=str(roots))).gateways[0]
    assert gw.trusted_roots_file == roots


def test_bad_tls_keys_are_named_with_the_reason(site: PkiStore, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    assert problem(settings_with(Protocol="TLS", TrustedRootsFile=str(missing))) == (
        f"Gateway1.TrustedRootsFile: cannot read {missing}: No such file or directory"
    )
    text = tmp_path / "text.pem"
    text.write_text("not a certificate\n")
    assert problem(settings_with(Protocol="TLS", TrustedRootsFile=str(text))) == (
        f"Gateway1.TrustedRootsFile: {text} holds no PEM certificate (BEGIN CERTIFICATE)"
    )
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(site.load_credential("gw").cert_pem)
    assert problem(settings_with(Protocol="TLS", TrustedRootsFile=str(leaf))) == (
        f"Gateway1.TrustedRootsFile: CN=sbc1.contoso.com in {leaf} is not a CA certificate: "
        "give the root of the gateway's chain, not the gateway's own certificate"
    )
    assert problem(settings_with(MutualTls=True)) == (
        'Gateway1: MutualTls is for TLS gateways: set Protocol = "TLS" or "MTLS" (it is TCP)'
    )
    roots = tmp_path / "root.pem"
    roots.write_bytes(site.root_pem())
    assert problem(settings_with(Protocol="UDP", TrustedRootsFile=str(roots))) == (
        'Gateway1: TrustedRootsFile is for TLS gateways: set Protocol = "TLS" or "MTLS" (it is UDP)'
    )
