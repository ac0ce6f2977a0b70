"""The mediation role between real SIPp peers on loopback (RFC 3261 §13, §9, §11; RFC 3326;
RFC 7092 §3.1): SIPp ``uas`` plays the gateway, SIPp ``uac`` (the transactional scenario)
the cloud side, and the other way round for inbound calls.

- outbound and inbound, 1,000 calls each: 0 failed calls on both SIPp sides;
- a SIPp gateway answering 486: the cloud side gets the 486;
- two SIPp gateways, one killed during the run: with a short OPTIONS interval it is marked
  down, and every call (the ones in flight fail over) succeeds on the other;
- at the capacity limit the next INVITE gets 503 with Retry-After.

Every SIPp has ``-buff_size 4194304`` and ``-timeout``, runs on 127.0.0.1 with free ports and
is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import AsyncIterator
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
from test_sipp import SIPP_TIMEOUT, assert_clean, sipp_common, wait_exit

from hybridvoice.cms.settings import parse_settings
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.mediation.trunks import Health
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Destination
from hybridvoice.sip import Headers, Request, Response, parse_uri
from hybridvoice.sip.headers import CSeq
from hybridvoice.sip.transaction import ClientTransaction

# SIPp load runs (hundreds of calls a second): alone, after the other tests (scripts/test.sh)
pytestmark = [pytest.mark.interop, pytest.mark.load, pytest.mark.xdist_group("sipp-load")]

CALLS = 1000
RATE = 250
NUMBER = "+31201234567"
#: an OPTIONS ping's answer and a gateway's 18x may take this long on a loaded machine before
#: the gateway counts as missing (never a sub-second protocol timer a slow machine can trip)
OPTIONS_TIMEOUT = 2.0
FAILOVER_TIME = 3.0
#: how long a killed gateway may take to be marked down: two missed pings, generously
DETECTION = 4 * OPTIONS_TIMEOUT + 10


def settings(gateway_ports: list[int], options: bool, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Interop", **extra},
        "MediationServer": {
            "IP": "127.0.0.1",
            "TCPPort": 0,
            "TLSPort": 0,
            "UDPPort": 0,
            "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        # pings often, but each waits OPTIONS_TIMEOUT for its answer: a live SIPp gateway
        # slowed down by a loaded machine is not marked down
        "TrunkConfiguration": {
            "OptionsIntervalSeconds": 0.2, "OptionsTimeoutSeconds": OPTIONS_TIMEOUT,
            "UnhealthyAfterMissed": 2,
        },
    }  # fmt: skip
    for n, port in enumerate(gateway_ports, 1):
        raw[f"Gateway{n}"] = {
            "IP": "127.0.0.1", "Port": port, "Protocol": "UDP", "VoiceRoutes": "All",
            "FailoverTimeSeconds": FAILOVER_TIME, "SendSipOptions": options,
        }  # fmt: skip
    return raw


@contextlib.asynccontextmanager
async def mediation(
    gateway_ports: list[int], edge_target: int, *, options: bool = False, **extra: Any
) -> AsyncIterator[MediationRole]:
    """The role in this process; OPTIONS pings only when asked (SIPp counts each one as an
    out-of-call message)."""
    role_options = RoleOptions(
        edge=Destination("UDP", "127.0.0.1", 0),
        edge_target=Destination("UDP", "127.0.0.1", edge_target),
        relay=False, seed=random.randrange(1 << 30),
    )  # fmt: skip
    role = MediationRole(parse_settings(settings(gateway_ports, options, **extra)), role_options)
    await role.start()
    try:
        yield role
    finally:
        await role.stop()


def edge_port(role: MediationRole) -> int:
    assert role.edge_transport is not None
    return role.edge_transport.local[1]


def gateway_port(role: MediationRole) -> int:
    return role.gateway_transports["UDP"].local[1]


def uas_args(sipp: str, port: int, tmp: Path, name: str, scenario: Path | None = None) -> list[str]:
    how = ["-sf", str(scenario)] if scenario else ["-sn", "uas"]
    return [sipp, *how, "-aa", *sipp_common(port, tmp, name)]


def uac_args(
    sipp: str, target: int, tmp: Path, name: str, calls: int, rate: int, *more: str
) -> list[str]:
    return [
        sipp, f"127.0.0.1:{target}", "-sf", str(SCENARIOS / "uac_txn.xml"), "-s", NUMBER,
        "-m", str(calls), "-r", str(rate), *more, *sipp_common(free_port(), tmp, name),
    ]  # fmt: skip


async def stop_uas(program: Program) -> None:
    """SIGUSR1: SIPp finishes its calls and exits; then the stat file is complete."""
    if program.returncode is None:
        program.process.send_signal(signal.SIGUSR1)
        with contextlib.suppress(AssertionError):
            await wait_exit(program, 10)


async def settle(role: MediationRole) -> None:
    for _ in range(500):
        if not role.b2bua.bridges:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(role.b2bua.bridges)} calls still bridged")


def run(main: Any) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(asyncio.wait_for(main, SIPP_TIMEOUT * 3))


def test_outbound_1000_calls_cloud_to_gateway(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        gw = free_port()
        async with mediation([gw], free_port()) as role:
            with running(uas_args(sipp, gw, tmp_path, "uas"), tmp_path / "uas.out") as uas:
                await wait_bound(uas, gw)
                args = uac_args(sipp, edge_port(role), tmp_path, "uac", CALLS, RATE)
                with running(args, tmp_path / "uac.out") as uac:
                    code = await wait_exit(uac, SIPP_TIMEOUT + 10)
                await settle(role)
                await stop_uas(uas)
            assert_clean(sipp_stats(tmp_path / "uac.csv"), CALLS, "uac")
            assert_clean(sipp_stats(tmp_path / "uas.csv"), CALLS, "uas")
            assert code == 0, uac.output()[-2000:]
            assert role.b2bua.stats.answered == CALLS and role.admission.active == 0

    run(main())


def test_inbound_1000_calls_gateway_to_cloud(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        cloud = free_port()
        async with mediation([free_port()], cloud) as role:
            with running(uas_args(sipp, cloud, tmp_path, "uas"), tmp_path / "uas.out") as uas:
                await wait_bound(uas, cloud)
                args = uac_args(sipp, gateway_port(role), tmp_path, "uac", CALLS, RATE)
                with running(args, tmp_path / "uac.out") as uac:
                    code = await wait_exit(uac, SIPP_TIMEOUT + 10)
                await settle(role)
                await stop_uas(uas)
            assert_clean(sipp_stats(tmp_path / "uac.csv"), CALLS, "uac")
            assert_clean(sipp_stats(tmp_path / "uas.csv"), CALLS, "uas")
            assert code == 0, uac.output()[-2000:]
            assert role.b2bua.stats.answered == CALLS

    run(main())


def test_486_from_the_gateway_reaches_the_cloud_side(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    calls = 100

    async def main() -> None:
        gw = free_port()
        async with mediation([gw], free_port()) as role:
            busy = uas_args(sipp, gw, tmp_path, "uas", SCENARIOS / "uas_486.xml")
            with running(busy, tmp_path / "uas.out") as uas:
                await wait_bound(uas, gw)
                args = [
                    sipp, f"127.0.0.1:{edge_port(role)}", "-sf", str(SCENARIOS / "uac_486.xml"),
                    "-s", NUMBER, "-m", str(calls), "-r", "100",
                    *sipp_common(free_port(), tmp_path, "uac"),
                ]  # fmt: skip
                with running(args, tmp_path / "uac.out") as uac:
                    code = await wait_exit(uac, SIPP_TIMEOUT + 10)
                await settle(role)
                await stop_uas(uas)
            stats = sipp_stats(tmp_path / "uac.csv")
            assert_clean(stats, calls, "uac")
            assert int(stats["DeadCallMsgs(C)"]) == 0  # no 486 retransmission: ACK matched
            assert_clean(sipp_stats(tmp_path / "uas.csv"), calls, "uas")
            assert code == 0, uac.output()[-2000:]
            assert role.b2bua.stats.answered == 0 and role.b2bua.stats.failovers == 0

    run(main())


async def carrying(
    role: MediationRole, uac: Program, names: tuple[str, ...], count: int, timeout: float = 60.0
) -> None:
    """Wait until every gateway of ``names`` has carried ``count`` calls (bounded; fails when
    the caller's SIPp exits first)."""
    trunks = role.trunks
    assert trunks is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(trunks[name].calls_total < count for name in names):
        assert uac.returncode is None, uac.output()[-2000:]
        assert loop.time() < deadline, f"not {count} calls on each of {names}: {trunks.status()}"
        await asyncio.sleep(0.05)


KILL_AFTER = 100  # calls on each gateway before the kill


def test_a_gateway_killed_mid_run_calls_go_to_the_other(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    calls, rate = 1500, 100

    async def main() -> None:
        ports = [free_port(), free_port()]
        async with mediation(ports, free_port(), options=True) as role:
            trunks = role.trunks
            assert trunks is not None
            gws = [
                Program(uas_args(sipp, p, tmp_path, f"gw{n}"), tmp_path / f"gw{n}.out")
                for n, p in enumerate(ports, 1)
            ]
            try:
                for gw, port in zip(gws, ports, strict=True):
                    await wait_bound(gw, port)
                args = uac_args(sipp, edge_port(role), tmp_path, "uac", calls, rate)
                with running(args, tmp_path / "uac.out") as uac:
                    # mid-run: both gateways carry calls (not a time that assumes a speed)
                    await carrying(role, uac, ("Gateway1", "Gateway2"), KILL_AFTER)
                    gws[0].stop(grace=0)  # SIGTERM: SIPp exits at once, its socket closes
                    loop = asyncio.get_running_loop()
                    killed = loop.time()
                    while trunks["Gateway1"].health is not Health.DOWN:
                        assert loop.time() - killed < DETECTION, "Gateway1 not marked down"
                        await asyncio.sleep(0.05)
                    answered_at_detection = role.b2bua.stats.answered
                    code = await wait_exit(uac, SIPP_TIMEOUT + 10)
                await settle(role)
                assert trunks["Gateway2"].health is Health.UP
                await stop_uas(gws[1])
            finally:
                for gw in gws:
                    gw.stop()
            stats = sipp_stats(tmp_path / "uac.csv")
            print(f"failovers={role.b2bua.stats.failovers} {trunks.status()}")
            assert_clean(stats, calls, "uac")  # including the calls in flight at the kill
            assert code == 0, uac.output()[-2000:]
            assert trunks["Gateway2"].calls_total >= calls - answered_at_detection

    run(main())


async def raw_invite(port: int, role: MediationRole) -> Response:
    """One INVITE to the edge side from the role's own edge endpoint: its final response."""
    endpoint = role.edge_endpoint
    assert endpoint is not None
    future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    headers = Headers.of([
        ("Max-Forwards", 70), ("To", f"<sip:{NUMBER}@127.0.0.1>"),
        ("From", "<sip:probe@127.0.0.1>;tag=p1"), ("Call-ID", f"probe{random.random()}"),
        ("CSeq", CSeq(1, "INVITE")), ("Contact", "<sip:probe@127.0.0.1>"),
        ("Content-Length", 0),
    ])  # fmt: skip

    def done(_: ClientTransaction, outcome: object) -> None:
        if isinstance(outcome, Response) and outcome.status >= 200 and not future.done():
            future.set_result(outcome)

    request = Request("INVITE", parse_uri(f"sip:{NUMBER}@127.0.0.1:{port}"), headers)
    endpoint.send_request(request, Destination("UDP", "127.0.0.1", port), done)
    return await asyncio.wait_for(future, 5)


def test_at_the_capacity_limit_the_next_invite_gets_503_retry_after(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    limit = 5

    async def main() -> None:
        gw = free_port()
        async with mediation([gw], free_port(), MaxConcurrentCalls=limit) as role:
            with running(uas_args(sipp, gw, tmp_path, "uas"), tmp_path / "uas.out") as uas:
                await wait_bound(uas, gw)
                hold = ("-d", "4000", "-l", str(limit))  # each call lasts 4 s
                args = uac_args(sipp, edge_port(role), tmp_path, "uac", limit, 50, *hold)
                with running(args, tmp_path / "uac.out") as uac:
                    while role.b2bua.stats.answered < limit:
                        await asyncio.sleep(0.02)
                    response = await raw_invite(edge_port(role), role)
                    code = await wait_exit(uac, SIPP_TIMEOUT + 10)
                await settle(role)
                await stop_uas(uas)
            assert response.status == 503
            assert response.headers.get("Retry-After") == "10"
            assert "SIP;cause=503" in (response.headers.get("Reason") or "")
            assert_clean(sipp_stats(tmp_path / "uac.csv"), limit, "uac")
            assert code == 0, uac.output()[-2000:]
            assert role.admission.refused_busy == 1

    run(main())
