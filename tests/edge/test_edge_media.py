"""The edge's media relay and MRAS on loopback: ``[MediaRelay]`` opens TURN (UDP and TCP) and
the MRAS service (mutual TLS, site certificates: ``test_mras_tls.py`` for the refusals); the
online service's certificate gets credentials, an appliance's gets 403; the
credentials allocate a relay advertised as the external address; expired and forged ones
get 401; peers on loopback are refused unless ``AllowInternalPeers``."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from ports import free_port, free_port_block

from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.edge.media_relay import MediaRelayError, relay_config, site_secret
from hybridvoice.edge.role import EdgeOptions, EdgeRole
from hybridvoice.media.mras import MrasIssuer
from hybridvoice.media.stun import (
    Attr,
    Method,
    StunClass,
    StunMessage,
    decode_xor_address,
    encode,
    encode_xor_address,
    long_term_key,
    parse,
)
from hybridvoice.mgmt.metrics_turn import turn_metrics
from hybridvoice.mgmt.site_tls import SiteTls

HOST = "127.0.0.1"
PUBLIC = "192.0.2.44"  # advertised only, never used as an address


def settings(tmp_path: Path, **relay: Any) -> Settings:
    first = free_port_block(21)
    return parse_settings(
        {
            "Common": {"SIPDomains": "contoso.example", "SiteName": "Lab"},
            "EdgeServer": {
                "InternalServerIPs": HOST, "InternalPort": free_port(), "InternalProtocol": "UDP",
                "ExternalSIPIPs": HOST, "ExternalSIPPort": free_port(), "ExternalProtocol": "UDP",
                "ExternalMRIPs": HOST, "ExternalMRPublicIPs": PUBLIC,
                "ExternalMRPortRange": f"{first}-{min(first + 20, 65535)}",
            },
            "MediationServer": {"IP": HOST, "InternalPort": free_port(), "InternalProtocol": "UDP"},
            "Online": {"SIPAddresses": HOST, "SIPPort": free_port(), "SIPProtocol": "UDP"},
            "Management": {"StateDirectory": str(tmp_path)},
            "MediaRelay": {"UDPPort": free_port(), "TCPPort": free_port(),
                           "MRASPort": free_port(), **relay},
        }
    )  # fmt: skip


async def _ask(sock: socket.socket, data: bytes, port: int) -> StunMessage:
    loop = asyncio.get_running_loop()
    sock.sendto(data, (HOST, port))
    reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
    return parse(reply)


async def allocate(
    port: int, username: str, password: str, peer: tuple[str, int] | None = None
) -> tuple[int, StunMessage, StunMessage | None]:
    """Allocate with these credentials (after the 401 that gives the nonce); then a
    CreatePermission for ``peer``. Returns the error code (0: success) and the answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.setblocking(False)
        transport = ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),)
        first = await _ask(sock, encode(StunMessage(Method.ALLOCATE, StunClass.REQUEST,
                                                    b"first-alloc!", transport)), port)  # fmt: skip
        assert first.error_code() is not None and first.error_code()[0] == 401  # type: ignore[index]
        realm, nonce = first.text(Attr.REALM) or "", first.text(Attr.NONCE) or ""
        key = long_term_key(username, realm, password)
        auth = ((Attr.USERNAME, username.encode()), (Attr.REALM, realm.encode()),
                (Attr.NONCE, nonce.encode()))  # fmt: skip
        msg = StunMessage(Method.ALLOCATE, StunClass.REQUEST, b"secondalloc!", (*transport, *auth))
        reply = await _ask(sock, encode(msg, key, fingerprint=True), port)
        error = reply.error_code()
        if error is not None or peer is None:
            return (error[0] if error else 0), reply, None
        tid = b"permission!!"
        attrs = ((Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)), *auth)
        msg = StunMessage(Method.CREATE_PERMISSION, StunClass.REQUEST, tid, attrs)
        return 0, reply, await _ask(sock, encode(msg, key, fingerprint=True), port)


def edge_role(s: Settings, tmp_path: Path) -> tuple[EdgeRole, SiteTls]:
    """The edge role with MRAS on the site certificate of ``tmp_path/pki`` (made here)."""
    tls = SiteTls.ensure(s, tmp_path / "pki")
    server = tls.contexts["appliance"].server
    return EdgeRole(s, EdgeOptions(ping_interval=5, mras_ssl=server)), tls


async def credentials(url: str, user: str, context: ssl.SSLContext) -> httpx.Response:
    """Ask MRAS with ``context`` (the online service's: ``tls.contexts["online"].client``)."""
    async with httpx.AsyncClient(verify=context, timeout=10) as client:
        return await client.post(url, json={"user": user})


