"""The whole call path on loopback, as ``hybridvoice up`` builds it: the online service
(registrar, proxy, API), one appliance (edge, mediation, replica), the lab gateway.

Every piece is real (sockets, SIP, RTP); only the ports are free ones instead of the defaults.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from chain_harness import DOMAIN, call_once, lab, proxy_of, settings_on_free_ports
from ports import free_port
from ua_harness import Phone, run, sdp

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.cms.settings import parse_settings
from hybridvoice.mgmt.appliance import Appliance
from hybridvoice.mgmt.testcall import place_test_call
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import DigestCredentials, Registration
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.session import Disconnected


async def replicated(up: Lab) -> None:
    assert up.online is not None and up.appliance is not None
    assert up.appliance.replicator is not None
    assert await up.appliance.replicator.synced(up.online.store.version, 5.0)


def test_pstn_call_anchored_then_bypassed_without_restart(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            first = await call_once(up)
            assert first.ok, first
            assert first.media_path == "anchored"
            assert first.tone_intact and first.rtp_received == first.rtp_sent
            assert (
                up.gateway is not None and first.remote_media != f"127.0.0.1:{up.gateway.echo.port}"
            )
            assert "<- 407 Proxy Authentication Required (INVITE)" in first.ladder

            assert up.online is not None and up.online.api is not None
            admin = {"Authorization": f"Bearer {up.admin_token}"}
            async with httpx.AsyncClient(base_url=up.online.api.url, headers=admin) as client:
                answer = await client.post("/v1/network-config/media-bypass/enable")
                assert answer.status_code == 200
            await replicated(up)
            second = await call_once(up)
            assert second.ok, second
            assert second.media_path == "bypass"
            assert second.remote_media == f"127.0.0.1:{up.gateway.echo.port}"  # the gateway's own

    run(main(), timeout=60)


def test_refusals_say_why(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.online is not None
            store = up.online.store
            alice = store.get_user(f"sip:alice@{DOMAIN}")
            assert alice is not None
            store.set_user(alice.model_copy(update={"international_calls_allowed": False}))
            abroad = await call_once(up, "+46812345678")
            assert (abroad.ok, abroad.status) == (False, 403)
            incomplete = await call_once(up, "12345")
            assert incomplete.status == 484
            wrong = await place_test_call(
                user="alice", domain=DOMAIN, password="wrong", number=LAB_PSTN_NUMBER,
                proxy=proxy_of(up), duration=0.2,
            )  # fmt: skip
            assert not wrong.ok and wrong.error is not None and "registration" in wrong.error

    run(main(), timeout=60)


async def registered_phone(up: Lab, user: str) -> tuple[UserAgent, Phone, Endpoint, Registration]:
    endpoint = Endpoint()
    phone = Phone()
    ua = UserAgent(endpoint, phone, user=user)
    await endpoint.listen("UDP", "127.0.0.1", 0)
    reg = Registration(
        ua, f"sip:{user}@{DOMAIN}", proxy_of(up), credentials=DigestCredentials(user, LAB_PASSWORD)
    )
    await reg.register()
    return ua, phone, endpoint, reg


def test_inbound_pstn_call_forks_to_every_contact_of_the_user(tmp_path: Path) -> None:
    """gateway -> mediation -> edge -> online -> reverse number lookup -> both of bob's
    phones ring; the first to answer gets the call, the other is cancelled."""

    async def main() -> None:
        pstn_port = free_port()
        settings = settings_on_free_ports()
        raw = settings.model_dump(by_alias=True, mode="json", exclude_none=True)
        raw["MediationServer"]["TLSPort"] = False
        raw["Gateways"].append({"Name": "Gateway2", "IP": "127.0.0.1", "Port": pstn_port,
                                "Protocol": "UDP", "VoiceRoutes": "LocalRoute"})  # fmt: skip
        async with lab(tmp_path, parse_settings(raw)) as up:
            phones = [await registered_phone(up, "bob") for _ in range(2)]
            gateway_ep = Endpoint()
            gateway = UserAgent(gateway_ep, Phone(), user="pstn")
            await gateway_ep.listen("UDP", "127.0.0.1", pstn_port)
            ms = up.settings.mediation_server
            assert ms.udp_port is not None
            try:
                call = gateway.invite(
                    f"sip:+15550101@127.0.0.1:{ms.udp_port}", from_="<sip:+12125550123@127.0.0.1>",
                    sdp=sdp(40000), destination=Destination("UDP", "127.0.0.1", ms.udp_port),
                )  # fmt: skip
                ringing = [await asyncio.wait_for(p[1].incoming.get(), 10) for p in phones]
                winner, loser = ringing
                winner.ring()
                winner.answer(sdp(41000))
                await call.answered(10)
                gone = await loser.wait_for(Disconnected, 10)
                assert gone.cause == "cancelled"
                invite = winner.invite
                assert invite.uri.user == "bob" or "bob" in str(invite.uri)  # type: ignore[union-attr]
                call.bye()
                await winner.wait_for(Disconnected, 10)
            finally:
                for ua, _, endpoint, reg in phones:
                    await reg.stop()
                    ua.close()
                    await endpoint.close()
                gateway.close()
                await gateway_ep.close()

    run(main(), timeout=60)


def test_user_to_user_call_keeps_media_direct(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            ua_b, phone_b, ep_b, reg_b = await registered_phone(up, "bob")
            ua_a, _, ep_a, reg_a = await registered_phone(up, "alice")
            try:
                call = ua_a.invite(
                    f"sip:bob@{DOMAIN}", from_=f"<sip:alice@{DOMAIN}>", sdp=sdp(42000),
                    destination=proxy_of(up), credentials=DigestCredentials("alice", LAB_PASSWORD),
                )  # fmt: skip
                incoming = await asyncio.wait_for(phone_b.incoming.get(), 10)
                assert b"m=audio 42000" in incoming.invite.body  # no anchoring between users
                incoming.answer(sdp(43000))
                answered = await call.answered(10)
                assert answered.sdp is not None and b"m=audio 43000" in answered.sdp
                incoming.bye()  # the BYE crosses the online proxy (Record-Route)
                await call.wait_for(Disconnected, 10)
            finally:
                for ua, ep, reg in ((ua_a, ep_a, reg_a), (ua_b, ep_b, reg_b)):
                    await reg.stop()
                    ua.close()
                    await ep.close()

    run(main(), timeout=60)


def test_second_appliance_takes_the_calls_when_one_is_stopped(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            raw = settings_on_free_ports().model_dump(by_alias=True, mode="json", exclude_none=True)
            first = up.settings.model_dump(by_alias=True, mode="json", exclude_none=True)
            raw["Online"] = first["Online"]
            raw["Gateways"] = first["Gateways"]
            raw["Common"]["ServerName"] = "appliance2"
            raw["MediationServer"].update(TLSPort=False, MediaPortStart=58000, MediaPortEnd=58999)
            raw["Management"]["StateDirectory"] = str(tmp_path / "appliance2")
            assert up.online is not None  # the new appliance gets a token of its own
            _, token = up.online.store.access.tokens.create("appliance2", "appliance")
            raw["Management"]["OnlineToken"] = token
            second = Appliance(parse_settings(raw))
            await second.start()
            try:
                assert second.link is not None
                for _ in range(200):
                    if second.link.registered:
                        break
                    await asyncio.sleep(0.02)
                assert second.link.registered, second.link.last_error
                assert up.appliance is not None
                await up.appliance.stop()  # the first appliance is gone, still listed online
                results = [await call_once(up) for _ in range(4)]
                assert all(r.ok for r in results), results
            finally:
                await second.stop()
                second.close()

    run(main(), timeout=90)


def test_appliance_stopped_the_caller_gets_a_clear_failure(tmp_path: Path) -> None:
    """At once (the edge does not answer: 503), and once its heartbeats are missed the
    appliance is marked offline and the online service refuses without trying it."""

    async def main() -> None:
        async with lab(tmp_path) as up:
            assert up.appliance is not None and up.online is not None
            name = up.appliance.name
            await up.appliance.stop()
            result = await call_once(up)
            assert not result.ok
            assert result.status == 503
            assert result.setup_ms is None
            store = up.online.store
            for _ in range(200):  # heartbeat timeout 5 s, swept every 1.25 s
                appliance = store.get_appliance(name)
                if appliance is not None and appliance.status == "offline":
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the silent appliance was never marked offline")
            again = await call_once(up)
            assert again.status == 503
            assert "<- 503 Service Unavailable (INVITE)" in again.ladder

    run(main(), timeout=60)
