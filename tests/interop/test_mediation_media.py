"""Media through the mediation role between real SIPp peers on loopback (RFC 3550 §5.1 and
§11, RFC 4566 §5.7 and §5.14, RFC 3264 §5 and §6, RFC 4961; issue 3, "Checked by", media).

SIPp ``uac`` plays the cloud side with its media on 127.0.0.2: after the ACK it plays the 50
G.711 packets of ``pcap/g711_pcmu.pcap`` (172-byte RTP, PT 0, 20 ms apart) to the address
of the answer's SDP (``scenarios/uac_rtp.xml``). SIPp ``uas`` plays the gateway on 127.0.0.1
with ``-rtp_echo``: every packet goes back to its source (``scenarios/uas_rtp.xml``). Both
log the c= and m= lines they receive. tshark captures the media port block on ``lo``; the
relay's own per-call counters and the call record are read from the role (in this process).

- anchored (tenant bypass disabled; or enabled but the client outside the internal subnets):
  the gateway is offered the relay's address and port, never the client's; every packet
  crosses the relay (50 each way on each leg, the relay's counters equal the capture) and
  nothing flows client <-> gateway directly; the record says anchored and why;
- bypass (tenant bypass on, client in the internal subnets, gateway MediaBypass on): the
  gateway is offered the client's address, the relay gets no call and forwards 0 packets,
  the 100 packets flow client <-> gateway; the record says bypass and why;
- transcoding (PCMU-only client, PCMA-only gateway, ``scenarios/uas_pcma_rtp.xml``): the
  gateway is offered PCMA after the client's PCMU, answers PCMA, the client is answered
  PCMU, and the relay rewrites every packet mu-law <-> A-law (PT 0 <-> 8);
- the anchored call's record carries the relay's counters, loss and jitter included, and
  ``B2BUA.recent_media`` keeps them after the relay ports are released;
- inbound (SIPp ``uac`` as the gateway, SIPp ``uas`` with ``-rtp_echo`` as the client on
  127.0.0.2): bypass possible, the gateway's offer reaches the client unchanged and the
  client's answer decides: internal, bypass (0 packets relayed); external, anchored late (the
  gateway is answered the relay, the client re-INVITEd to it,
  ``scenarios/uas_rtp_reinvite.xml``); tenant bypass off, anchored from the start.

Every program runs on 127.0.0.1/127.0.0.2 with free ports, is bounded in time and is stopped
by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import re
import signal
import struct
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from interop_programs import (
    SCENARIOS,
    Program,
    free_port,
    need_binary,
    running,
    sipp_stats,
    wait_bound,
)
from ports import free_port_block
from test_sipp import assert_clean, sipp_common, wait_exit

from hybridvoice.cms.settings import parse_settings
from hybridvoice.media import CallStats, Leg
from hybridvoice.mediation.bypass import BypassPolicy, MediaMode, parse_subnets
from hybridvoice.mediation.records_model import CallRecord
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.relay import RelayCall
from hybridvoice.net.transport import Destination

pytestmark = pytest.mark.interop

PCAP = Path(__file__).parent / "pcap" / "g711_pcmu.pcap"
PACKETS = 50  # in the pcap: one second of G.711
CLIENT = "127.0.0.2"  # the cloud-side client's media address
HOST = "127.0.0.1"  # the role, its relay and the gateway
NUMBER = "+31201234567"
CALL_MS = 1500  # the uac's pause between ACK and BYE: the pcap plays, its echo comes back
TEST_TIMEOUT = 20.0

Flow = tuple[str, int, str, int, int]  # source address, port, destination address, port, PT


# --- the pcap -------------------------------------------------------------------------------


def g711_pcap(packets: int = PACKETS, payload_type: int = 0) -> bytes:
    """A libpcap file (Ethernet) of ``packets`` RTP packets (RFC 3550 §5.1): 12-byte header,
    160 bytes of G.711 silence, 20 ms apart, one SSRC, marker on the first.

    SIPp's ``play_pcap_audio`` keeps the UDP payload and the timing; it sends from the call's
    ``-mi``/``-mp`` to the address of the received SDP, so the addresses here are placeholders.
    """
    silence = 0xFF if payload_type == 0 else 0xD5  # mu-law / A-law zero
    src, dst = ipaddress.ip_address(HOST).packed, ipaddress.ip_address(HOST).packed
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # LINKTYPE_ETHERNET
    for n in range(packets):
        marker = 0x80 if n == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | payload_type, 1000 + n, 160 * n, 0x48560001)
        rtp += bytes([silence]) * 160
        udp = struct.pack("!HHHH", 10000, 20000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0, src, dst)
        frame = bytes(12) + b"\x08\x00" + ip + udp
        usec = 20_000 * n
        out.append(
            struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        )
        out.append(frame)
    return b"".join(out)


def test_the_pcap_fixture_is_the_generated_one() -> None:
    """``pcap/g711_pcmu.pcap`` (what the uac scenario plays) is :func:`g711_pcap`'s output;
    regenerate it with ``PCAP.write_bytes(g711_pcap())``."""
    assert PCAP.read_bytes() == g711_pcap()
    assert len(g711_pcap(1)) == 24 + 16 + 14 + 20 + 8 + 172


# --- ports, capture, logs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaPorts:
    """A block of 16 free UDP ports: the client's media, the gateway's echo (port and
    port + 2), the relay's range (two calls of four ports)."""

    base: int

    @property
    def client(self) -> int:
        return self.base

    @property
    def gateway(self) -> int:
        return self.base + 4

    @property
    def relay(self) -> tuple[int, int]:
        return (self.base + 8, self.base + 15)

    @property
    def last(self) -> int:
        return self.base + 15

    @classmethod
    def free(cls) -> MediaPorts:
        return cls(free_port_block(16, (HOST, CLIENT), align=16))


