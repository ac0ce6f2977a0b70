"""Settings back to raw keys (cms.settings_raw): the same settings when read again, a
listener switched off included (a dump without its None keys brought TLSPort back at 5067,
and a CI run found that port taken)."""

from __future__ import annotations

from hybridvoice.cms.settings import parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import lab_settings
from hybridvoice.cms.template_segments import segmented_lab


def off_everywhere() -> dict[str, object]:
    raw = settings_raw(segmented_lab(lab_settings()))
    raw["MediationServer"].update(TLSPort=False, TCPPort=False, UDPPort=15069)
    raw["MediaRelay"].update(TCPPort=False)
    return raw


def test_a_listener_switched_off_stays_off() -> None:
    settings = parse_settings(off_everywhere())
    again = parse_settings(settings_raw(settings))
    assert again == settings
    assert again.mediation_server.tls_port is None and again.mediation_server.tcp_port is None
    assert again.media_relay.tcp_port is None


def test_what_a_dump_without_none_does_instead() -> None:
    settings = parse_settings(off_everywhere())
    lossy = parse_settings(settings.model_dump(by_alias=True, mode="json", exclude_none=True))
    assert lossy.mediation_server.tls_port == 5067  # the class of defect settings_raw ends


def test_unset_keys_are_left_out_as_in_a_settings_file() -> None:
    raw = settings_raw(lab_settings())
    assert all(value is not None or key.endswith("Port") for section in raw.values()
               if isinstance(section, dict) for key, value in section.items())  # fmt: skip
    assert parse_settings(raw) == lab_settings()
