"""The settings file ``hybridvoice init`` writes loads back to the same settings."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hybridvoice.cms.ini import import_ini
from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.cms.template import lab_settings, render_settings

CCE_INI = (Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini").read_text()


def test_lab_settings_round_trip() -> None:
    text = render_settings(lab_settings())
    assert parse_settings(tomllib.loads(text)) == lab_settings()
    assert "# A PSTN gateway, SBC or IP-PBX." in text
    assert "TLSPort = false" in text  # a listener switched off stays off


def test_imported_ini_round_trip_lists_unmapped_keys() -> None:
    imported = import_ini(CCE_INI)
    settings, unmapped = imported.settings, imported.unmapped
    text = render_settings(
        settings, source="CloudConnector.ini", unmapped=unmapped, notes=imported.notes
    )
    assert parse_settings(tomllib.loads(text)) == settings
    for key in unmapped:
        assert f"#   {key}\n" in text
    assert "[Gateway2]" in text
    # every change of the import is in the header (key, old, new, why) and beside its key
    assert imported.notes
    for note in imported.notes:
        assert f"#   {note.key}: {note.old} -> {note.new}: {note.why}\n" in text
    assert "BypassServicePort = 8471 # was 80" in text


@pytest.mark.parametrize("value", [False, "off", "OFF"])
def test_listeners_switch_off(value: object) -> None:
    raw = {"Common": {"SIPDomains": "a.example", "SiteName": "x"}}
    settings = parse_settings({**raw, "MediationServer": {"TLSPort": value}})
    assert settings.mediation_server.tls_port is None


def test_edge_settings_problems_name_the_key() -> None:
    raw = {
        "Common": {"SIPDomains": "a.example", "SiteName": "x"},
        "EdgeServer": {"ExternalMRPortRange": "60000 50000", "InternalProtocol": "SCTP"},
    }
    with pytest.raises(SettingsError) as info:
        parse_settings(raw)
    found = {p.key for p in info.value.problems}
    assert found == {"EdgeServer.ExternalMRPortRange", "EdgeServer.InternalProtocol"}


def test_every_section_that_is_not_all_defaults_survives_rendering() -> None:
    """A file written from settings (``init``, each appliance's file of a fleet) keeps
    ``[HealthMonitor]``, ``[Traces]`` and ``[Logging]`` when they say something; all-default
    ones are left out, as before."""
    raw = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Render"},
        "HealthMonitor": {"Retries": 1},
        "Traces": {"MaxCalls": 5, "HepCollector": "127.0.0.1:9060"},
        "Logging": {"Components": "mediation=debug", "Files": 3},
    }
    settings = parse_settings(raw)
    again = parse_settings(tomllib.loads(render_settings(settings)))
    assert again == settings
    assert again.logging.component_levels() == {"mediation": "debug"}
    plain = render_settings(parse_settings({"Common": raw["Common"]}))
    assert "[Logging]" not in plain and "[Traces]" not in plain
