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
from served_cert import served_certificate
from test_online_trust_site import Sites

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
