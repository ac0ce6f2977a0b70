"""``MediaEncryption`` of a gateway changed at run time (``hybridvoice gateway set NAME
--media-encryption SRTP``): normalised, or refused naming the key and the allowed values."""

from __future__ import annotations

import pytest

from hybridvoice.cms.template import lab_settings
from hybridvoice.mgmt.cli_appliance import _gateway_keys
from hybridvoice.mgmt.gateways import GatewayChangeError, changed_settings


def test_media_encryption_at_run_time() -> None:
    settings = lab_settings()
    assert settings.gateway("Gateway1").media_encryption == "RTP"
    assert settings.mediation_server.client_media_encryption == "Optional"
    keys = _gateway_keys(media_encryption="srtp")
    assert keys == {"MediaEncryption": "srtp"}
    changed = changed_settings(settings, "Gateway1", keys, create=False)
    assert changed.gateway("Gateway1").media_encryption == "SRTP"
    with pytest.raises(GatewayChangeError) as refused:
        changed_settings(settings, "Gateway1", {"MediaEncryption": "DTLS"}, create=False)
    assert [str(p) for p in refused.value.problems] == [
        "Gateway1.MediaEncryption: must be RTP, SRTP or Optional, got 'DTLS'"
    ]
