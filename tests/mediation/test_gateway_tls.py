"""Per-gateway TLS policy of the mediation role (RFC 5630 §3, RFC 5922 §7), with site
contexts (``RoleOptions.site_tls``) as ``hybridvoice up`` gives them; gateways are hybridvoice
UAs over TLS on loopback.

- Toward a TLS gateway, Via sent-by, Contact and OPTIONS carry our FQDN from our certificate
  (never a bare IP); the gateway's certificate is checked for its FQDN, a mismatch refused and
  counted under the gateway's name; a gateway with its own chain is trusted through its
  ``TrustedRootsFile``.
- Inbound on the TLS port, an MTLS gateway must present a certificate from a trusted root that
  names it: without one the handshake is refused, with another gateway's name the INVITE gets
  403; both counted in ``tls_refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from ua_harness import FAST, QUICK, WAIT, Phone

from hybridvoice.cms.settings import parse_settings
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net import loop as hv_loop
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.tls import MtlsContexts, TlsMaterial
from hybridvoice.net.transport import Destination, Source
from hybridvoice.net.ua import Call, UserAgent
from hybridvoice.pki import PkiStore
from hybridvoice.sip.message import Request
from hybridvoice.sip.session import Disconnected

CALLEE = "+31201234567"
OFFER = (
    b"v=0\r\no=hv 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
OUR_FQDN = "mspool.contoso.test"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await main()

    hv_loop.run(bounded())


def contexts(store: PkiStore, name: str, trust: PkiStore | None = None) -> MtlsContexts:
    """MTLS contexts of ``name`` in ``store``, trusting ``trust``'s roots (default: its own)."""

    def load() -> TlsMaterial:
        roots = (trust or store).trust_store().bundle_pem()
        generation = store.load_credential(name).generation
        return TlsMaterial(store.credential_path(name), roots, generation)

    return MtlsContexts(load)


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "site")
    ca = store.ensure_ca("AMS", now())
    store.ensure_server(ca, "appliance", now(), dns_names=[OUR_FQDN], ips=["127.0.0.1"])
    store.ensure_server(ca, "cloud", now(), ips=["127.0.0.1"])
    for n in (1, 2):
        store.ensure_server(ca, f"sbc{n}", now(), dns_names=[f"sbc{n}.contoso.test"])
    return store


@pytest.fixture
def carrier(tmp_path: Path) -> PkiStore:
    """A gateway that brings its own chain (another CA), trusting our site root."""
    store = PkiStore(tmp_path / "carrier")
    ca = store.ensure_ca("Carrier", now())
    store.ensure_server(ca, "sbc3", now(), dns_names=["sbc3.contoso.test"])
    return store


@dataclass
class Peer:
    """A cloud user or a gateway: a UA on its own TLS listener."""

    ua: UserAgent
    phone: Phone
    endpoint: Endpoint
    transport: StreamTransport
    #: every request that arrived, as it came off the wire
    seen: list[Request]

    async def next_call(self) -> Call:
        return await asyncio.wait_for(self.phone.incoming.get(), WAIT)


async def peer(tls: MtlsContexts) -> Peer:
    endpoint = Endpoint(timers=FAST)
    phone = Phone()
    ua = UserAgent(endpoint, phone, config=QUICK, rng=random.Random())
    transport = await endpoint.listen(
        "TLS", "127.0.0.1", 0, server_ssl=tls.server, client_ssl=tls.client
    )
    assert isinstance(transport, StreamTransport)
    seen: list[Request] = []
    original = endpoint.on_request

    def spy(request: Request, source: Source) -> None:
        seen.append(request)
        original(request, source)

    endpoint.on_request = spy  # type: ignore[method-assign]
    return Peer(ua, phone, endpoint, transport, seen)


