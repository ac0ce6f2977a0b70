"""Calls through the whole chain of ``hybridvoice up`` (a registered user -> online service ->
edge -> mediation -> the lab gateway): what the gateway receives in From, and a bad SDP from
a user costing only its own call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chain_harness import DOMAIN, call_once, lab, proxy_of
from test_call_guard import BAD_OFFER
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.net.call import Call, CallFailedError
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import DigestCredentials, Registration
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.headers import Address
from hybridvoice.sip.uri import SipUri

WAIT = 10.0


def _received_froms(up: Lab) -> list[Address]:
    """The From of every INVITE the lab gateway receives from now on (as parsed off the wire)."""
    assert up.gateway is not None
    responder = up.gateway.responder
    seen: list[Address] = []
    original = responder.on_incoming_call

    def spy(call: Call) -> None:
        assert call.invite.from_ is not None
        seen.append(call.invite.from_)
        original(call)

    responder.on_incoming_call = spy  # type: ignore[method-assign]
    return seen


def test_the_gateway_gets_the_callers_e164_number_and_name_in_from(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            froms = _received_froms(up)
            result = await call_once(up, user="alice")
            assert result.ok, result
            [from_] = froms
            assert from_.display_name == "Alice"
            uri = from_.uri
            assert isinstance(uri, SipUri)
            assert uri.user == "+15550100"  # alice's line URI, as the online service asserts
            assert uri.param("user") == "phone"
            assert uri.host == up.settings.gateways[0].ip

    run(main(), timeout=60)


async def _invite_as(up: Lab, user: str, body: bytes) -> int | None:
    """``user`` registers and calls the PSTN test number with ``body``: the final status."""
    proxy = proxy_of(up)
    endpoint = Endpoint()
    ua = UserAgent(endpoint, user=user)
    try:
        await endpoint.listen(proxy.transport, "127.0.0.1", 0)
        credentials = DigestCredentials(user, LAB_PASSWORD)
        aor = f"sip:{user}@{DOMAIN}"
        await Registration(ua, aor, proxy, credentials=credentials, expires=60).register()
        call = ua.invite(
            f"sip:{LAB_PSTN_NUMBER}@{DOMAIN};user=phone", from_=f"<{aor}>", sdp=body,
            destination=proxy, credentials=credentials,
            headers=[("Route", f"<sip:{proxy.host}:{proxy.port};lr>")],
        )  # fmt: skip
        try:
            await call.answered(WAIT)
        except CallFailedError as exc:
            return exc.disconnected.status
        call.bye()
        await call.ended(WAIT)
        return 200
    finally:
        ua.close()
        await endpoint.close()


def test_bad_sdp_from_a_user_gets_488_and_leaks_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.appliance.mediation is not None
            mediation = up.appliance.mediation
            assert mediation.relay is not None
            ports = mediation.relay.stats().ports_available
            for _ in range(5):
                assert await _invite_as(up, "alice", BAD_OFFER) == 488
            for _ in range(100):  # relay calls are released by tasks of their own
                if mediation.relay.stats().ports_available == ports:
                    break
                await asyncio.sleep(0.02)
            assert mediation.relay.stats().ports_available == ports
            assert mediation.admission.active == 0 and not mediation.b2bua.bridges
            assert mediation.call_failures()["sdp"] == 5
            result = await call_once(up, user="bob")
            assert result.ok, result

    run(main(), timeout=90)
