"""The online API's server certificate renewed without a restart (``docs/pki.md``,
"Rotation without a restart"): after ``hybridvoice ca renew`` (``PkiStore.renew``) and the
reload the store watcher runs, a keep-alive connection opened before goes on with the old
certificate and the next handshake presents the new one. Loopback, a real HTTPS server
(MRAS: ``tests/edge/test_mras_tls.py``)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import httpx
from chain_harness import settings_on_free_ports
from ports import free_port
from served_cert import served_certificate
from test_online_trust_site import HOST, Sites

from hybridvoice.app import Lab
from hybridvoice.mgmt.online_tls import API_CREDENTIAL

NOW = datetime.datetime.now(datetime.UTC)


def test_online_api_certificate_renewed_while_a_keep_alive_connection_is_open(
    tmp_path: Path,
) -> None:
    sites = Sites(tmp_path)
    trust = ssl.create_default_context(cadata=sites.seattle.root_pem().decode("ascii"))

    async def run() -> None:
        await sites.start()
        assert sites.service is not None
        headers = {"Authorization": f"Bearer {sites.admin}"}
        try:
            async with httpx.AsyncClient(verify=trust, headers=headers, timeout=20) as kept:
                first = await kept.get(f"{sites.url}/v1/site-roots")
                assert first.status_code == 200, first.text
                old = served_certificate(first)
                sites.seattle.renew(API_CREDENTIAL, NOW)
                assert sites.contexts.reload()  # what the store watcher does every 30 s
                again = await kept.get(f"{sites.url}/v1/site-roots")  # the same connection
                assert again.status_code == 200
                assert served_certificate(again).serial_number == old.serial_number
                async with httpx.AsyncClient(verify=trust, headers=headers, timeout=20) as new:
                    fresh = await new.get(f"{sites.url}/v1/site-roots")
                assert fresh.status_code == 200
                renewed = served_certificate(fresh)
                assert renewed.serial_number != old.serial_number
                assert renewed.public_key() != old.public_key()  # a new key, same names
                assert renewed.subject == old.subject
                # the kept connection still works after the new one
                assert (await kept.get(f"{sites.url}/v1/site-roots")).status_code == 200
        finally:
            await sites.service.stop()

    asyncio.run(run())


def test_hybridvoice_up_watches_the_online_api_certificate(tmp_path: Path) -> None:
    """In ``hybridvoice up`` the store watcher reloads the online API's certificate too: a
    renewal shows on the next connection, with no call to reload from the test."""
    settings = settings_on_free_ports(Online={"ServiceURL": f"https://{HOST}:{free_port()}"})

    async def run() -> None:
        up = Lab(settings, tmp_path, lab_gateway=True, tls_reload=0.5)
        await up.start()
        try:
            assert up.tls is not None and up.online is not None and up.online.api is not None
            url = f"{up.online.api.url}/v1/site-roots"
            trust = ssl.create_default_context(cadata=up.tls.store.root_pem().decode("ascii"))
            headers = {"Authorization": f"Bearer {up.admin_token}"}

            async def served() -> int:
                async with httpx.AsyncClient(verify=trust, headers=headers, timeout=20) as http:
                    answer = await http.get(url)
                assert answer.status_code == 200, answer.text
                return served_certificate(answer).serial_number

            old = await served()
            up.tls.store.renew(API_CREDENTIAL, NOW)
            async with asyncio.timeout(60):  # bounds a broken test; the watcher polls
                while await served() == old:
                    await asyncio.sleep(0.2)
        finally:
            await up.stop()

    asyncio.run(run())