def test_mras_credentials_allocate_on_the_edge_relay(tmp_path: Path) -> None:
    async def run() -> None:
        edge, tls = edge_role(settings(tmp_path), tmp_path)
        await edge.start()
        try:
            media = edge.media
            assert media is not None
            online = tls.contexts["online"].client
            udp = media.relay.address[1]
            tcp = media.relay.tcp_address
            assert tcp is not None and tcp[1] != udp
            assert media.uris == (f"turn:{PUBLIC}:{udp}?transport=udp",
                                  f"turn:{PUBLIC}:{tcp[1]}?transport=tcp")  # fmt: skip
            assert media.mras_url.startswith("https://")
            answer = await credentials(media.mras_url, "sip:alice@contoso.example", online)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["username"].endswith(":sip:alice@contoso.example")
            assert body["uris"] == list(media.uris) and body["ttl"] == 8 * 3600
            assert int(body["username"].split(":")[0]) > time.time() + 8 * 3600 - 60
            code, reply, permit = await allocate(udp, body["username"], body["password"],
                                                 peer=("127.0.0.7", 9))  # fmt: skip
            assert code == 0
            relayed = decode_xor_address(reply.get(Attr.XOR_RELAYED_ADDRESS) or b"",
                                         reply.transaction_id)  # fmt: skip
            assert relayed[0] == PUBLIC  # the external address is advertised
            # loopback is the appliance's side: refused without AllowInternalPeers
            assert permit is not None and permit.error_code() is not None
            assert permit.error_code()[0] == 403  # type: ignore[index]
            # forged and expired credentials: 401
            assert (await allocate(udp, body["username"], "forged"))[0] == 401
            old = MrasIssuer(site_secret(edge.settings)).issue("bob", time.time() - 9 * 3600)
            assert (await allocate(udp, old.username, old.password))[0] == 401
            counts = media.relay.counters
            assert counts["allocations"] == 1 and counts["integrity_failed"] == 1
            assert counts["credentials_expired"] == 1 and counts["peer_loopback"] >= 1
            assert media.mras_counters["issued"] == 1
            rows = {(r["role"], r["transport"]): r["port"] for r in media.listener_rows()}
            assert rows == {("edge/media-relay", "UDP"): udp, ("edge/media-relay", "TCP"): tcp[1],
                            ("edge/mras", "HTTPS"): media.mras.port}  # fmt: skip
            samples = {
                (x.name, tuple(sorted(x.labels.values()))): x.value
                for family in turn_metrics(media)
                for x in family.samples
            }
            assert samples[("hybridvoice_turn_refused_total", ("credentials_expired",))] == 1
            assert samples[("hybridvoice_turn_refused_total", ("integrity_failed",))] == 1
            assert samples[("hybridvoice_turn_allocations", ())] == 1
            assert samples[("hybridvoice_mras_requests_total", ("issued",))] == 1
        finally:
            await edge.stop()

    asyncio.run(run())


def test_mras_refuses_strangers_and_bad_requests(tmp_path: Path) -> None:
    async def run() -> None:
        edge, tls = edge_role(settings(tmp_path), tmp_path)
        await edge.start()
        try:
            media = edge.media
            assert media is not None
            # the appliance's own site certificate verifies, but it is not the online service's
            appliance = tls.contexts["appliance"].client
            stranger = await credentials(media.mras_url, "sip:a@contoso.example", appliance)
            assert stranger.status_code == 403, stranger.text
            assert "not a certificate for" in stranger.json()["error"]
            bad = await credentials(media.mras_url, "", tls.contexts["online"].client)
            assert bad.status_code == 422 and "user" in bad.json()["error"]
            assert media.mras_counters == {"refused_untrusted": 1, "refused_invalid": 1}
        finally:
            await edge.stop()

    asyncio.run(run())


def test_allow_internal_peers_and_a_shared_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "site.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")

    async def run() -> None:
        s = settings(tmp_path, AllowInternalPeers=True, SecretFile=str(secret), TCPPort=False)
        edge, _ = edge_role(s, tmp_path)
        await edge.start()
        try:
            media = edge.media
            assert media is not None and media.relay.tcp_address is None
            assert len(media.uris) == 1
            issued = MrasIssuer(secret.read_bytes().strip()).issue("carol", time.time())
            code, _, permit = await allocate(media.relay.address[1], issued.username,
                                             issued.password, peer=(HOST, 9))  # fmt: skip
            assert code == 0 and permit is not None and permit.cls == StunClass.SUCCESS
        finally:
            await edge.stop()

    asyncio.run(run())


def test_secret_problems_name_the_setting(tmp_path: Path) -> None:
    missing = settings(tmp_path, SecretFile=str(tmp_path / "nope"))
    with pytest.raises(MediaRelayError, match=r"\[MediaRelay\] SecretFile: cannot read"):
        site_secret(missing)
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(MediaRelayError, match="at least 16"):
        site_secret(settings(tmp_path, SecretFile=str(short)))
    made = site_secret(settings(tmp_path))  # made once in the state directory, then kept
    assert made == site_secret(settings(tmp_path)) and len(made) >= 32
    assert (tmp_path / "mras.secret").stat().st_mode & 0o777 == 0o600


def test_relay_config_follows_the_settings(tmp_path: Path) -> None:
    chosen = {"UserQuota": 3, "AllowInternalPeers": True, "RequestsPerSecond": 5,
              "RequestBurst": 7, "Realm": "lab.example"}  # fmt: skip
    lab = relay_config(settings(tmp_path, **chosen))
    assert (lab.user_quota, lab.requests_per_second, lab.request_burst) == (3, 5.0, 7)
    assert lab.allow_loopback_peers and lab.allow_link_local_peers and lab.allow_own_peers
    assert (lab.realm, lab.external_ip) == ("lab.example", PUBLIC)
    strict = relay_config(settings(tmp_path))
    assert not (strict.allow_loopback_peers or strict.allow_link_local_peers
                or strict.allow_own_peers)  # fmt: skip
    assert strict.realm == "contoso.example" and {HOST, PUBLIC} <= strict.own_addresses
