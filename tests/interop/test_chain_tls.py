"""The whole chain with TLS where CCE had it: online service -> edge (external, 5061 in
production) and edge <-> mediation (internal), certificates checked on every hop
(RFC 3261 §26.2.1, RFC 5922 §7: the edge by its pool FQDN, the others by IP address).
The Lab runs with ``wire=True``: the roles of one process would otherwise talk through
in-process pipes, with no wire for TLS to protect (hybridvoice.net.pipe)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import call_once, settings_on_free_ports
from tls_helpers import Pki, client_context, make_pki, server_context
from ua_harness import run

from hybridvoice.app import Lab

pytestmark = pytest.mark.interop

TLS_HOPS = {
    # the edge's pool FQDN is what the online service checks the certificate against
    "EdgeServer": {"InternalProtocol": "TLS", "ExternalProtocol": "TLS",
                   "ExternalSIPPoolName": "localhost"},
    "MediationServer": {"InternalProtocol": "TLS"},
    "Online": {"SIPProtocol": "TLS"},
}  # fmt: skip


def _tls_lab(tmp_path: Path, pki: Pki, *, trusting: Pki) -> Lab:
    """The lab with TLS on every hop, on sockets (``wire``): certificates from ``pki``,
    peers checked against the CA of ``trusting``."""
    return Lab(
        settings_on_free_ports(**TLS_HOPS), tmp_path / "lab", lab_gateway=True, wire=True,
        server_ssl=server_context(pki), client_ssl=client_context(trusting.ca),
    )  # fmt: skip


def test_pstn_call_crosses_tls_hops_with_certificates_checked(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")

    async def main() -> None:
        up = _tls_lab(tmp_path, pki, trusting=pki)
        await up.start()
        try:
            assert up.appliance is not None and up.appliance.edge is not None
            edge = up.appliance.edge
            assert edge.external is not None and edge.external.kind == "TLS"
            assert edge.internal is not None and edge.internal.kind == "TLS"
            result = await call_once(up)
            assert result.ok, result
            assert result.media_path == "anchored" and result.tone_intact
        finally:
            await up.stop()

    run(main(), timeout=60)


def test_an_edge_certificate_from_an_unknown_ca_fails_the_call_cleanly(tmp_path: Path) -> None:
    """The online service trusts another CA: the TLS handshake to the edge fails, the call
    gets 503 (no appliance answered) and nothing reaches the gateway."""
    pki = make_pki(tmp_path / "pki")
    stranger = make_pki(tmp_path / "other", ca_name="some other CA")

    async def main() -> None:
        up = _tls_lab(tmp_path, pki, trusting=stranger)
        await up.start()
        try:
            result = await call_once(up)
            assert not result.ok and result.status == 503, result
            assert up.gateway is not None and up.gateway.responder.calls_answered == 0
        finally:
            await up.stop()

    run(main(), timeout=60)


@pytest.mark.parametrize("wire", [False, True], ids=["pipes", "sockets"])
def test_site_ca_tls_hops_carry_identities_over_pipes_as_over_sockets(
    tmp_path: Path, wire: bool
) -> None:
    """``up`` making its own site CA (no contexts given): the roles' certificates name what
    each hop checks, over in-process pipes (the listener's identity carried) as over sockets;
    a call passes and no TLS peer is refused."""

    async def main() -> None:
        up = Lab(settings_on_free_ports(**TLS_HOPS), tmp_path / "lab", lab_gateway=True,
                 wire=wire)  # fmt: skip
        await up.start()
        try:
            assert up.tls is not None  # the site CA is in use
            result = await call_once(up)
            assert result.ok, result
            assert up.appliance is not None and up.appliance.edge is not None
            endpoints = [up.appliance.edge.endpoint]
            mediation = up.appliance.mediation
            assert mediation is not None
            endpoints += [mediation.edge_endpoint, mediation.gateway_endpoint]
            assert up.online is not None
            for endpoint in [*endpoints, up.online.endpoint]:
                assert endpoint is not None
                for transport in endpoint.transports:
                    assert transport.counters.tls_refused == {}, transport
            exchange = up.exchange
            assert (exchange is not None and exchange.pipes_opened > 0) is not wire
        finally:
            await up.stop()

    run(main(), timeout=60)
