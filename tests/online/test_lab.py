"""The whole call path on loopback, as ``hybridvoice up`` builds it: the online service
(registrar, proxy, API), one appliance (edge, mediation, replica), the lab gateway.

Every piece is real (sockets, SIP, RTP); only the ports are free ones instead of the defaults.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from chain_harness import DOMAIN, call_once, lab, proxy_of, settings_on_free_ports
from cryptography import x509
from ports import free_port
from ua_harness import Phone, run, sdp

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab, ListenError
from hybridvoice.cms.settings import parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.mgmt.appliance import Appliance
from hybridvoice.mgmt.testcall import place_test_call
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import DigestCredentials, Registration
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import UserAgent
from hybridvoice.online.models import Site
from hybridvoice.pki import PkiStore
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
        raw = settings_raw(settings)
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
            raw = settings_raw(settings_on_free_ports())
            first = settings_raw(up.settings)
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


def test_an_appliance_moves_to_another_online_instance_of_its_settings(tmp_path: Path) -> None:
    """[Online] OtherServiceURLs: with ServiceURL not answering (an instance that died), the
    appliance registers, beats and replicates through the next instance of its settings."""

    async def main() -> None:
        async with lab(tmp_path) as up:
            raw = settings_raw(settings_on_free_ports())
            first = settings_raw(up.settings)
            raw["Online"] = dict(first["Online"])
            raw["Online"]["ServiceURL"] = f"http://127.0.0.1:{free_port()}"  # nobody there
            raw["Online"]["OtherServiceURLs"] = first["Online"]["ServiceURL"]
            raw["Gateways"] = first["Gateways"]
            raw["Common"]["ServerName"] = "appliance2"
            raw["MediationServer"].update(TLSPort=False, MediaPortStart=58000, MediaPortEnd=58999)
            assert up.online is not None
            _, token = up.online.store.access.tokens.create("appliance2", "appliance")
            raw["Management"]["OnlineToken"] = token
            second = Appliance(parse_settings(raw))
            await second.start()
            try:
                assert second.link is not None and second.replicator is not None
                for _ in range(500):
                    if second.link.registered:
                        break
                    await asyncio.sleep(0.02)
                assert second.link.registered, (
                    second.link.last_error,
                    second.link.urls,
                    second.link.errors,
                )
                assert await second.replicator.synced(up.online.store.version, 10.0)
                assert second.status()["online"]["url"] == first["Online"]["ServiceURL"]
                assert up.online.store.get_appliance("appliance2") is not None
            finally:
                await second.stop()
                second.close()

    run(main(), timeout=90)


def test_other_service_urls_are_checked_like_service_url() -> None:
    raw = settings_raw(settings_on_free_ports())
    raw["Online"]["OtherServiceURLs"] = "http://10.0.0.2:8470/, https://online-b.example:8470"
    online = parse_settings(raw).online
    assert online.service_urls[1:] == ("http://10.0.0.2:8470", "https://online-b.example:8470")
    raw["Online"]["OtherServiceURLs"] = ["http://ok:1", "ftp://bad"]
    with pytest.raises(ValueError, match=r"Online\.OtherServiceURLs.*ftp://bad"):
        parse_settings(raw)


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


# --- state across restarts, lab users, start-up checks ----------------------------------------


def test_restart_keeps_tenant_changes_and_call_records(tmp_path: Path) -> None:
    """Two starts on one state directory: what the admin changed and the call records of
    the first run are there in the second, and the lab users are not seeded again."""

    async def main() -> None:
        settings = settings_on_free_ports()
        async with lab(tmp_path, settings) as up:
            assert up.online is not None
            store = up.online.store
            alice = store.get_user(f"sip:alice@{DOMAIN}")
            assert alice is not None
            store.set_user(alice.with_password("changed-by-admin", DOMAIN))
            store.new_site(Site(name="Stockholm", edge_fqdn="edge.sthlm.example"))
            store.set_network_config(
                store.network_config().model_copy(update={"media_bypass_enabled": True})
            )
            first = await call_once(up, user="bob")
            assert first.ok, first
        async with lab(tmp_path, settings) as again:
            assert again.online is not None and again.appliance is not None
            store = again.online.store
            kept = store.get_user(f"sip:alice@{DOMAIN}")
            assert (
                kept is not None
                and kept.ha1_md5 == alice.with_password("changed-by-admin", DOMAIN).ha1_md5
            )  # not reset to the lab password
            assert store.get_site("Stockholm") is not None
            assert store.network_config().media_bypass_enabled is True
            mediation = again.appliance.mediation
            assert mediation is not None and mediation.records is not None
            assert first.call_id is not None
            assert mediation.records.by_call_id(first.call_id) is not None
            refused = await call_once(again)  # alice with the lab password: no longer hers
            assert not refused.ok

    run(main(), timeout=90)


def test_lab_users_only_when_asked_and_in_memory_state() -> None:
    async def main() -> None:
        settings = settings_on_free_ports()
        up = Lab(settings, None, lab_gateway=True, lab_users=False)
        await up.start()
        try:
            assert up.online is not None and up.online.store.users() == []
            assert up.settings.management.state_directory is None  # nothing on disk
        finally:
            await up.stop()
        seeded = Lab(settings_on_free_ports(), None, lab_gateway=True, lab_users=True)
        await seeded.start()
        try:
            assert seeded.online is not None
            assert {u.sip_uri for u in seeded.online.store.users()} == {
                f"sip:alice@{DOMAIN}",
                f"sip:bob@{DOMAIN}",
            }
        finally:
            await seeded.stop()

    run(main(), timeout=60)


@pytest.mark.parametrize(
    ("section", "key", "kind"),
    [("MediationServer", "TCPPort", socket.SOCK_STREAM),
     ("MediationServer", "UDPPort", socket.SOCK_DGRAM),
     ("EdgeServer", "InternalPort", socket.SOCK_STREAM)],
)  # fmt: skip
def test_an_address_in_use_is_named_with_its_setting(
    tmp_path: Path, section: str, key: str, kind: int
) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, kind) as other:
            other.bind(("127.0.0.1", 0))
            if kind == socket.SOCK_STREAM:
                other.listen()
            port = other.getsockname()[1]
            up = Lab(settings_on_free_ports(**{section: {key: port}}), tmp_path, lab_gateway=True)
            with pytest.raises(ListenError) as info:
                await up.start()
            message = str(info.value)
            transport = "udp" if kind == socket.SOCK_DGRAM else "tcp"
            assert f"[{section}] {key}" in message
            assert f"{transport} 127.0.0.1:{port}" in message
            assert "Address already in use" in message and "EADDRINUSE" in message
            assert f"set [{section}] {key} to a free port" in message
            assert up.online is None and up.appliance is None  # nothing was started

    run(main(), timeout=30)


async def _served_serial(port: int, store: PkiStore) -> int:
    """The serial of the certificate a TLS listener on 127.0.0.1:``port`` presents to a peer
    holding the appliance's site certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=store.root_pem().decode())
    context.load_cert_chain(store.credential_path("appliance"))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


