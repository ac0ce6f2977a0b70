"""High availability of a site (issue 12, "Checked by"): three appliance processes of one site
behind SIPp load; one is killed with SIGKILL mid-run; after the detection window every new
call succeeds.

The fleet (:class:`hybridvoice.fleet.up.Fleet`, ``tests/interop/fleet_harness.py``) runs the
online service in the test process and each appliance as its own ``hybridvoice appliance
serve`` process; the site's gateway is a SIPp ``uas``. SIPp registers as alice (a user of the
site) and calls a PSTN number through the online proxy at a steady rate
(``chain_uac_auth_call.xml``: 407 challenge, INVITE again with credentials, 200, ACK, BYE),
for :data:`CALLS` calls. Once :data:`KILL_AFTER` calls have succeeded, appliance 1 is killed
by PID (SIGKILL: no goodbye to the online service; or SIGSTOP: hung, connections still
accepted by the kernel, nothing answered). The online proxy tries the site's online
appliances in random order and moves on when one fails (refused connection, 408/503/504, no
provisional within ``ApplianceTimeoutSeconds``); the heartbeat sweep marks the silent one
offline after ``HeartbeatTimeoutSeconds`` (4 s here, 5 s by default) and it is no longer
tried.

SIPp's per-second statistics (``-trace_stat -fd 1``) give the failures of each one-second
window; the test prints them, the detection window and how many calls failed inside it, and
asserts that no call failed in any window that starts after the kill plus the detection
window plus the time a call already under way may take to fail.

Each call is held :data:`HOLD_MS` between its 200 and its BYE, so the kill always lands on
calls answered through the victim and not yet ended. Their BYE cannot succeed (the victim
record-routed the dialog and nobody else knows it): it gets no answer (SIGSTOP) or the
proxy's 408 (SIGKILL), tens of seconds after the kill for a hung victim. The scenario
(``chain_uac_auth_call_bye_lost.xml``) logs such a call as BYE-LOST with its route set and
completes it; the test allows it only when that route set names the victim's ports.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import pytest
from fleet_harness import DOMAIN, PASSWORD, fleet_raw, proxy_port, running_fleet, sipp_gateway
from interop_programs import SCENARIOS, Program, free_port, need_binary, running, sipp_stats
from test_sipp import assert_clean, sipp_common

from hybridvoice.fleet.up import Fleet
from hybridvoice.net.loop import loop_factory

pytestmark = [
    pytest.mark.interop,
    pytest.mark.live,
    pytest.mark.load,
    pytest.mark.xdist_group("sipp-load"),
]

RATE = 10
CALLS = 400
KILL_AFTER = 80
#: each call is held this long between its 200 and its BYE: the kill always lands while calls
#: through the victim are answered and not yet ended (about RATE * HOLD_MS / 1000 / 3 of them)
HOLD_MS = 1000
HEARTBEAT_TIMEOUT = 4.0
NUMBER = "+31205550199"
#: a call under way when the appliance died fails at the latest after the proxy's
#: ApplianceTimeoutSeconds (2 s) per appliance tried; 10 s bounds it generously
CALL_BOUND = 10.0


async def register(sipp: str, fleet: Fleet, user: str, port: int, tmp: Path) -> None:
    name = f"reg_{user}"
    args = [
        sipp, f"127.0.0.1:{proxy_port(fleet)}", "-sf", str(SCENARIOS / "chain_register.xml"),
        "-key", "user", user, "-key", "domain", DOMAIN, "-au", user, "-ap", PASSWORD,
        "-auth_uri", DOMAIN, "-m", "1", *sipp_common(port, tmp, name),
    ]  # fmt: skip
    with running(args, tmp / f"{name}.out") as program:
        code = await wait_exit(program, 30)
    assert code == 0, program.output()[-2000:]


async def wait_exit(program: Program, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while program.returncode is None:
        if time.monotonic() > deadline:
            program.stop()
            raise AssertionError(f"{program.args[0]} did not finish in {timeout} s")
        await asyncio.sleep(0.1)
    return program.returncode


def per_second(path: Path) -> list[tuple[float, int, int]]:
    """(epoch seconds, calls succeeded, calls failed) of each periodic row of a SIPp
    ``-trace_stat`` file (the counters of the period ending then)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    names = lines[0].split(";")
    rows = []
    for line in lines[1:]:
        row = dict(zip(names, line.split(";"), strict=False))
        epoch = float(row["CurrentTime"].split("\t")[-1])
        rows.append((epoch, int(row["SuccessfulCall(P)"]), int(row["FailedCall(P)"])))
    return rows


