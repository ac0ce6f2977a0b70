"""An "internet" client in a network namespace of the test's own calls a SIPp gateway through
``hybridvoice up``'s chain (:class:`hybridvoice.app.Lab`): online proxy -> edge -> mediation ->
gateway, with the media anchored at the edge's relay and then at the mediation relay.

The namespace hangs off a veth pair on a /30 of 10.254.0.0/16 the test creates: the host side
(``.1``) carries the online service's SIP listener and the edge's media relay
(``[EdgeServer] ExternalMRIPs``); the client (``.2``) is outside ``[MediationServer]
InternalSubnets`` (127.0.0.0/8), so the edge anchors its media (``docs/edge-media.md``).
SIPp plays 50 G.711 packets; the gateway (SIPp ``-rtp_echo`` on loopback) sends them back;
both relays count 100. The other way, bob registers from the namespace and a SIPp gateway
calls his number: anchored at the edge too (a call toward a user), 100 more at both relays.
Then coturn's ``turnutils_uclient`` in the namespace allocates through the edge relay
with credentials the online service fetched from the edge's MRAS, relays to a
``turnutils_peer`` in the namespace, and expired and forged credentials are refused.

Skipped (with the reason) where namespaces cannot be made (no CAP_NET_ADMIN). Every program
is stopped by its PID; the namespace is deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chain_harness import DOMAIN
from interop_programs import (
    SCENARIOS,
    Program,
    free_port,
    need_binary,
    run_logged,
    running,
    wait_bound,
)
from ports import free_port_block
from test_chain_sipp import chain_settings, gateway, settle
from test_mediation_sipp import stop_uas
from test_sipp import sipp_common, wait_exit

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, LAB_USERS, Lab
from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.edge.anchor import sdp_media
from hybridvoice.media.mras import MrasIssuer
from hybridvoice.mgmt.metrics_turn import turn_metrics
from hybridvoice.net.transport import Transport
from hybridvoice.sip.message import Request, Response

pytestmark = pytest.mark.interop

PACKETS = 50  # in pcap/g711_pcmu.pcap
CALL_MS = 2000
BOB_NUMBER = dict(LAB_USERS)["bob"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def namespace() -> Iterator[tuple[str, str, str]]:
    """A namespace and a veth pair on a /30 of 10.254.0.0/16 picked by this process's PID (test
    processes side by side, pytest-xdist workers, get their own): (namespace, host side,
    client side)."""
    if need_binary("ip", "iproute2") is None:  # pragma: no cover - need_binary skips
        pytest.skip("no ip command")
    n = os.getpid() % 16384
    ns, host_if, ns_if = f"hvedge{n}", f"hve{n}h", f"hve{n}c"
    net = f"10.254.{n >> 6}"
    host_ip, ns_ip = f"{net}.{(n & 63) * 4 + 1}", f"{net}.{(n & 63) * 4 + 2}"
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "del", ns)  # left over from a killed run
    try:
        _ip("netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create a network namespace (needs CAP_NET_ADMIN): {exc}")
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, host_ip, ns_ip
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_if)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", ns)


def edge_settings(host_ip: str, ns_ip: str, gw_port: int, tmp: Path) -> Settings:
    raw = settings_raw(chain_settings(gateway(1, gw_port), keep_lab_gateway=False))
    first = free_port_block(61)
    raw["Online"].update(SIPAddresses=host_ip, TrustedPeers=f"{ns_ip}/32")
    raw["MediationServer"]["InternalSubnets"] = "127.0.0.0/8"
    raw["EdgeServer"].update(ExternalMRIPs=host_ip, ExternalMRPortRange=f"{first}-{first + 60}")
    secret = tmp / "mras.secret"
    secret.write_text("netns-interop-site-secret-0123456789\n")
    raw["MediaRelay"] = {"UDPPort": free_port(), "TCPPort": free_port(),
                         "MRASPort": free_port(), "SecretFile": str(secret)}  # fmt: skip
    return parse_settings(raw)


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def _client_args(
    sipp: str, ns: str, ns_ip: str, target: str, tmp: Path, name: str = "client",
    scenario: str = "edge_uac_rtp.xml",
) -> list[str]:  # fmt: skip
    common = sipp_common(free_port(), tmp, name)
    common[common.index("-i") + 1] = ns_ip
    return in_ns(ns, sipp, target, "-sf", str(SCENARIOS / scenario),
                 "-s", LAB_PSTN_NUMBER, "-key", "user", "alice", "-key", "domain", DOMAIN,
                 "-m", "1", "-d", str(CALL_MS), "-mi", ns_ip, "-mp", str(free_port()),
                 "-trace_logs", "-log_file", str(tmp / f"{name}_log.txt"), *common)  # fmt: skip


async def _uclient(ns: str, args: list[str], log: Path) -> tuple[int, str]:
    return await run_logged(in_ns(ns, need_binary("turnutils_uclient", "coturn"), *args), log)


def test_internet_client_media_through_edge_and_mediation_and_turn_with_mras(
    tmp_path: Path,
) -> None:
    sipp = need_binary("sipp", "sip-tester")
    need_binary("turnutils_uclient", "coturn")
    with namespace() as (ns, host_ip, ns_ip):
        gw_port = free_port()
        settings = edge_settings(host_ip, ns_ip, gw_port, tmp_path)

        async def main() -> None:
            up = Lab(settings, tmp_path / "lab", lab_gateway=False)
            await up.start()
            try:
                await call_through_the_edge(up)
                await call_toward_the_user(up)
                await late_offer_through_the_edge(up)
                await turn_through_the_edge(up)
            finally:
                await up.stop()

        async def call_through_the_edge(up: Lab) -> None:
            assert up.appliance is not None and up.appliance.edge is not None
            media = up.appliance.edge.media
            mediation = up.appliance.mediation
            assert media is not None and media.anchoring is not None and mediation is not None
            gw_args = [sipp, "-sf", str(SCENARIOS / "uas_rtp.xml"), "-rtp_echo",
                       "-mi", "127.0.0.1", "-mp", str(free_port()),
                       *sipp_common(gw_port, tmp_path, "gw")]  # fmt: skip
            with running(gw_args, tmp_path / "gw.out") as gw:
                await wait_bound(gw, gw_port)
                target = f"{host_ip}:{settings.online.sip_port}"
                args = _client_args(sipp, ns, ns_ip, target, tmp_path)
                with running(args, tmp_path / "client.out") as client:
                    code = await wait_exit(client, 60)
                await settle(mediation)
                await stop_uas(gw)
            log = (tmp_path / "client_log.txt").read_text(errors="replace")
            assert code == 0, client.output()[-3000:] + log[-2000:]
            assert f"answer c={host_ip} " in log  # the client is answered the edge's relay
            anchoring = media.anchoring
            assert anchoring.counters.from_external == 1 and anchoring.counters.released == 1
            assert anchoring.counters.rewritten >= 2  # the offer and the answer
            edge_packets = anchoring.engine.stats().packets
            assert mediation.relay is not None
            mediation_packets = mediation.relay.stats().packets
            # client -> edge -> mediation -> gateway and the echo back: both relays carry all
            counts = (edge_packets, mediation_packets)
            assert counts == (2 * PACKETS, 2 * PACKETS), counts
            scraped = {
                (x.name, tuple(x.labels.values())): x.value
                for family in turn_metrics(media)
                for x in family.samples
            }
            assert scraped[("hybridvoice_edge_relay_packets_total", ())] == 2 * PACKETS
            assert scraped[("hybridvoice_edge_anchored_calls_total", ("external",))] == 1
            # SIPp offers no ICE: no checks, and no STUN on the relay ports
            assert scraped[("hybridvoice_edge_ice_checks_total", ("answered",))] == 0
            assert scraped[("hybridvoice_edge_relay_stun_dropped_total", ())] == 0
            assert scraped[("hybridvoice_edge_anchor_idle_released_total", ())] == 0

        async def call_toward_the_user(up: Lab) -> None:
            """A PSTN call to bob, registered from the namespace: gateway -> mediation ->
            edge (anchored: toward a user) -> online -> bob, RTP echoed by bob."""
            assert up.appliance is not None and up.appliance.edge is not None
            media = up.appliance.edge.media
            mediation = up.appliance.mediation
            assert media is not None and media.anchoring is not None and mediation is not None
            assert mediation.relay is not None
            before = (media.anchoring.engine.stats().packets, mediation.relay.stats().packets)
            bob_port = free_port()
            target = f"{host_ip}:{settings.online.sip_port}"
            common = sipp_common(bob_port, tmp_path, "bob_reg")
            common[common.index("-i") + 1] = ns_ip
            register = in_ns(ns, sipp, target, "-sf", str(SCENARIOS / "chain_register.xml"),
                             "-key", "user", "bob", "-key", "domain", DOMAIN, "-au", "bob",
                             "-ap", LAB_PASSWORD, "-auth_uri", DOMAIN, "-m", "1",
                             *common)  # fmt: skip
            with running(register, tmp_path / "bob_reg.out") as reg:
                assert await wait_exit(reg, 30) == 0, reg.output()[-2000:]
            common = sipp_common(bob_port, tmp_path, "bob")
            common[common.index("-i") + 1] = ns_ip
            bob_args = in_ns(ns, sipp, "-sf", str(SCENARIOS / "chain_uas.xml"), "-rtp_echo",
                             "-mi", ns_ip, "-mp", str(free_port()), *common)  # fmt: skip
            with running(bob_args, tmp_path / "bob.out") as bob:
                await wait_bound(bob, bob_port)
                side = settings.mediation_server.udp_port
                pstn = [sipp, f"127.0.0.1:{side}", "-sf", str(SCENARIOS / "uac_rtp.xml"),
                        "-s", BOB_NUMBER, "-m", "1", "-d", str(CALL_MS),
                        "-mi", "127.0.0.1", "-mp", str(free_port()),
                        *sipp_common(gw_port, tmp_path, "pstn")]  # fmt: skip
                with running(pstn, tmp_path / "pstn.out") as caller:
                    code = await wait_exit(caller, 60)
                await settle(mediation)
                await stop_uas(bob)
            assert code == 0, caller.output()[-3000:]
            assert media.anchoring.counters.from_internal == 1
            assert media.anchoring.counters.released == 2
            after = (media.anchoring.engine.stats().packets, mediation.relay.stats().packets)
            counts = (after[0] - before[0], after[1] - before[1])
            assert counts == (2 * PACKETS, 2 * PACKETS), counts

        async def late_offer_through_the_edge(up: Lab) -> None:
            """The client's INVITE has no SDP: the offer comes back in the 200, the answer
            goes in the ACK (RFC 3261 §13.2.1); both are rewritten at the edge and the media
            crosses both relays."""
            assert up.appliance is not None and up.appliance.edge is not None
            media = up.appliance.edge.media
            mediation = up.appliance.mediation
            assert media is not None and media.anchoring is not None and mediation is not None
            assert mediation.relay is not None
            anchoring = media.anchoring
            before = (anchoring.engine.stats().packets, mediation.relay.stats().packets)
            rewritten = anchoring.counters.rewritten
            proxy = up.appliance.edge.proxy
            assert proxy is not None and proxy.forward_hook is not None
            hook, acks = proxy.forward_hook, []

            def recording(message: Request | Response, out: Transport | None) -> None:
                hook(message, out)
                if isinstance(message, Request) and message.method == "ACK" and message.body:
                    acks.append(message.body)  # as it leaves the edge

            proxy.forward_hook = recording
            gw_args = [sipp, "-sf", str(SCENARIOS / "uas_rtp.xml"), "-rtp_echo",
                       "-mi", "127.0.0.1", "-mp", str(free_port()),
                       *sipp_common(gw_port, tmp_path, "gw_late")]  # fmt: skip
            with running(gw_args, tmp_path / "gw_late.out") as gw:
                await wait_bound(gw, gw_port)
                target = f"{host_ip}:{settings.online.sip_port}"
                args = _client_args(sipp, ns, ns_ip, target, tmp_path, "late",
                                    "edge_uac_late_rtp.xml")  # fmt: skip
                with running(args, tmp_path / "late.out") as client:
                    code = await wait_exit(client, 60)
                await settle(mediation)
                await stop_uas(gw)
            log = (tmp_path / "late_log.txt").read_text(errors="replace")
            assert code == 0, client.output()[-3000:] + log[-2000:]
            assert f"offer c={host_ip} " in log  # the offer in the 200 names the edge
            proxy.forward_hook = hook
            # the answer in the ACK names the edge's relay toward mediation, not the client
            told = [sdp_media(body) for body in acks]
            assert [x.address if x else None for x in told] == [host_ip], acks
            assert anchoring.counters.rewritten - rewritten == 2  # the 200 and the ACK
            assert anchoring.counters.from_external == 2 and anchoring.counters.released == 3
            after = (anchoring.engine.stats().packets, mediation.relay.stats().packets)
            counts = (after[0] - before[0], after[1] - before[1])
            assert counts == (2 * PACKETS, 2 * PACKETS), counts

        async def turn_through_the_edge(up: Lab) -> None:
            assert up.appliance is not None and up.appliance.edge is not None
            media = up.appliance.edge.media
            assert media is not None
            for _ in range(200):  # the appliance registers its MRAS with the online service
                assert up.online is not None
                found = up.online.store.get_appliance(up.appliance.name)
                if found is not None and found.mras_url:
                    break
                await asyncio.sleep(0.05)
            url = f"{settings.online.service_url}/v1/users/sip:alice@{DOMAIN}/turn-credentials"
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(url, headers={"Authorization": f"Bearer {up.admin_token}"})
            assert answer.status_code == 200, answer.text
            creds = answer.json()
            port = media.relay.address[1]
            assert creds["uris"][0] == f"turn:{host_ip}:{port}?transport=udp"
            peer_port = free_port()
            peer = Program(in_ns(ns, need_binary("turnutils_peer", "coturn"), "-L", ns_ip,
                                 "-p", str(peer_port)), tmp_path / "peer.out")  # fmt: skip
            try:
                base = ["-e", ns_ip, "-r", str(peer_port), "-p", str(port), "-L", ns_ip,
                        "-m", "2", "-n", "20", "-l", "120", "-z", "10"]  # fmt: skip
                rc, out = await _uclient(
                    ns,
                    [*base, "-u", creds["username"], "-w", creds["password"], host_ip],
                    tmp_path / "uclient.log",
                )
                assert rc == 0, out[-3000:]
                assert "tot_send_msgs=40, tot_recv_msgs=40" in out, out[-3000:]
                rc, out = await _uclient(
                    ns,
                    [*base, "-u", creds["username"], "-w", "forged", host_ip],
                    tmp_path / "forged.log",
                )
                assert rc != 0 and "tot_recv_msgs=40" not in out
                secret = Path(settings.media_relay.secret_file or "").read_text().strip()
                old = MrasIssuer(secret.encode(), ttl=60).issue("alice", time.time() - 3600)
                rc, out = await _uclient(
                    ns,
                    [*base, "-u", old.username, "-w", old.password, host_ip],
                    tmp_path / "expired.log",
                )
                assert rc != 0 and "tot_recv_msgs=40" not in out
            finally:
                peer.stop()
            counts = media.relay.counters
            assert counts["to_peer"] == counts["from_peer"] == 40
            assert counts["integrity_failed"] >= 1 and counts["credentials_expired"] >= 1

        asyncio.run(main())
