"""The edge's media relay in ``hybridvoice up`` (:class:`hybridvoice.app.Lab`): the online
service's ``GET /v1/users/{sip_uri}/turn-credentials`` fetches credentials from the edge's
MRAS, and coturn's ``turnutils_uclient`` allocates with them through the edge relay and
exchanges data with ``turnutils_peer``; expired and forged credentials are refused (401),
and the appliance's metrics count what happened. Loopback only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from chain_harness import DOMAIN, lab, settings_on_free_ports
from interop_programs import Program, need_binary, run_logged
from ports import free_port, free_port_block

from hybridvoice.app import Lab
from hybridvoice.media.mras import MrasIssuer

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
SECRET = "edge-relay-interop-site-secret"


async def _uclient(port: int, peer: int, user: str, password: str, log: Path) -> tuple[int, str]:
    binary = need_binary("turnutils_uclient", "coturn")
    args = [binary, "-e", HOST, "-r", str(peer), "-p", str(port), "-L", HOST, "-m", "2",
            "-n", "20", "-l", "120", "-z", "10", "-u", user, "-w", password, HOST]  # fmt: skip
    return await run_logged(args, log)


async def _registered_relay(up: Lab) -> None:
    """Wait until the appliance has registered its MRAS with the online service."""
    assert up.online is not None and up.appliance is not None
    for _ in range(200):
        found = up.online.store.get_appliance(up.appliance.name)
        if found is not None and found.mras_url:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the appliance never registered an MRAS URL")


def test_uclient_allocates_through_the_edge_with_credentials_from_the_online_service(
    tmp_path: Path,
) -> None:
    peer_binary = need_binary("turnutils_peer", "coturn")
    peer_port = free_port()
    peer = Program([peer_binary, "-L", HOST, "-p", str(peer_port)], tmp_path / "peer.out")
    secret = tmp_path / "mras.secret"
    secret.write_text(SECRET + "\n")
    first = free_port_block(41)
    settings = settings_on_free_ports(
        EdgeServer={"ExternalMRIPs": HOST, "ExternalMRPortRange": f"{first}-{first + 40}"},
        MediaRelay={
            "UDPPort": free_port(),
            "TCPPort": free_port(),
            "MRASPort": free_port(),
            "SecretFile": str(secret),
            "AllowInternalPeers": True,
        },
    )

    async def run() -> None:
        async with lab(tmp_path, settings) as up:
            await _registered_relay(up)
            assert up.appliance is not None and up.appliance.edge is not None
            media = up.appliance.edge.media
            assert media is not None
            url = f"{settings.online.service_url}/v1/users/sip:alice@{DOMAIN}/turn-credentials"
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(url, headers={"Authorization": f"Bearer {up.admin_token}"})
                assert answer.status_code == 200, answer.text
                stranger = await http.get(url)
                assert stranger.status_code == 401
            creds = answer.json()
            assert creds["uris"][0] == f"turn:{HOST}:{media.relay.address[1]}?transport=udp"
            assert creds["username"].endswith(f":sip:alice@{DOMAIN}")
            port = media.relay.address[1]
            rc, out = await _uclient(port, peer_port, creds["username"], creds["password"],
                                     tmp_path / "uclient.log")  # fmt: skip
            assert rc == 0, out[-3000:]
            assert "tot_send_msgs=40, tot_recv_msgs=40" in out, out[-3000:]
            counts = media.relay.counters
            assert counts["to_peer"] == counts["from_peer"] == 40
            # forged: the right username, another password; expired: signed by the site
            rc, out = await _uclient(port, peer_port, creds["username"], "forged",
                                     tmp_path / "forged.log")  # fmt: skip
            assert rc != 0 and "tot_recv_msgs=40" not in out
            old = MrasIssuer(SECRET.encode(), ttl=60).issue("sip:bob@x", time.time() - 3600)
            rc, out = await _uclient(port, peer_port, old.username, old.password,
                                     tmp_path / "expired.log")  # fmt: skip
            assert rc != 0 and "tot_recv_msgs=40" not in out
            counts = media.relay.counters
            assert counts["integrity_failed"] >= 1 and counts["credentials_expired"] >= 1
            assert media.mras_counters["issued"] == 1
            api = up.appliance.api
            assert api is not None
            async with httpx.AsyncClient(timeout=10) as http:
                scrape = await http.get(
                    f"{api.url}/metrics", headers={"Authorization": f"Bearer {up.admin_token}"}
                )
            text = scrape.text
            assert 'hybridvoice_turn_relayed_packets_total{direction="to_peer"} 40.0' in text
            assert 'hybridvoice_turn_refused_total{reason="credentials_expired"}' in text

    try:
        asyncio.run(run())
    finally:
        peer.stop()