@dataclass
class Lab:
    role: MediationRole
    cloud: Peer
    gateways: list[Peer]

    @property
    def tls(self) -> StreamTransport:
        transport = self.role.gateway_transports["TLS"]
        assert isinstance(transport, StreamTransport)
        return transport

    def call_out(self) -> Call:
        assert self.role.edge_transport is not None
        edge = self.role.edge_transport.local[1]
        return self.cloud.ua.invite(
            f"sip:{CALLEE}@127.0.0.1:{edge};transport=tls",
            from_="<sip:+31209876543@contoso.com>", sdp=OFFER,
            destination=Destination("TLS", "127.0.0.1", edge),
        )  # fmt: skip

    def call_in(self, gateway: Peer) -> Call:
        port = self.tls.local[1]
        return gateway.ua.invite(
            f"sip:{CALLEE}@{OUR_FQDN}:{port};transport=tls",
            from_="<sip:0612345678@sbc1.contoso.test>", sdp=OFFER,
            destination=Destination("TLS", "127.0.0.1", port, OUR_FQDN),
        )  # fmt: skip


@contextlib.asynccontextmanager
async def lab(
    tmp_path: Path, site: PkiStore, gateways: list[tuple[MtlsContexts, dict[str, Any]]]
) -> AsyncIterator[Lab]:
    """The role with the site's ``appliance`` contexts between a TLS cloud peer and one TLS
    gateway per entry (its contexts, its section's keys)."""
    ours = contexts(site, "appliance")
    cloud = await peer(contexts(site, "cloud"))
    peers = [await peer(tls) for tls, _ in gateways]
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "AMS"},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": None, "UDPPort": None, "TLSPort": free_port(),
            "BypassServicePort": 0, "PoolName": OUR_FQDN,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "TrunkConfiguration": {"OptionsIntervalSeconds": 60},
    }  # fmt: skip
    for n, (gw, (_, keys)) in enumerate(zip(peers, gateways, strict=True), 1):
        raw[f"Gateway{n}"] = {
            "IP": "127.0.0.1", "Port": gw.transport.local[1], "VoiceRoutes": "All",
            "SendSipOptions": False, **keys,
        }  # fmt: skip
    options = RoleOptions(
        edge=Destination("TLS", "127.0.0.1", 0),
        edge_target=Destination("TLS", "127.0.0.1", cloud.transport.local[1]),
        server_ssl=ours.server, client_ssl=ours.client, site_tls=ours,
        relay=False, session=QUICK, timers=FAST, seed=1, bypass_service=False,
    )  # fmt: skip
    role = MediationRole(parse_settings(raw), options)
    await role.start()
    try:
        yield Lab(role, cloud, peers)
    finally:
        await role.stop()
        for p in (cloud, *peers):
            p.ua.close()
            await p.endpoint.close()


async def refused(lab_: Lab, call: Call) -> int:
    ended = await call.ended(WAIT)
    assert isinstance(ended, Disconnected) and ended.status is not None
    for _ in range(300):
        if not lab_.role.b2bua.bridges:
            break
        await asyncio.sleep(0.01)
    return ended.status