def byes_lost(path: Path) -> list[tuple[str, str]]:
    """(Call-ID, route set) of each call whose BYE got no answer (the scenario's BYE-LOST
    log lines, ``chain_uac_auth_call_bye_lost.xml``)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    lost = []
    for line in text.splitlines():
        if "BYE-LOST " in line:
            call_id, _, route = line.split("BYE-LOST ", 1)[1].partition(" ")
            lost.append((call_id, route))
    return lost


def succeeded(path: Path) -> int:
    try:
        return int(sipp_stats(path).get("SuccessfulCall(C)", "0") or 0)
    except (AssertionError, OSError, ValueError):
        return 0


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_killed_appliance_costs_no_call_after_the_detection_window(
    tmp_path: Path, how: str
) -> None:
    """SIGKILL: the process is gone (its edge refuses connections); SIGSTOP: it hangs (the
    kernel still accepts, nothing answers: the proxy moves on after ApplianceTimeoutSeconds)."""
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        gw_port, alice_port = free_port(), free_port()
        site = {
            "Name": "Amsterdam", "Appliances": 3, "CountryCode": "31",
            "Gateway": [sipp_gateway("ams-gw", gw_port)],
            "User": [{"Name": "alice", "Number": "+31205550100"}],
        }  # fmt: skip
        raw = fleet_raw([site], heartbeat_timeout=HEARTBEAT_TIMEOUT)
        gateway = Program([sipp, "-sn", "uas", *sipp_common(gw_port, tmp_path, "gw")],
                          tmp_path / "gw.out")  # fmt: skip
        try:
            async with running_fleet(tmp_path, raw) as fleet:
                await register(sipp, fleet, "alice", alice_port, tmp_path)
                args = [
                    sipp, f"127.0.0.1:{proxy_port(fleet)}",
                    "-sf", str(SCENARIOS / "chain_uac_auth_call_bye_lost.xml"), "-s", NUMBER,
                    "-key", "user", "alice", "-key", "domain", DOMAIN, "-au", "alice",
                    "-ap", PASSWORD, "-auth_uri", f"{NUMBER}@{DOMAIN}",
                    "-m", str(CALLS), "-r", str(RATE), "-d", str(HOLD_MS),
                    "-trace_logs", "-log_file", str(tmp_path / "alice_logs.log"),
                    *sipp_common(alice_port, tmp_path, "alice"),
                ]  # fmt: skip
                victim = fleet.plan.appliances[0].name
                with running(args, tmp_path / "alice.out") as alice:
                    deadline = time.monotonic() + 90
                    while succeeded(tmp_path / "alice.csv") < KILL_AFTER:
                        assert alice.returncode is None, alice.output()[-2000:]
                        assert time.monotonic() < deadline, "no calls before the kill"
                        await asyncio.sleep(0.1)
                    assert fleet.children is not None
                    pid = fleet.children.pid(victim)
                    assert pid is not None
                    os.kill(pid, getattr(signal, how))
                    killed_at = time.time()
                    offline_after = None
                    while offline_after is None:
                        found = fleet.store.get_appliance(victim)
                        if found is not None and found.status == "offline":
                            offline_after = time.time() - killed_at
                        assert time.time() - killed_at < 60, "never marked offline"
                        await asyncio.sleep(0.05)
                    code = await wait_exit(alice, CALLS / RATE + 120)
                if how == "SIGSTOP":
                    os.kill(pid, signal.SIGKILL)  # a stopped process takes no SIGTERM
                    reported_by = time.monotonic() + 60  # the supervisor sees it die
                    while not any(victim in r.text for r in fleet.reported if r.problem):
                        if time.monotonic() > reported_by:
                            break  # the assertion below says what was reported
                        await asyncio.sleep(0.05)
                died = [r.text for r in fleet.reported if r.problem]
        finally:
            gateway.stop()
        assert any(f"{victim} (pid {pid}) died: killed by SIGKILL" in t for t in died), died
        rows = per_second(tmp_path / "alice.csv")
        window = offline_after
        calm_from = killed_at + window + CALL_BOUND
        inside = sum(f for t, _, f in rows if killed_at <= t < calm_from + 1)
        after = [(round(t - killed_at, 1), f) for t, _, f in rows if t >= calm_from + 1 and f]
        timeline = [(round(t - killed_at, 1), s, f) for t, s, f in rows]
        print(f"detection window {window:.2f} s (HeartbeatTimeoutSeconds {HEARTBEAT_TIMEOUT:g});"
              f" calls failed from the kill to the window's end + {CALL_BOUND:g} s: {inside};"
              f" per second since the kill (s, ok, failed): {timeline}")  # fmt: skip
        stats = sipp_stats(tmp_path / "alice.csv")
        total_failed = int(stats["FailedCall(C)"])
        print(f"alice: {stats['SuccessfulCall(C)']} succeeded, {total_failed} failed of {CALLS}")
        assert after == [], f"calls failed after the detection window: {after}"
        # a call answered through the victim before the kill loses its BYE (nobody else knows
        # its dialog): allowed, and only for calls whose route set names the victim
        lost = byes_lost(tmp_path / "alice_logs.log")
        ports = set(fleet.plan.appliances[0].ports.values())
        print(f"BYE lost with the victim: {len(lost)} calls")
        for call_id, route in lost:
            assert ports & set(map(int, re.findall(r":(\d+)", route))), (call_id, route, ports)
        assert window <= HEARTBEAT_TIMEOUT + HEARTBEAT_TIMEOUT / 4 + 5  # sweep every timeout/4
        assert int(stats["SuccessfulCall(C)"]) + total_failed == CALLS
        if total_failed == 0:
            assert_clean(stats, CALLS, "alice (uac)")
            assert code == 0

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(asyncio.wait_for(main(), 400))
