"""An online service serving several sites (``docs/api-auth.md``): ``hybridvoice online
trust-site --site S --root root.pem`` gives it a site's root at run time, kept in its tenant
store and taken without a restart; ``trusted-sites`` lists, ``untrust-site`` removes. An
appliance of the second site is refused before (its CA is nobody's: the handshake; its root
trusted under another site's name: ``unknown-site``) and registers after. A real HTTPS online
API on 127.0.0.1 with certificates from the site PKI; the CLI runs in a thread."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from ports import free_port
from typer.testing import CliRunner

from hybridvoice.cli import app as cli
from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import lab_settings
from hybridvoice.mgmt.online_tls import online_api_tls
from hybridvoice.net.tls import TlsMaterial, client_context
from hybridvoice.online.service import OnlineOptions, OnlineService
from hybridvoice.online.store import TenantStore
from hybridvoice.pki import PkiStore
from hybridvoice.pki.identity import CLIENT_CREDENTIAL, ensure_appliance

HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)
PARIS_1 = {"name": "paris-1", "site": "Paris", "mediation_fqdn": "med.paris.contoso.com",
           "edge_fqdn": "edge.paris.contoso.com", "edge_sip_host": "192.0.2.20"}  # fmt: skip


def online_settings(port: int) -> Settings:
    raw = settings_raw(lab_settings())
    raw["Common"]["SiteName"] = "Seattle"
    raw["Online"]["ServiceURL"] = f"https://{HOST}:{port}"
    return parse_settings(raw)


class Sites:
    """The online service of site Seattle (its PKI in ``tmp/seattle``) and site Paris's PKI
    with the client certificate of appliance paris-1."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.seattle = PkiStore(tmp / "seattle")
        self.settings = online_settings(free_port())
        self.contexts, self.auth = online_api_tls(self.seattle, self.settings, NOW)
        self.paris = PkiStore(tmp / "paris")
        ensure_appliance(self.paris, self.paris.ensure_ca("Paris", NOW), "paris-1", NOW)
        self.paris_root = tmp / "paris-root.pem"
        self.paris_root.write_bytes(self.paris.root_pem())
        self.seattle_root = tmp / "seattle-root.pem"
        self.seattle_root.write_bytes(self.seattle.root_pem())
        self.service: OnlineService | None = None
        self.admin = ""

    async def start(self) -> None:
        options = OnlineOptions(
            sip=[("UDP", HOST, 0)], api_host=HOST, api_port=int(self.settings.online.
            service_url.rsplit(":", 1)[1]), api_ssl=self.contexts.server,
            appliance_auth=self.auth, store=self.tmp / "online.db",
        )  # fmt: skip
        self.service = OnlineService(options)
        self.admin = self.service.store.access.tokens.create("ops", "admin")[1]
        await self.service.start()

    @property
    def url(self) -> str:
        assert self.service is not None and self.service.api is not None
        return self.service.api.url

    def paris_client(self) -> ssl.SSLContext:
        """paris-1's context: its certificate, the online API's checked against Seattle's."""
        material = TlsMaterial(self.paris.credential_path(CLIENT_CREDENTIAL),
                               self.seattle.root_pem(), 1)  # fmt: skip
        return client_context(material)

    async def register(self) -> httpx.Response:
        async with httpx.AsyncClient(verify=self.paris_client(), timeout=20) as http:
            return await http.post(f"{self.url}/v1/appliances", json=PARIS_1)

    async def cli(self, *args: str) -> Any:
        """``hybridvoice online ...`` against the service (admin token, Seattle's root)."""
        env = {"HYBRIDVOICE_TOKEN": self.admin, "HYBRIDVOICE_CA": str(self.seattle_root)}
        return await asyncio.to_thread(
            CliRunner().invoke, cli, ["online", *args, "--url", self.url], env=env
        )


async def _untrusted(sites: Sites) -> None:
    """paris-1 is refused in the handshake (no trusted CA issued its certificate)."""
    before = sites.auth.refused["untrusted-chain"]
    with pytest.raises(httpx.TransportError):
        await sites.register()
    for _ in range(200):
        if sites.auth.refused["untrusted-chain"] > before:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no untrusted refusal counted: {sites.auth.refused}")


def test_a_second_sites_appliance_registers_once_its_root_is_trusted(tmp_path: Path) -> None:
    sites = Sites(tmp_path)

    async def run() -> None:
        await sites.start()
        assert sites.service is not None
        try:
            await _untrusted(sites)
            # Paris's root trusted under another site's name: the handshake passes, the
            # certificate names Paris, which the service has no root for
            done = await sites.cli("trust-site", "--site", "Lyon", "--root", str(sites.paris_root))
            assert done.exit_code == 0, done.output
            refused = await sites.register()
            assert refused.status_code == 403, refused.text
            assert refused.json()["reason"] == "unknown-site"
            assert "trust-site" in refused.json()["hint"]
            assert (await sites.cli("untrust-site", "--site", "Lyon")).exit_code == 0
            # the right name: taken at once, no restart
            done = await sites.cli("trust-site", "--site", "Paris", "--root", str(sites.paris_root))
            assert done.exit_code == 0, done.output
            assert "site Paris trusted" in done.output
            answer = await sites.register()
            assert answer.status_code in (200, 201), answer.text
            assert sites.service.store.get_appliance("paris-1") is not None
            listed = await sites.cli("trusted-sites", "--json")
            assert listed.exit_code == 0, listed.output
            assert '"Seattle"' in listed.output and '"Paris"' in listed.output
            assert '"settings"' in listed.output and '"added"' in listed.output
            # kept in the online service's state
            assert set(TenantStore(tmp_path / "online.db").site_roots.all()) == {"Paris"}
            # removed: the next connection is refused again
            assert (await sites.cli("untrust-site", "--site", "Paris")).exit_code == 0
            await _untrusted(sites)
        finally:
            await sites.service.stop()

    asyncio.run(run())


def test_trust_site_errors_name_the_problem(tmp_path: Path) -> None:
    sites = Sites(tmp_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(sites.paris.load_credential(CLIENT_CREDENTIAL).cert_pem)

    async def run() -> None:
        await sites.start()
        assert sites.service is not None
        try:
            paris = str(sites.paris_root)
            own = await sites.cli("trust-site", "--site", "Seattle", "--root", paris)
            assert own.exit_code == 1 and "this online service's own" in own.output
            bad = await sites.cli("trust-site", "--site", "Paris", "--root", str(leaf))
            assert bad.exit_code == 1 and "not a CA certificate" in bad.output, bad.output
            gone = await sites.cli("trust-site", "--site", "Paris", "--root", "/nonexistent.pem")
            assert gone.exit_code == 1 and "--root: cannot read" in gone.output
            none = await sites.cli("untrust-site", "--site", "Paris")
            assert none.exit_code == 1 and "has no added root" in none.output
        finally:
            await sites.service.stop()

    asyncio.run(run())
