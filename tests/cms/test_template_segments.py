"""``hybridvoice init --segments``: a lab file whose addresses tell the network segments apart
(cms.template_segments), and what the segment map makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridvoice import app as app_module
from hybridvoice.cli import app
from hybridvoice.cms.settings import Settings, load_settings, parse_settings
from hybridvoice.cms.template import lab_settings
from hybridvoice.cms.template_segments import segmented_lab
from hybridvoice.planning.observed import SegmentMap
from hybridvoice.planning.segments import Segment


def test_init_segments_writes_a_lab_with_the_cloud_on_its_own_address(tmp_path: Path) -> None:
    out = tmp_path / "seg.toml"
    result = CliRunner().invoke(app, ["init", "--segments", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "[Segments]\n# The network segments of call paths" in text
    settings = load_settings(out)
    assert settings.online.sip_addresses == ("127.64.0.1",)
    assert [str(n) for n in settings.mediation_server.internal_subnets] == ["127.0.0.0/16"]
    assert settings.edge_server.external_mr_ips == ("127.0.0.1",)
    assert settings.media_relay.allow_internal_peers and settings.media_relay.tcp_port is None
    segments = SegmentMap.of(settings)
    assert segments.segment("127.64.0.1") is Segment.CLOUD
    assert segments.segment("127.0.0.1") is Segment.CUSTOMER  # edge, mediation, gateway
    assert segments.segment("127.128.0.1") is Segment.INTERNET  # plan verify's internet client


def test_the_plain_lab_cannot_tell_the_cloud_from_the_customer(tmp_path: Path) -> None:
    out = tmp_path / "lab.toml"
    assert CliRunner().invoke(app, ["init", "-o", str(out)]).exit_code == 0
    assert "[Segments]" not in out.read_text()  # all defaults: not written
    segments = SegmentMap.of(load_settings(out))
    assert segments.segment("127.0.0.1") is Segment.CLOUD  # every role shares it


def test_the_segmented_lab_keeps_every_other_setting_off_ones_included() -> None:
    """A port turned off (None) whose default is on (TLSPort = 5067) stays off: a dump that
    left out None brought it back at its default, and a CI run found 5067 taken."""
    base = lab_settings().model_dump(by_alias=True, mode="json")
    base["MediationServer"].update(TLSPort=False, TCPPort=15068)
    lab = segmented_lab(parse_settings(base))
    assert lab.mediation_server.tls_port is None and lab.mediation_server.tcp_port == 15068
    again = lab.model_dump(by_alias=True, mode="json")
    before = parse_settings(base).model_dump(by_alias=True, mode="json")
    changed = {
        f"{section}.{key}"
        for section, values in again.items() if isinstance(values, dict)
        for key, value in values.items()
        if not isinstance(before.get(section), dict) or before[section].get(key) != value
    }  # fmt: skip
    assert changed <= {
        "Online.SIPAddresses", "MediationServer.InternalSubnets", "EdgeServer.ExternalMRIPs",
        "EdgeServer.ExternalMRPortRange", "MediaRelay.TCPPort", "MediaRelay.AllowInternalPeers",
        "Segments.CustomerSubnets", "Segments.CloudAddresses", "Segments.PeeringPrefixes",
    }, changed  # fmt: skip


def test_up_segments_starts_the_segmented_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hybridvoice up --segments``: the lab ``init --segments`` writes, started at once (the
    live run of that lab: tests/mgmt/test_plan_verify_live.py); with --config it is refused."""
    started: list[Settings] = []

    async def run_up(settings: Settings, *args: object, **kwargs: object) -> None:
        started.append(settings)

    monkeypatch.setattr(app_module, "run_up", run_up)
    result = CliRunner().invoke(app, ["up", "--segments", "--state-dir", ":memory:"])
    assert result.exit_code == 0, result.output
    assert started == [segmented_lab(lab_settings())]
    refused = CliRunner().invoke(app, ["up", "--segments", "--config", "x.toml"])
    assert refused.exit_code == 2 and "--segments is the lab's" in refused.output