class Capture:
    """tshark on ``lo`` for the media ports, bounded by ``-a duration``, stopped by PID."""

    def __init__(self, tshark: str, ports: MediaPorts, tmp: Path) -> None:
        self.tshark = tshark
        self.file = tmp / "media.pcapng"
        filter_ = f"udp portrange {ports.base}-{ports.last}"
        args = [tshark, "-i", "lo", "-f", filter_, "-w", str(self.file), "-a", "duration:30"]
        self.program = Program(args, tmp / "tshark.out")

    async def ready(self) -> None:
        for _ in range(200):
            if "Capturing on" in self.program.output():
                return
            if self.program.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"tshark did not start: {self.program.output()[-1000:]}")

    def stop(self) -> None:
        self.program.stop()

    def flows(self) -> Counter[Flow]:
        """RTP packets per (source, destination, payload type) in the stopped capture."""
        fields = ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "rtp.p_type"]
        args = [self.tshark, "-r", str(self.file), "-o", "rtp.heuristic_rtp:TRUE", "-T", "fields"]
        for name in fields:
            args += ["-e", name]
        done = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
        flows: Counter[Flow] = Counter()
        for line in done.stdout.splitlines():
            src, sport, dst, dport, pt = line.split("\t")
            flows[(src, int(sport), dst, int(dport), int(pt) if pt else -1)] += 1
        return flows


