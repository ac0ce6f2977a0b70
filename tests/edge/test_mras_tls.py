"""The edge's MRAS over mutual TLS (``docs/edge-media.md``, MRAS): the online service's site
certificate gets credentials; a stranger's certificate (another CA), no certificate and an
expired certificate from the site CA are refused in the handshake, logged and counted by
reason; the appliance's own site certificate verifies but is not the online service's (403).
A renewed site certificate is taken without a restart: a keep-alive connection goes on with
the old one, the next handshake presents the new one.
Without a site certificate the relay does not start. Loopback only."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import httpx
import pytest
from served_cert import served_certificate
from test_edge_media import credentials, edge_role, settings

from hybridvoice.edge.media_relay import EdgeMedia, MediaRelayError
from hybridvoice.edge.role import EdgeOptions, EdgeRole
from hybridvoice.mgmt.metrics_turn import turn_metrics
from hybridvoice.mgmt.site_tls import tls_names
from hybridvoice.net.tls import TlsMaterial, client_context
from hybridvoice.pki import PkiStore, issue_server

USER = "sip:alice@contoso.example"
NOW = datetime.datetime.now(datetime.UTC)


def _client(store: PkiStore, name: str, trust: bytes) -> ssl.SSLContext:
    return client_context(TlsMaterial(store.credential_path(name), trust, 1))


async def _refused(media: EdgeMedia, context: ssl.SSLContext, reason: str) -> None:
    """The request fails in the handshake and MRAS counts ``reason`` for 127.0.0.1."""
    with pytest.raises(httpx.TransportError):
        await credentials(media.mras_url, USER, context)
    for _ in range(200):  # the server side may see it a moment after the client
        if media.tls_refused.get(("127.0.0.1", reason)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {reason} refusal counted: {media.tls_refused}")


def test_mras_refuses_strangers_no_certificate_and_expired(tmp_path: Path) -> None:
    s = settings(tmp_path)
    online_dns, online_ips = tls_names(s)["online"]

    async def run() -> None:
        edge, tls = edge_role(s, tmp_path)
        site_root = tls.store.root_pem()
        # a stranger: the same names, from a CA the site does not trust
        other = PkiStore(tmp_path / "other")
        other_ca = other.ensure_ca("Elsewhere", now := datetime.datetime.now(datetime.UTC))
        other.ensure_server(other_ca, "online", now, dns_names=online_dns, ips=online_ips)
        # expired: from the site CA, issued three years ago
        old = PkiStore(tmp_path / "old")
        old.save_credential(issue_server(tls.store.load_ca(), "online",
                                         now - datetime.timedelta(days=3 * 365),
                                         dns_names=online_dns, ips=online_ips))  # fmt: skip
        await edge.start()
        try:
            media = edge.media
            assert media is not None
            await _refused(media, _client(other, "online", site_root), "untrusted-chain")
            bare = ssl.create_default_context(cadata=site_root.decode("ascii"))
            await _refused(media, bare, "no-certificate")
            await _refused(media, _client(old, "online", site_root), "expired")
            assert media.mras_counters["issued"] == 0
            good = await credentials(media.mras_url, USER, tls.contexts["online"].client)
            assert good.status_code == 200, good.text
            assert media.mras_counters["issued"] == 1
            samples = {
                (x.name, tuple(sorted(x.labels.items()))): x.value
                for family in turn_metrics(media)
                for x in family.samples
            }
            for reason in ("untrusted-chain", "no-certificate", "expired"):
                key = (("peer", "127.0.0.1"), ("reason", reason))
                assert samples[("hybridvoice_mras_tls_refused_total", key)] == 1
        finally:
            await edge.stop()

    asyncio.run(run())


def test_the_relay_needs_the_site_certificate(tmp_path: Path) -> None:
    async def run() -> None:
        edge = EdgeRole(settings(tmp_path), EdgeOptions(ping_interval=5))
        with pytest.raises(MediaRelayError, match="mutual TLS"):
            await edge.start()

    asyncio.run(run())


def test_mras_certificate_renewed_while_a_keep_alive_connection_is_open(tmp_path: Path) -> None:
    async def run() -> None:
        edge, tls = edge_role(settings(tmp_path), tmp_path)
        await edge.start()
        try:
            media = edge.media
            assert media is not None and media.mras.host == "127.0.0.1"
            online = tls.contexts["online"].client
            body = {"user": "sip:alice@contoso.example"}
            async with httpx.AsyncClient(verify=online, timeout=20) as kept:
                first = await kept.post(media.mras_url, json=body)
                assert first.status_code == 200, first.text
                old = served_certificate(first)
                tls.store.renew("appliance", NOW)
                assert tls.contexts["appliance"].reload()
                again = await kept.post(media.mras_url, json=body)
                assert again.status_code == 200
                assert served_certificate(again).serial_number == old.serial_number
                async with httpx.AsyncClient(verify=online, timeout=20) as new:
                    fresh = await new.post(media.mras_url, json=body)
                assert fresh.status_code == 200
                assert served_certificate(fresh).serial_number != old.serial_number
            assert media.mras_counters["issued"] == 3
        finally:
            await edge.stop()

    asyncio.run(run())
