"""Appliances authenticate to the online API with their site certificate (mutual TLS): a real
HTTPS server on 127.0.0.1 with certificates from hybridvoice.pki. A valid appliance registers,
beats and reads the feed (with the real Replicator and ApplianceLink); without a certificate,
with one of another CA, expired, of another site, of another appliance, or with a token only,
it is refused and counted; admin tokens keep working on the admin routes."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.replicator import ApplianceLink, Replicator
from hybridvoice.net.http import AsgiServer, serve_asgi
from hybridvoice.net.tls import TlsMaterial, server_context
from hybridvoice.online.api import create_online_api
from hybridvoice.online.api_mtls import ApplianceAuth
from hybridvoice.online.models import Site
from hybridvoice.online.store import TenantStore
from hybridvoice.pki import Credential, SiteCa, create_ca, issue_server
from hybridvoice.pki.identity import ApplianceIdentity, issue_appliance

HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)
YEAR = datetime.timedelta(days=365)
A1 = {"name": "a1", "site": "Seattle", "mediation_fqdn": "med.contoso.com",
      "edge_fqdn": "edge.seattle.contoso.com", "edge_sip_host": "192.0.2.10"}  # fmt: skip


def forged(ca: SiteCa, identity: ApplianceIdentity) -> Credential:
    """A client certificate ``ca`` signs for an identity of another site (a CA gone rogue)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([]))
        .issuer_name(ca.name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - YEAR / 12).not_valid_after(NOW + YEAR)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(identity.uri)]), critical=True)
        .sign(ca.key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    return Credential("forged", cert.public_bytes(serialization.Encoding.PEM), key_pem, b"")


class World:
    """The tenant, three site CAs (Seattle and Paris trusted, Oslo in the TLS trust only),
    a rogue CA, the online API over HTTPS, and a client context per certificate."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.seattle, self.paris = create_ca("Seattle", NOW), create_ca("Paris", NOW)
        self.oslo, self.rogue = create_ca("Oslo", NOW), create_ca("Seattle", NOW)
        self.store = TenantStore(":memory:")
        self.store.add_domain("contoso.com")
        for name in ("Seattle", "Paris", "Oslo"):
            self.store.new_site(Site(name=name, edge_fqdn=f"edge.{name.lower()}.contoso.com"))
        self.auth = ApplianceAuth({"Seattle": self.seattle.certificate,
                                   "Paris": self.paris.certificate})  # fmt: skip
        self.app = create_online_api(self.store, appliance_auth=self.auth)
        _, self.admin = self.store.access.tokens.create("ops", "admin")
        _, self.token = self.store.access.tokens.create("a1", "appliance")
        online = issue_server(self.seattle, "online-api", NOW, ips=[HOST])
        roots = self.seattle.cert_pem + self.paris.cert_pem + self.oslo.cert_pem
        material = TlsMaterial(self.save(online), roots, 1)
        self.server_ssl = server_context(material, require_client=False)
        self.server: AsgiServer | None = None

    def save(self, credential: Credential) -> Path:
        path = self.tmp / f"{credential.name}-{id(credential)}.pem"
        path.write_bytes(credential.bundle_pem)
        return path

    def client_ssl(self, credential: Credential | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.seattle.cert_pem.decode())
        if credential is not None:
            context.load_cert_chain(self.save(credential))
        return context

    def http(self, credential: Credential | None, **kwargs: Any) -> httpx.AsyncClient:
        assert self.server is not None
        return httpx.AsyncClient(base_url=self.server.url, verify=self.client_ssl(credential),
                                 timeout=20, **kwargs)  # fmt: skip

    def refused(self) -> dict[str, int]:
        return {k: v for k, v in self.auth.refused.items() if v}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def serve(world: World, test: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        world.server = await serve_asgi(world.app, HOST, 0, ssl_context=world.server_ssl,
                                        on_tls_refused=world.auth.tls_refused)  # fmt: skip
        try:
            await test()
        finally:
            await world.server.stop()

    asyncio.run(main())


async def appliance_requests(http: httpx.AsyncClient) -> AsyncIterator[httpx.Response]:
    yield await http.post("/v1/appliances", json=A1)
    yield await http.post("/v1/appliances/a1/heartbeat", json={"status": "online"})
    yield await http.get("/v1/snapshot")
    yield await http.get("/v1/changes", params={"since": 0})


def test_an_appliance_with_its_certificate_registers_beats_and_replicates(world: World) -> None:
    good = issue_appliance(world.seattle, "a1", NOW)

    async def test() -> None:
        async with world.http(good) as http:
            statuses = [r.status_code async for r in appliance_requests(http)]
        assert statuses == [201, 200, 200, 200]
        assert world.store.get_appliance("a1") is not None
        # the real appliance side on the same certificate
        assert world.server is not None
        async with world.http(good) as http:
            link = ApplianceLink(world.server.url, A1, interval=30, status=lambda: "online",
                                 client=http)  # fmt: skip
            await link.heartbeat()
            replica = LocalStore(":memory:")
            replicator = Replicator(replica, world.server.url, client=http)
            await replicator.poll_once()
            world.store.add_domain("fabrikam.com")
            await replicator.poll_once()
            assert replica.version == world.store.version
            replica.close()
        # the audit log names the appliance by its certificate
        async with world.http(None, headers={"Authorization": f"Bearer {world.admin}"}) as http:
            entries = (await http.get("/v1/audit")).json()["entries"]
        registered = [e for e in entries if e["operation"] == "appliance.register"]
        assert registered and registered[0]["token_id"].startswith("x509:")
        assert registered[0]["token_name"] == "a1"

    serve(world, test)
    assert world.refused() == {}


def test_no_certificate_or_a_token_only_is_refused_with_a_hint(world: World) -> None:
    async def test() -> None:
        for headers in ({}, {"Authorization": f"Bearer {world.token}"},
                        {"Authorization": f"Bearer {world.admin}"}):  # fmt: skip
            async with world.http(None, headers=headers) as http:
                async for answer in appliance_requests(http):
                    assert answer.status_code == 401, answer.text
                    body = answer.json()
                    assert body["reason"] == "no-certificate"
                    assert "client certificate" in body["hint"]
        assert world.store.get_appliance("a1") is None

    serve(world, test)
    assert world.refused() == {"no-certificate": 12}


@pytest.mark.parametrize(
    ("which", "reason"), [("rogue", "untrusted-chain"), ("expired", "expired")]
)
def test_a_certificate_the_handshake_refuses_is_counted(
    world: World, which: str, reason: str
) -> None:
    credential = {
        "rogue": issue_appliance(world.rogue, "a1", NOW),  # a CA of the same name, untrusted
        "expired": issue_appliance(world.seattle, "a1", NOW - 3 * YEAR),
    }[which]

    async def test() -> None:
        async with world.http(credential) as http:
            with pytest.raises(httpx.TransportError):
                await http.post("/v1/appliances", json=A1)
        assert world.store.get_appliance("a1") is None

    serve(world, test)
    assert world.refused() == {reason: 1}


def test_an_appliance_speaks_for_its_own_site_and_name_only(world: World) -> None:
    paris_a1 = issue_appliance(world.paris, "a1", NOW)
    seattle_a2 = issue_appliance(world.seattle, "a2", NOW)
    seattle_says_paris = forged(world.seattle, ApplianceIdentity("Paris", "a9"))
    oslo = issue_appliance(world.oslo, "o1", NOW)

    async def test() -> None:
        async with world.http(paris_a1) as http:  # registers into Seattle: refused
            answer = await http.post("/v1/appliances", json=A1)
            assert (answer.status_code, answer.json()["reason"]) == (403, "wrong-site")
        async with world.http(issue_appliance(world.seattle, "a1", NOW)) as http:
            assert (await http.post("/v1/appliances", json=A1)).status_code == 201
        async with world.http(paris_a1) as http:  # a1 is Seattle's now: no beat, no feed
            for answer in [
                await http.post("/v1/appliances/a1/heartbeat", json={}),
                await http.get("/v1/snapshot"),
                await http.get("/v1/changes", params={"since": 0}),
            ]:
                assert (answer.status_code, answer.json()["reason"]) == (403, "wrong-site")
        async with world.http(seattle_a2) as http:
            answer = await http.post("/v1/appliances/a1/heartbeat", json={})
            assert (answer.status_code, answer.json()["reason"]) == (403, "wrong-appliance")
            answer = await http.post("/v1/appliances", json=A1)
            assert (answer.status_code, answer.json()["reason"]) == (403, "wrong-appliance")
        async with world.http(seattle_says_paris) as http:
            answer = await http.get("/v1/snapshot")
            assert (answer.status_code, answer.json()["reason"]) == (403, "wrong-site")
        async with world.http(oslo) as http:
            answer = await http.get("/v1/snapshot")
            assert (answer.status_code, answer.json()["reason"]) == (403, "unknown-site")
            assert "export-root" in answer.json()["hint"]

    serve(world, test)
    assert world.refused() == {"wrong-site": 5, "wrong-appliance": 2, "unknown-site": 1}


def test_admin_tokens_keep_the_admin_routes_and_metrics_count_refusals(world: World) -> None:
    async def test() -> None:
        admin = {"Authorization": f"Bearer {world.admin}"}
        async with world.http(None, headers=admin) as http:
            answer = await http.put("/v1/sites/Lyon", json={"edge_fqdn": "edge.lyon.com"})
            assert answer.status_code == 200, answer.text
            assert (await http.get("/v1/users")).status_code == 200
            assert (await http.get("/v1/snapshot")).status_code == 401  # an appliance route
            text = (await http.get("/metrics")).text
        assert ('hybridvoice_online_appliance_auth_refused_total{reason="no-certificate"} 1.0'
                in text)  # fmt: skip
        assert (
            'hybridvoice_online_appliance_auth_refused_total{reason="untrusted-chain"} 0.0' in text
        )
        # an appliance certificate is no admin token: admin routes still need one
        async with world.http(issue_appliance(world.seattle, "a1", NOW)) as http:
            assert (await http.get("/v1/users")).status_code == 401

    serve(world, test)


def test_the_app_checks_what_the_handshake_may_not_have(world: World) -> None:
    """Defence in depth: validity by the service's clock, an identity, a readable
    certificate (the handshake already refuses expired and unknown chains)."""
    from hybridvoice.online.api_mtls import ApplianceRefusedError  # noqa: PLC0415

    def scope(pem: bytes | str) -> dict[str, Any]:
        text = pem.decode() if isinstance(pem, bytes) else pem
        return {"extensions": {"tls": {"client_cert_chain": [text]}}}

    good = issue_appliance(world.seattle, "a1", NOW).cert_pem
    assert world.auth.verify(scope(good)).identity == ApplianceIdentity("Seattle", "a1")
    cases = [
        (ApplianceAuth({"Seattle": world.seattle.certificate},
                       clock=(NOW + 3 * YEAR).timestamp), good, "expired"),
        (ApplianceAuth({"Seattle": world.seattle.certificate},
                       clock=(NOW - YEAR).timestamp), good, "not-yet-valid"),
        (world.auth, issue_server(world.seattle, "x", NOW, ips=[HOST]).cert_pem, "no-identity"),
        (world.auth, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         "bad-certificate"),
    ]  # fmt: skip
    for auth, pem, reason in cases:
        with pytest.raises(ApplianceRefusedError) as refused:
            auth.verify(scope(pem))
        assert refused.value.reason == reason
        assert refused.value.hint and refused.value.status in (401, 403)
