"""A TLS or MTLS gateway on ``hybridvoice up``: the mediation role's TLSPort listens with a
site certificate and the built-in lab gateway listens on its configured Port with one (it
used to get a client-only TLS transport on port 0, and the mediation role no TLS listener
when no hop between the roles spoke TLS); a call passes through it."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import call_once, settings_on_free_ports
from ports import free_port
from ua_harness import run

from hybridvoice.app import Lab
from hybridvoice.cms.settings import parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.mgmt.lab_tls import lab_gateway_context
from hybridvoice.mgmt.site_tls import speaks_tls


@pytest.mark.parametrize("protocol", ["TLS", "MTLS"])
def test_a_tls_lab_gateway_listens_on_its_port_and_takes_calls(
    tmp_path: Path, protocol: str
) -> None:
    raw = settings_raw(settings_on_free_ports())
    raw["MediationServer"]["TLSPort"] = free_port()
    gateway = raw["Gateways"][0]
    gateway.update(Protocol=protocol, Port=free_port())
    gateway.pop("MutualTls", None)
    settings = parse_settings(raw)
    gw = settings.gateways[0]
    assert speaks_tls(settings)  # the roles speak TCP; the gateway asks for the site CA

    async def main() -> None:
        up = Lab(settings, tmp_path / "lab", lab_gateway=True)
        await up.start()
        try:
            assert up.tls is not None and up.gateway is not None
            (listener,) = up.gateway.endpoint.transports
            assert (listener.kind, listener.local[1]) == ("TLS", gw.port)
            assert up.appliance is not None and up.appliance.mediation is not None
            tls = up.appliance.mediation.gateway_transports["TLS"]
            assert tls.local[1] == settings.mediation_server.tls_port
            result = await call_once(up)
            assert result.ok, result
            assert up.gateway.responder.calls_answered == 1
        finally:
            await up.stop()

    run(main(), timeout=60)


def test_a_tls_lab_gateway_without_the_site_ca_is_refused_naming_the_key() -> None:
    gw = settings_on_free_ports().gateways[0].model_copy(update={"protocol": "TLS"})
    with pytest.raises(ValueError, match=r"^Gateway1\.Protocol: the built-in lab gateway"):
        lab_gateway_context(None, gw)  # (server, client)
