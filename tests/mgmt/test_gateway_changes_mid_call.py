"""A TLS gateway changed or disabled (`hybridvoice gateway set|disable`, the appliance's
``put_gateway``) while a call through it is up: the call goes on, its BYE from either side
still ends it, and nothing is left behind (the call's admission, the gateway's active calls,
the relay ports); the record is written. On `hybridvoice up` with the built-in lab gateway
over TLS (site certificate)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from chain_harness import DOMAIN, proxy_of, settings_on_free_ports
from ports import free_port
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.cms.settings import parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.lab.responder import Responder
from hybridvoice.net.call import Call
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import DigestCredentials, Registration
from hybridvoice.net.ua import UserAgent

CHANGES: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "set-mtls": [{"Protocol": "MTLS"}],
    "set-port": [{"Port": 1}],  # where it is reached moves away
    "disable": [{"Enabled": False}],
    "set-then-disable": [{"MutualTls": True}, {"Enabled": False}],
}


def _offer(port: int) -> bytes:
    return (
        f"v=0\r\no=mid 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


async def _call(up: Lab) -> tuple[UserAgent, Call]:
    endpoint = Endpoint()
    await endpoint.listen("UDP", "127.0.0.1", 0)
    ua = UserAgent(endpoint, user="alice")
    credentials = DigestCredentials("alice", LAB_PASSWORD)
    proxy = proxy_of(up)
    aor = f"sip:alice@{DOMAIN}"
    await Registration(ua, aor, proxy, credentials=credentials, expires=300).register()
    call = ua.invite(
        f"sip:{LAB_PSTN_NUMBER}@{DOMAIN};user=phone", from_=f"<{aor}>", sdp=_offer(free_port()),
        destination=proxy, headers=[("Route", f"<sip:{proxy.host}:{proxy.port};lr>")],
        credentials=credentials, handler=Responder(answer=True),
    )  # fmt: skip
    await call.answered(15)
    return ua, call


@pytest.mark.parametrize("bye_from", ["client", "gateway"])
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_tls_gateway_changed_mid_call(tmp_path: Path, change: str, bye_from: str) -> None:
    raw = settings_raw(settings_on_free_ports())
    raw["MediationServer"]["TLSPort"] = free_port()
    raw["Gateways"][0].update(Protocol="TLS", Port=free_port())
    settings = parse_settings(raw)

    async def main() -> None:
        up = Lab(settings, tmp_path / "lab", lab_gateway=True)
        await up.start()
        ua: UserAgent | None = None
        try:
            appliance, gateway = up.appliance, up.gateway
            assert appliance is not None and appliance.mediation is not None
            assert gateway is not None
            mediation = appliance.mediation
            ua, call = await _call(up)
            assert mediation.admission.active == 1
            for keys in CHANGES[change]:
                await appliance.put_gateway("Gateway1", keys, create=False)
            (leg,) = [c for c in gateway.ua.calls if not c.disconnected]
            if bye_from == "client":
                call.bye()
                await leg.ended(15)
                await call.ended(15)
            else:
                leg.bye()
                await call.ended(15)
                await leg.ended(15)
            for _ in range(500):  # the role lets go of the call
                if not mediation.b2bua.bridges and mediation.admission.active == 0:
                    break
                await asyncio.sleep(0.01)
            assert not mediation.b2bua.bridges and mediation.admission.active == 0
            assert mediation.trunks is not None
            assert mediation.trunks["Gateway1"].active_calls == 0
            relay = mediation.relay
            assert relay is not None and not relay.calls and relay.pool.in_use == 0
            assert mediation.records is not None
            await mediation.records.aflush()
            record = mediation.records.by_call_id(call.call_id)
            assert record is not None and record.end_utc is not None
            assert record.gateway == "Gateway1" and record.sip_status in (None, 200)
        finally:
            if ua is not None:
                ua.close()
                await ua.endpoint.close()
            await up.stop()

    run(main(), timeout=60)