def test_toward_a_tls_gateway_our_fqdn_and_its_name_checked(tmp_path: Path, site: PkiStore) -> None:
    async def main() -> None:
        good = (
            contexts(site, "sbc1"),
            {"Protocol": "TLS", "FQDN": "sbc1.contoso.test", "SendSipOptions": True},
        )
        # sbc1's certificate configured as sbc2: its name does not verify
        wrong = (contexts(site, "sbc1"), {"Protocol": "TLS", "FQDN": "sbc2.contoso.test"})
        async with lab(tmp_path, site, [wrong, good]) as lab_:
            port = lab_.tls.local[1]
            assert lab_.tls.sent_by == f"{OUR_FQDN}:{port}"
            # Gateway1 (wrong name) first: refused, the call fails over to Gateway2
            lab_.role.trunks.call_started("Gateway2")  # type: ignore[union-attr]
            try:
                a = lab_.call_out()
                b = await lab_.gateways[1].next_call()
            finally:
                lab_.role.trunks.call_ended("Gateway2")  # type: ignore[union-attr]
            assert lab_.gateways[0].phone.incoming.empty()
            assert lab_.tls.counters.tls_refused == {("Gateway1", "name-mismatch"): 1}
            invite = b.invite
            via = invite.top_via
            assert via is not None and (via.host, via.port) == (OUR_FQDN, port)
            contact = invite.headers.get("Contact") or ""
            assert f"@{OUR_FQDN}:{port}" in contact and "127.0.0.1" not in contact
            b.reject(486)
            assert await refused(lab_, a) == 486

            # the OPTIONS ping the gateway got carries the FQDN too
            async with asyncio.timeout(WAIT):
                while not any(r.method == "OPTIONS" for r in lab_.gateways[1].seen):
                    await asyncio.sleep(0.01)
            options = next(r for r in lab_.gateways[1].seen if r.method == "OPTIONS")
            assert options.top_via is not None and options.top_via.host == OUR_FQDN
            assert f"@{OUR_FQDN}" in str(options.headers.get("From"))
            assert "127.0.0.1" not in str(options.headers.get("Contact") or "")

    run(main)


def test_a_gateway_with_its_own_chain_is_trusted_by_its_roots_file(
    tmp_path: Path, site: PkiStore, carrier: PkiStore
) -> None:
    roots = tmp_path / "carrier-root.pem"
    roots.write_bytes(carrier.root_pem())

    async def main() -> None:
        own = contexts(carrier, "sbc3", trust=site)
        keys = {"Protocol": "TLS", "FQDN": "sbc3.contoso.test"}
        async with lab(tmp_path, site, [(own, {**keys, "TrustedRootsFile": str(roots)})]) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            assert lab_.tls.counters.tls_refused == {}
            b.reject(486)
            assert await refused(lab_, a) == 486
        # the same gateway without its roots file: its chain does not verify
        async with lab(tmp_path, site, [(own, keys)]) as lab_:
            a = lab_.call_out()
            assert await refused(lab_, a) == 503
            assert lab_.tls.counters.tls_refused == {("Gateway1", "untrusted-chain"): 1}

    run(main)


def test_an_mtls_gateway_must_present_a_certificate_that_names_it(
    tmp_path: Path, site: PkiStore
) -> None:
    async def main() -> None:
        keys = {"Protocol": "MTLS", "FQDN": "sbc1.contoso.test"}
        async with lab(tmp_path, site, [(contexts(site, "sbc1"), keys)]) as lab_:
            (gateway,) = lab_.gateways
            # its own certificate: the INVITE reaches the cloud
            a = lab_.call_in(gateway)
            b = await lab_.cloud.next_call()
            b.reject(486)
            assert await refused(lab_, a) == 486
            assert lab_.tls.counters.tls_refused == {}

            # from its address, with sbc2's certificate (site CA, another name): 403
            impostor = await peer(contexts(site, "sbc2"))
            try:
                a = lab_.call_in(impostor)
                assert await refused(lab_, a) == 403
                assert lab_.tls.counters.tls_refused == {("Gateway1", "name-mismatch"): 1}
            finally:
                impostor.ua.close()
                await impostor.endpoint.close()
            # no certificate at all: the TLS port requires one (every TLS gateway is MTLS)
            bare = await peer(contexts(site, "sbc1"))
            bare.transport.client_ssl = ssl.create_default_context(cadata=site.root_pem().decode())
            try:
                a = lab_.call_in(bare)
                assert await refused(lab_, a) in (408, 503)  # the connection went away
                assert lab_.tls.counters.tls_refused[("Gateway1", "no-certificate")] == 1
            finally:
                bare.ua.close()
                await bare.endpoint.close()
            assert lab_.cloud.phone.incoming.empty()

    run(main)