def logged_sdp(log: Path, what: str) -> tuple[str, int, str] | None:
    """(address, port, payload types) a scenario logged as ``what c=... m=... pt=...``."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    for line in lines:
        found = re.match(rf"{what} c=(\S+) m=(\d+) pt=(.*)$", line)
        if found is not None:
            return found[1], int(found[2]), found[3].strip()
    return None


# --- the role and one call ------------------------------------------------------------------


def role_settings(gateway: int, ports: MediaPorts, media_bypass: bool) -> dict[str, Any]:
    start, end = ports.relay
    return {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Interop"},
        "MediationServer": {
            "IP": HOST, "TCPPort": 0, "TLSPort": 0, "UDPPort": 0,
            "MediaPortStart": start, "MediaPortEnd": end, "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "TrunkConfiguration": {"OptionsIntervalSeconds": 60},
        "Gateway1": {
            "IP": HOST, "Port": gateway, "Protocol": "UDP", "VoiceRoutes": "All",
            "SendSipOptions": False, "MediaBypass": media_bypass,
        },
    }  # fmt: skip


@contextlib.asynccontextmanager
async def mediation(
    tmp: Path, gateway: int, ports: MediaPorts, bypass: BypassPolicy | None, media_bypass: bool,
    edge_target: int | None = None,
) -> AsyncIterator[MediationRole]:  # fmt: skip
    """The role in this process with its relay on ``ports.relay`` and call records."""
    target = Destination("UDP", HOST, edge_target or free_port())
    options = RoleOptions(
        edge=Destination("UDP", HOST, 0), edge_target=target,
        relay=True, bypass=bypass, records=tmp / "calls.db", seed=random.randrange(1 << 30),
    )  # fmt: skip
    role = MediationRole(parse_settings(role_settings(gateway, ports, media_bypass)), options)
    await role.start()
    try:
        yield role
    finally:
        await role.stop()


@dataclass(slots=True)
class Outcome:
    """What one call with media left behind."""

    uac_exit: int
    uac_stats: dict[str, str]
    gateway_stats: dict[str, str]
    offer: tuple[str, int, str] | None  # the gateway's offer (c=, m= port, payload types)
    answer: tuple[str, int, str] | None  # the client's answer, the same way
    relayed: list[RelayCall]  # every relay call the role created during the call
    relay_packets: int  # the relay engine's total, live and released calls
    flows: Counter[Flow]
    record: CallRecord
    recent: CallStats | None  # b2bua.recent_media(call) after the call


@dataclass(frozen=True, slots=True)
class SippSide:
    """One SIPp of a call: its file prefix, scenario, media address and SIP port."""

    name: str
    scenario: str
    media_ip: str
    media_port: int
    sip_port: int


async def drive_call(
    role: MediationRole,
    tmp: Path,
    ports: MediaPorts,
    *,
    callee: SippSide,
    caller: SippSide,
    target: int,
) -> Outcome:
    """One call with RTP through ``role``: ``callee`` (a uas echoing RTP) is started first,
    then ``caller`` (a uac playing the pcap) calls the role's ``target`` port; the capture,
    the relay, the record and both SIPp logs are collected. ``offer`` is what the callee
    was offered, ``answer`` what the caller was answered."""
    sipp = need_binary("sipp", "sip-tester")
    capture = Capture(need_binary("tshark", "tshark"), ports, tmp)
    try:
        await capture.ready()
        callee_args = [
            sipp, "-sf", str(SCENARIOS / callee.scenario), "-rtp_echo",
            "-mi", callee.media_ip, "-mp", str(callee.media_port),
            "-trace_logs", "-log_file", str(tmp / f"{callee.name}_log.txt"),
            *sipp_common(callee.sip_port, tmp, callee.name),
        ]  # fmt: skip
        with running(callee_args, tmp / f"{callee.name}.out") as callee_proc:
            await wait_bound(callee_proc, callee.sip_port)
            caller_args = [
                sipp, f"{HOST}:{target}", "-sf", str(SCENARIOS / caller.scenario),
                "-s", NUMBER, "-m", "1", "-d", str(CALL_MS),
                "-mi", caller.media_ip, "-mp", str(caller.media_port),
                "-trace_logs", "-log_file", str(tmp / f"{caller.name}_log.txt"),
                *sipp_common(caller.sip_port, tmp, caller.name),
            ]  # fmt: skip
            with running(caller_args, tmp / f"{caller.name}.out") as caller_proc:
                relayed = await watch_relay(role, caller_proc)
            await settle(role)
            await stop_uas(callee_proc)
    finally:
        capture.stop()
    assert role.relay is not None and role.records is not None
    relay_packets = role.relay.stats().packets
    await role.records.aflush()
    (record,) = role.records.recent(2)
    return Outcome(
        uac_exit=caller_proc.returncode if caller_proc.returncode is not None else -1,
        uac_stats=sipp_stats(tmp / f"{caller.name}.csv"),
        gateway_stats=sipp_stats(tmp / f"{callee.name}.csv"),
        offer=logged_sdp(tmp / f"{callee.name}_log.txt", "offer"),
        answer=logged_sdp(tmp / f"{caller.name}_log.txt", "answer"),
        relayed=relayed,
        relay_packets=relay_packets,
        flows=capture.flows(),
        record=record,
        recent=role.b2bua.recent_media(record.a_call_id),
    )


async def one_call(
    tmp: Path,
    ports: MediaPorts,
    *,
    bypass: BypassPolicy | None,
    media_bypass: bool = False,
    gateway_scenario: str = "uas_rtp.xml",
) -> Outcome:
    need_binary("sipp", "sip-tester")  # skip (or fail in CI) before starting the role
    need_binary("tshark", "tshark")
    gateway = free_port()
    async with mediation(tmp, gateway, ports, bypass, media_bypass) as role:
        return await drive_call(
            role,
            tmp,
            ports,
            callee=SippSide("gw", gateway_scenario, HOST, ports.gateway, gateway),
            caller=SippSide("uac", "uac_rtp.xml", CLIENT, ports.client, free_port()),
            target=edge_port(role),
        )


async def watch_relay(role: MediationRole, uac: Program) -> list[RelayCall]:
    """Wait for the uac to finish, keeping every relay call seen meanwhile.

    The role releases a call's relay when the call ends; this adapter keeps the
    :class:`RelayCall` objects to compare their ports and counters with the capture.
    """
    assert role.relay is not None
    seen: dict[str, RelayCall] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10  # the call lasts CALL_MS
    while uac.returncode is None:
        seen.update(role.relay.calls)
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    await wait_exit(uac, 1)
    return list(seen.values())


def edge_port(role: MediationRole) -> int:
    assert role.edge_transport is not None
    return role.edge_transport.local[1]


async def settle(role: MediationRole) -> None:
    """Wait until the role has no bridged call (the BYE went through)."""
    for _ in range(250):
        if not role.b2bua.bridges:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(role.b2bua.bridges)} calls still bridged")


async def stop_uas(program: Program) -> None:
    """SIGUSR1: SIPp finishes its calls and exits; then its stat file is complete."""
    if program.returncode is None:
        program.process.send_signal(signal.SIGUSR1)
        await wait_exit(program, 10)


def assert_call_clean(outcome: Outcome) -> None:
    assert_clean(outcome.uac_stats, 1, "uac")
    assert_clean(outcome.gateway_stats, 1, "gateway")
    assert outcome.uac_exit == 0


# --- the checks -----------------------------------------------------------------------------

ANCHORED_CASES = {
    "tenant-bypass-disabled": (None, "bypass disabled in tenant network configuration"),
    "client-outside-internal-subnets": (
        BypassPolicy(enabled=True, internal_subnets=parse_subnets(["10.0.0.0/8"])),
        f"client {CLIENT} is not in the site's internal subnets",
    ),
}


@pytest.mark.parametrize("case", ANCHORED_CASES)
def test_anchored_all_rtp_flows_through_the_relay(tmp_path: Path, case: str) -> None:
    bypass, reason = ANCHORED_CASES[case]
    ports = MediaPorts.free()
    outcome = asyncio_run(one_call(tmp_path, ports, bypass=bypass, media_bypass=True))
    assert_call_clean(outcome)

    (relayed,) = outcome.relayed
    _, a_rtp, _ = relayed.local(Leg.A)  # toward the client
    _, b_rtp, _ = relayed.local(Leg.B)  # toward the gateway
    # the relay, not the client's 127.0.0.2; PCMA added after the client's PCMU
    assert outcome.offer == (HOST, b_rtp, "0 8")
    assert outcome.answer == (HOST, a_rtp, "0")  # the relay, not the gateway's port

    stats = relayed.stats()
    assert (stats.a.packets, stats.b.packets) == (PACKETS, PACKETS)
    assert (stats.a.bytes, stats.b.bytes) == (PACKETS * 172, PACKETS * 172)
    assert (stats.a.dropped, stats.b.dropped, stats.a.lost, stats.b.lost) == (0, 0, 0, 0)
    assert stats.a.remote == (CLIENT, ports.client)
    assert stats.b.remote == (HOST, ports.gateway)
    assert outcome.relay_packets == 2 * PACKETS
    assert outcome.flows == {
        (CLIENT, ports.client, HOST, a_rtp, 0): PACKETS,  # the pcap, as SIPp sent it
        (HOST, b_rtp, HOST, ports.gateway, 0): PACKETS,  # relayed to the gateway
        (HOST, ports.gateway, HOST, b_rtp, 0): PACKETS,  # the gateway's echo
        (HOST, a_rtp, CLIENT, ports.client, 0): PACKETS,  # relayed back to the client
    }

    record = outcome.record
    assert record.media_mode is MediaMode.ANCHORED
    assert record.media_reason == reason
    assert record.gateway == "Gateway1" and record.answer_utc is not None


def test_anchored_call_record_carries_the_relay_counters(tmp_path: Path) -> None:
    outcome = asyncio_run(one_call(tmp_path, MediaPorts.free(), bypass=None))
    assert_call_clean(outcome)
    record = outcome.record
    assert record.media_mode is MediaMode.ANCHORED
    for media in (record.a_media, record.b_media):  # 50 in and 50 out on each leg
        assert media is not None, "no media counters in the call record"
        assert (media.packets_received, media.packets_sent) == (PACKETS, PACKETS)
        assert (media.bytes_received, media.bytes_sent) == (PACKETS * 172, PACKETS * 172)
        assert media.packets_lost == 0
    # the same counters stay readable from the B2BUA after the relay ports are released,
    # loss and jitter (RFC 3550 A.3, A.8) from the relay's sequence statistics
    (relayed,) = outcome.relayed
    assert outcome.recent == relayed.stats()
    assert record.a_media is not None and record.b_media is not None
    assert record.a_media.jitter_ms == outcome.recent.a.jitter_ms
    assert record.b_media.jitter_ms == outcome.recent.b.jitter_ms
    assert outcome.recent.a.expected == outcome.recent.b.expected == PACKETS


def test_bypass_media_flows_client_to_gateway_directly(tmp_path: Path) -> None:
    internal = BypassPolicy(enabled=True, internal_subnets=parse_subnets(["127.0.0.0/8"]))
    ports = MediaPorts.free()
    outcome = asyncio_run(one_call(tmp_path, ports, bypass=internal, media_bypass=True))
    assert_call_clean(outcome)

    assert outcome.offer == (CLIENT, ports.client, "0")  # the client's own address
    assert outcome.answer == (HOST, ports.gateway, "0")  # the gateway's own address
    assert outcome.relayed == []
    assert outcome.relay_packets == 0
    assert outcome.flows == {
        (CLIENT, ports.client, HOST, ports.gateway, 0): PACKETS,
        (HOST, ports.gateway, CLIENT, ports.client, 0): PACKETS,
    }

    record = outcome.record
    assert record.media_mode is MediaMode.BYPASS
    assert record.media_reason == f"bypass: internal client {CLIENT} in 127.0.0.0/8"


def test_pcmu_client_pcma_gateway_transcodes_through_the_relay(tmp_path: Path) -> None:
    ports = MediaPorts.free()
    outcome = asyncio_run(
        one_call(tmp_path, ports, bypass=None, gateway_scenario="uas_pcma_rtp.xml")
    )
    assert outcome.offer is not None and "8" in outcome.offer[2].split(), outcome.offer
    assert_call_clean(outcome)

    (relayed,) = outcome.relayed
    _, a_rtp, _ = relayed.local(Leg.A)
    _, b_rtp, _ = relayed.local(Leg.B)
    assert outcome.answer == (HOST, a_rtp, "0")  # the client keeps PCMU
    stats = relayed.stats()
    assert stats.mode == "transcode"
    assert (stats.a.packets, stats.b.packets) == (PACKETS, PACKETS)
    assert outcome.flows == {
        (CLIENT, ports.client, HOST, a_rtp, 0): PACKETS,
        (HOST, b_rtp, HOST, ports.gateway, 8): PACKETS,  # PT rewritten, payload A-law
        (HOST, ports.gateway, HOST, b_rtp, 8): PACKETS,
        (HOST, a_rtp, CLIENT, ports.client, 0): PACKETS,  # and back to mu-law
    }
    assert outcome.record.media_mode is MediaMode.ANCHORED
    assert outcome.record.media_reason == (
        "bypass disabled in tenant network configuration; transcoding PCMU <-> PCMA"
    )


# --- inbound: SIPp uac as the gateway, SIPp uas as the client -------------------------------


async def one_inbound_call(
    tmp: Path, ports: MediaPorts, *, bypass: BypassPolicy | None, media_bypass: bool,
    client_scenario: str = "uas_rtp.xml",
) -> Outcome:  # fmt: skip
    """The gateway (uac, media on 127.0.0.1) calls a client (uas with ``-rtp_echo``, media
    on 127.0.0.2) through the role. ``offer`` is what the client was offered, ``answer``
    what the gateway was answered."""
    need_binary("sipp", "sip-tester")
    need_binary("tshark", "tshark")
    client_sip = free_port()
    async with mediation(tmp, free_port(), ports, bypass, media_bypass, client_sip) as role:
        return await drive_call(
            role,
            tmp,
            ports,
            callee=SippSide("client", client_scenario, CLIENT, ports.client, client_sip),
            caller=SippSide("gw", "uac_rtp.xml", HOST, ports.gateway, free_port()),
            target=gateway_port(role),
        )


def gateway_port(role: MediationRole) -> int:
    return role.gateway_transports["UDP"].local[1]


def test_inbound_internal_client_bypasses_on_its_answer(tmp_path: Path) -> None:
    """Tenant bypass on, gateway MediaBypass on: the gateway's offer reaches the client
    unchanged, the client's answer (127.0.0.2, internal) decides bypass, the relay call held
    ready is released without a packet and media flows gateway <-> client."""
    internal = BypassPolicy(enabled=True, internal_subnets=parse_subnets(["127.0.0.0/8"]))
    ports = MediaPorts.free()
    outcome = asyncio_run(one_inbound_call(tmp_path, ports, bypass=internal, media_bypass=True))
    assert_call_clean(outcome)

    assert outcome.offer == (HOST, ports.gateway, "0")  # the gateway's own offer
    assert outcome.answer == (CLIENT, ports.client, "0")  # the client's own answer
    assert outcome.relay_packets == 0
    assert outcome.flows == {
        (HOST, ports.gateway, CLIENT, ports.client, 0): PACKETS,
        (CLIENT, ports.client, HOST, ports.gateway, 0): PACKETS,
    }
    record = outcome.record
    assert record.media_mode is MediaMode.BYPASS
    assert record.media_reason == f"bypass: internal client {CLIENT} in 127.0.0.0/8"


def test_inbound_with_bypass_off_is_anchored_from_the_start(tmp_path: Path) -> None:
    ports = MediaPorts.free()
    outcome = asyncio_run(one_inbound_call(tmp_path, ports, bypass=None, media_bypass=True))
    assert_call_clean(outcome)

    (relayed,) = outcome.relayed
    _, a_rtp, _ = relayed.local(Leg.A)  # toward the client
    _, b_rtp, _ = relayed.local(Leg.B)  # toward the gateway
    assert outcome.offer == (HOST, a_rtp, "0 8")
    assert outcome.answer == (HOST, b_rtp, "0")
    assert outcome.flows == {
        (HOST, ports.gateway, HOST, b_rtp, 0): PACKETS,
        (HOST, a_rtp, CLIENT, ports.client, 0): PACKETS,
        (CLIENT, ports.client, HOST, a_rtp, 0): PACKETS,
        (HOST, b_rtp, HOST, ports.gateway, 0): PACKETS,
    }
    assert outcome.record.media_mode is MediaMode.ANCHORED
    assert outcome.record.media_reason == "bypass disabled in tenant network configuration"
    assert outcome.recent is not None and outcome.recent.b.packets == PACKETS


def test_inbound_external_client_is_anchored_on_its_answer(tmp_path: Path) -> None:
    """Tenant bypass on, gateway MediaBypass on, but the client (127.0.0.2) is outside the
    internal subnets: the client first gets the gateway's own offer; its answer anchors the
    call, the gateway is answered the relay's address and the client gets a re-INVITE to the
    relay (``scenarios/uas_rtp_reinvite.xml``). All RTP crosses the relay."""
    outside = BypassPolicy(enabled=True, internal_subnets=parse_subnets(["10.0.0.0/8"]))
    ports = MediaPorts.free()
    scenario = "uas_rtp_reinvite.xml"
    call = one_inbound_call(
        tmp_path, ports, bypass=outside, media_bypass=True, client_scenario=scenario
    )
    outcome = asyncio_run(call)
    assert_call_clean(outcome)

    (relayed,) = outcome.relayed
    _, a_rtp, _ = relayed.local(Leg.A)
    _, b_rtp, _ = relayed.local(Leg.B)
    assert outcome.offer == (HOST, ports.gateway, "0")  # first the gateway's own offer
    assert logged_sdp(tmp_path / "client_log.txt", "reoffer") == (HOST, a_rtp, "0 8")
    assert outcome.answer == (HOST, b_rtp, "0")  # the gateway never sees the client
    assert outcome.flows == {
        (HOST, ports.gateway, HOST, b_rtp, 0): PACKETS,
        (HOST, a_rtp, CLIENT, ports.client, 0): PACKETS,
        (CLIENT, ports.client, HOST, a_rtp, 0): PACKETS,
        (HOST, b_rtp, HOST, ports.gateway, 0): PACKETS,
    }
    record = outcome.record
    assert record.media_mode is MediaMode.ANCHORED
    assert record.media_reason == f"client {CLIENT} is not in the site's internal subnets"


def asyncio_run(main: Any) -> Outcome:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        result: Outcome = runner.run(asyncio.wait_for(main, TEST_TIMEOUT))
    return result
