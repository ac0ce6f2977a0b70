"""``hybridvoice up`` (the Lab) with an https ServiceURL: the online API over HTTPS, the
appliance's client certificate made by the site CA on first start, registration, heartbeats
and replication on it, a client without one refused; the API binds the management interface
only (the URL's IP, else [Management] IP; never the wildcard)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
from chain_harness import call_once, settings_on_free_ports
from ports import free_port

from hybridvoice.app import Lab
from hybridvoice.mgmt.online_tls import api_bind
from hybridvoice.net.http import HttpServeError
from hybridvoice.pki import PkiStore
from hybridvoice.pki.identity import ApplianceIdentity, identity_of


def https_settings(host: str = "127.0.0.1", **sections: dict[str, object]):  # type: ignore[no-untyped-def]
    return settings_on_free_ports(
        Online={"ServiceURL": f"https://{host}:{free_port()}"}, **sections
    )


def test_up_with_an_https_service_url_authenticates_the_appliance_by_certificate(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        lab = Lab(https_settings(), tmp_path, lab_gateway=True)
        await lab.start()  # ready means registered and replicated
        try:
            assert lab.online is not None and lab.appliance is not None
            assert lab.online.api is not None and lab.online.api.url.startswith("https://")
            status = lab.appliance.status()
            assert status["online"]["registered"] and status["replica"]["connected"]
            assert status["online"]["auth"] == "certificate"
            store = PkiStore(tmp_path / "pki")
            names = set(store.names())
            assert {"online-api", "online-client"} <= names
            client = store.load_credential("online-client").certificate
            assert identity_of(client) == ApplianceIdentity("Lab", lab.appliance.name)
            auth = lab.online.options.appliance_auth
            assert auth is not None and not any(auth.refused.values())
            # a call still passes (the SIP side is unchanged)
            assert (await call_once(lab)).ok
            # without a certificate: refused, with a hint, counted
            trust = ssl.create_default_context(cadata=store.root_pem().decode())
            async with httpx.AsyncClient(verify=trust, timeout=20) as http:
                answer = await http.get(f"{lab.online.api.url}/v1/snapshot")
            assert answer.status_code == 401 and answer.json()["reason"] == "no-certificate"
            assert auth.refused["no-certificate"] == 1
        finally:
            await lab.stop()

    asyncio.run(main())


def test_a_restart_keeps_the_certificate(tmp_path: Path) -> None:
    settings = https_settings()

    async def once() -> bytes:
        lab = Lab(settings, tmp_path, lab_gateway=True)
        await lab.start()
        await lab.stop()
        return PkiStore(tmp_path / "pki").load_credential("online-client").cert_pem

    assert asyncio.run(once()) == asyncio.run(once())


def test_the_api_binds_the_management_interface_only() -> None:
    by_ip = https_settings("127.0.0.1")
    assert api_bind(by_ip)[0] == "127.0.0.1"
    by_name = settings_on_free_ports(
        Online={"ServiceURL": "https://online.contoso.example:8470"},
        Management={"IP": "127.0.0.2"},
    )
    assert api_bind(by_name) == ("127.0.0.2", 8470)
    assert api_bind(settings_on_free_ports(Online={"ServiceURL": "http://127.0.0.1"}))[1] == 80


def test_a_wildcard_service_url_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        lab = Lab(https_settings("0.0.0.0"), tmp_path, lab_gateway=True)
        with pytest.raises(HttpServeError, match="wildcard"):
            await lab.start()

    asyncio.run(main())


def test_the_online_api_listens_on_the_url_address_only(tmp_path: Path) -> None:
    async def main() -> None:
        lab = Lab(https_settings("127.0.0.1"), tmp_path, lab_gateway=True)
        await lab.start()
        try:
            assert lab.online is not None and lab.online.api is not None
            assert lab.online.api.host == "127.0.0.1"
            port = lab.online.api.port
            # another loopback address of this host reaches nothing on that port
            with pytest.raises(OSError):
                await asyncio.wait_for(asyncio.open_connection("127.0.0.3", port), 10)
        finally:
            await lab.stop()

    asyncio.run(main())
