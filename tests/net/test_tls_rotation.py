"""Certificate rotation without a restart and without dropping calls (RFC 5630 §3; docs/pki.md
"Renewal without a restart"): a call is up over TLS between two hybridvoice UAs when both
certificates are renewed (``PkiStore.renew``, what ``hybridvoice ca renew`` does) and the
contexts reloaded (what ``net.tls.watch`` does every 30 s). The call goes on: a re-INVITE and
the BYE travel on the connection made before, which keeps its session; a new connection to
the same listener is handed the renewed certificate."""

from __future__ import annotations

import asyncio
import datetime
import random
from pathlib import Path

import pytest
from cryptography import x509
from ua_harness import ANSWER, FAST, OFFER, QUICK, WAIT, Phone, run, sdp

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.stream import StreamConnection, StreamTransport
from hybridvoice.net.tls import MtlsContexts, TlsMaterial
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import UserAgent
from hybridvoice.pki import PkiStore
from hybridvoice.sip.session import Offer, OfferAnswered, State


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "pki")
    ca = store.ensure_ca("AMS", now())
    for name in ("alice", "bob", "carol"):
        store.ensure_server(ca, name, now(), ips=["127.0.0.1"])
    return store


def contexts(store: PkiStore, name: str) -> MtlsContexts:
    def load() -> TlsMaterial:
        generation = store.load_credential(name).generation
        trust = store.trust_store().bundle_pem()
        return TlsMaterial(store.credential_path(name), trust, generation)

    return MtlsContexts(load)


def presented(conn: object) -> int:
    """The serial number of the certificate the peer presented on ``conn``."""
    assert isinstance(conn, StreamConnection) and conn._transport is not None
    der = conn._transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


async def side(tls: MtlsContexts) -> tuple[UserAgent, Phone, Endpoint, StreamTransport]:
    endpoint = Endpoint(timers=FAST)
    phone = Phone()
    ua = UserAgent(endpoint, phone, config=QUICK, rng=random.Random())
    transport = await endpoint.listen(
        "TLS", "127.0.0.1", 0, server_ssl=tls.server, client_ssl=tls.client
    )
    assert isinstance(transport, StreamTransport)
    return ua, phone, endpoint, transport


def test_a_call_survives_rotation_and_new_connections_get_the_new_certificate(
    site: PkiStore,
) -> None:
    async def main() -> None:
        alice_tls, bob_tls = contexts(site, "alice"), contexts(site, "bob")
        alice, _, alice_ep, alice_t = await side(alice_tls)
        bob, bob_phone, bob_ep, bob_t = await side(bob_tls)
        carol_ep = Endpoint(timers=FAST)
        try:
            port = bob_t.local[1]
            a = alice.invite(
                f"sip:bob@127.0.0.1:{port};transport=tls", from_="<sip:alice@127.0.0.1>", sdp=OFFER,
                destination=Destination("TLS", "127.0.0.1", port),
            )  # fmt: skip
            b = await asyncio.wait_for(bob_phone.incoming.get(), WAIT)
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            before = alice_t.connection_to("127.0.0.1", port)
            old = site.load_credential("bob").certificate.serial_number
            assert presented(before) == old

            # rotation: new keys and certificates, taken by the running contexts
            site.renew("bob", now())
            site.renew("alice", now())
            assert bob_tls.reload() and alice_tls.reload()
            new = site.load_credential("bob").certificate.serial_number
            assert new != old

            # the call goes on over the connection made before: a re-INVITE, then the BYE
            hold, held = sdp(6000, "sendonly"), sdp(7000, "recvonly")
            a.reinvite(hold)
            assert await b.wait_for(Offer, WAIT) == Offer(hold)
            b.accept_offer(held)
            assert await a.wait_for(OfferAnswered, WAIT) == OfferAnswered(held)
            assert a.state is State.CONFIRMED and b.state is State.CONFIRMED
            assert alice_t.connection_to("127.0.0.1", port) is before
            assert presented(before) == old  # its session, untouched

            # a new connection to the same listener: the renewed certificate
            carol = await carol_ep.listen(
                "TLS", "127.0.0.1", 0, client_ssl=contexts(site, "carol").client
            )
            assert isinstance(carol, StreamTransport)
            options = (
                f"OPTIONS sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {carol.sent_by};branch=z9hG4bKrot1\r\nMax-Forwards: 70\r\n"
                "From: <sip:carol@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n"
                "Call-ID: rotation-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            carol.send(options, "127.0.0.1", port)
            async with asyncio.timeout(WAIT):
                while carol.connection_to("127.0.0.1", port) is None:
                    await asyncio.sleep(0.01)
            assert presented(carol.connection_to("127.0.0.1", port)) == new

            a.bye()
            assert (await b.ended(WAIT)).side == "remote"
            assert alice_t.connection_to("127.0.0.1", port) is before
            assert bob_t.counters.tls_refused == {} and alice_t.counters.tls_refused == {}
        finally:
            for ua in (alice, bob):
                ua.close()
            for endpoint in (alice_ep, bob_ep, carol_ep):
                await endpoint.close()

    run(main())


def test_a_credential_file_replaced_by_hand_reaches_the_next_handshake(
    site: PkiStore, tmp_path: Path
) -> None:
    """No ``ca renew``: an admin copies a new key and certificate over the file (same
    generation); the next reload takes it because the file's content changed."""

    async def main() -> None:
        bob_tls = contexts(site, "bob")
        _, _, bob_ep, bob_t = await side(bob_tls)
        carol_ep = Endpoint(timers=FAST)
        try:
            assert bob_tls.reload() is False  # nothing changed yet
            other = PkiStore(tmp_path / "elsewhere")
            other.save_ca(site.load_ca())
            fresh = other.ensure_server(site.load_ca(), "bob", now(), ips=["127.0.0.1"])
            path = site.credential_path("bob")
            path.write_bytes(fresh.bundle_pem)  # by hand: the .json generation stays
            assert site.load_credential("bob").generation == 1
            assert bob_tls.reload() is True
            carol = await carol_ep.listen(
                "TLS", "127.0.0.1", 0, client_ssl=contexts(site, "carol").client
            )
            assert isinstance(carol, StreamTransport)
            port = bob_t.local[1]
            carol.send(b"\r\n\r\n", "127.0.0.1", port)  # a keep-alive opens the connection
            async with asyncio.timeout(WAIT):
                while carol.connection_to("127.0.0.1", port) is None:
                    await asyncio.sleep(0.01)
            serial = fresh.certificate.serial_number
            assert presented(carol.connection_to("127.0.0.1", port)) == serial
        finally:
            await bob_ep.close()
            await carol_ep.close()

    run(main())