def test_tls_between_roles_gets_certificates_from_the_site_ca_and_survives_a_renewal(
    tmp_path: Path,
) -> None:
    """No certificate given: the site CA in <state>/pki issues the roles' certificates, the
    hops handshake MTLS on loopback sockets (wire), and a renewal taken while running leaves
    calls working."""
    settings = settings_on_free_ports(EdgeServer={"InternalProtocol": "TLS"},
                                      MediationServer={"InternalProtocol": "TLS"})  # fmt: skip

    async def main() -> None:
        up = Lab(settings, tmp_path, lab_gateway=True, wire=True)
        await up.start()
        try:
            assert up.tls is not None
            assert (tmp_path / "pki" / "certs" / "appliance.pem").exists()
            first = await call_once(up)
            assert first.ok, first
            internal = up.appliance.edge.internal  # type: ignore[union-attr]
            assert internal.kind == "TLS"
            to_mediation = ("127.0.0.1", settings.mediation_server.internal_port)
            open_before = internal.connection_to(*to_mediation)
            assert open_before is not None  # the edge's MTLS connection to mediation
            store = up.tls.store
            before = await _served_serial(settings.edge_server.internal_port, store)
            store.renew("appliance", datetime.datetime.now(datetime.UTC))
            assert up.tls.contexts["appliance"].reload()
            assert up.tls.contexts["appliance"].material.generation == 2
            second = await call_once(up)  # the connections between the roles go on
            assert second.ok, second
            assert internal.connection_to(*to_mediation) is open_before
            after = await _served_serial(settings.edge_server.internal_port, store)
            renewed = store.load_credential("appliance").certificate.serial_number
            assert after == renewed != before  # the next handshake: the new certificate
        finally:
            await up.stop()
        assert up.tls is None

    run(main(), timeout=60)


def test_an_address_taken_after_the_check_is_still_named(tmp_path: Path) -> None:
    """The check and the bind are not atomic: a port taken in between is named too."""

    class Unchecked(Lab):
        def check_listeners(self) -> None:  # the port is taken after the check
            pass

    async def main() -> None:
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            port = other.getsockname()[1]
            settings = settings_on_free_ports(MediationServer={"TCPPort": port})
            up = Unchecked(settings, tmp_path, lab_gateway=True)
            with pytest.raises(ListenError, match=rf"\[MediationServer\] TCPPort.*:{port}"):
                await up.start()
            assert up.online is None and up.appliance is None

    run(main(), timeout=30)
