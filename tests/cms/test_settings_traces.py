"""``[Traces]`` settings (hybridvoice.cms.settings_traces): defaults, and every refusal
naming its key and reason."""

from __future__ import annotations

from typing import Any

import pytest

from hybridvoice.cms.settings import SettingsError, parse_settings


def settings(traces: dict[str, Any] | None = None) -> Any:
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "adatum.biz", "SiteName": "s1", "ServerName": "a1"},
        "MediationServer": {"IP": "127.0.0.1"},
    }
    if traces is not None:
        raw["Traces"] = traces
    return parse_settings(raw)


def test_capture_on_with_a_modest_bound_and_hep_off_by_default() -> None:
    t = settings().traces
    assert t.capture and t.max_calls == 1000 and t.max_call_kilobytes == 256
    assert t.max_megabytes == 32 and t.hep_collector == "" and t.mos_threshold == 3.6


def test_values_as_written() -> None:
    t = settings({"Capture": False, "HepCollector": "[::1]:9060", "HepCaptureId": 7,
                  "HepPassword": "x", "MosThreshold": 4.0}).traces  # fmt: skip
    assert not t.capture and t.hep_collector == "[::1]:9060" and t.hep_capture_id == 7


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("HepCollector", "homer", "host:port"),
        ("HepCollector", "homer:99999", "host:port"),
        ("MaxCalls", 0, "greater than or equal to 1"),
        ("MosThreshold", 5, "less than or equal to 4.5"),
        ("HepCaptureId", -1, "greater than or equal to 0"),
        ("Colector", "x", "unknown key"),
    ],
)
def test_bad_values_name_the_key_and_reason(key: str, value: object, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings({key: value})
    found = {p.key: p.reason for p in caught.value.problems}
    assert any(k.endswith(key) and reason.lower() in r.lower() for k, r in found.items()), found
