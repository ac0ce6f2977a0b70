"""Two online instances of one tenant on a 3-member etcd cluster, one killed under load
(issue 12, "Checked by": two online instances).

A 3-member etcd cluster (tests/store/etcd_cluster.py) and two ``hybridvoice online serve``
processes, A and B, each with its own settings file, both on the cluster. SIPp over UDP:

- bob registers through A, then a SIPp UAS answers his calls on the registered contact;
- alice registers through A again and again (``-r 5``): the registration load;
- alice calls bob through A and through B at the same time (``-r 5`` each, with the proxy's
  digest challenge), a few hundred calls;
- A is killed by PID (SIGKILL) in the middle of the run: once :data:`KILL_AFTER` calls through
  each instance have succeeded (not a fixed time, which assumed a speed).

Then: bob, registered only through A, stays reachable through B (his binding is a key with a
lease in etcd, not in A's memory), and every call through B set up after the detection
window succeeds (the failures before and after are counted and printed; none is allowed after
the window); a registration through B after the kill succeeds. Everything started is stopped
by PID in ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports
from interop_programs import (
    SCENARIOS,
    Program,
    free_port,
    need_binary,
    running,
    sipp_stats,
    wait_bound,
)
from test_sipp import sipp_common, wait_exit

from hybridvoice.cms.template import render_settings

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from etcd_cluster import running_cluster

pytestmark = [pytest.mark.interop, pytest.mark.live, pytest.mark.xdist_group("etcd")]

DOMAIN = "contoso.example"
PASSWORD = "hybridvoice"
RATE = 5
CALLS = 150  # through each instance: 30 s at 5 calls/s
#: calls through A and through B that have succeeded when A is killed: the kill lands in the
#: middle of the run whatever the machine's speed (a fixed time into the run assumed one)
KILL_AFTER = 40
#: how long the load may take to reach KILL_AFTER calls on a starved machine (about 8 s at
#: 5 calls/s on an idle one)
LOAD_START = 90.0
#: after the kill, calls through B set up this much later must all succeed (B has nothing to
#: detect: bob's binding is in etcd; the window covers a call whose transaction spanned the kill)
WINDOW = 5.0


def _serve(config: Path, endpoints: list[str], log: Path, *extra: str) -> Program:
    args = [sys.executable, "-m", "hybridvoice", "online", "serve", "--config", str(config)]
    for member in endpoints:
        args += ["--etcd", member]
    return Program([*args, *extra], log)


def _wait_ready(program: Program, limit: float = 90.0) -> None:
    give_up = time.monotonic() + limit
    while "ready" not in program.output():
        if program.returncode is not None or time.monotonic() > give_up:
            raise AssertionError(f"online serve did not start:\n{program.output()[-3000:]}")
        time.sleep(0.1)


def _failures(path: Path, moment: float) -> tuple[int, int, int]:
    """(failed calls before `moment`, after it, successful calls) from a SIPp -trace_stat
    CSV written every second (periodic columns)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    names = lines[0].split(";")
    before = after = 0
    for line in lines[1:]:
        row = dict(zip(names, line.split(";"), strict=False))
        stamp = float(row["CurrentTime"].split()[-1])  # date, time, epoch seconds
        failed = int(row.get("FailedCall(P)") or 0)
        if stamp > moment:
            after += failed
        else:
            before += failed
    last = dict(zip(names, lines[-1].split(";"), strict=False))
    return before, after, int(last["SuccessfulCall(C)"])


def _succeeded(path: Path) -> int:
    """Calls a SIPp has completed so far (its -trace_stat file, written once a second; 0
    before the first row, or while a row is half written)."""
    try:
        return int(sipp_stats(path).get("SuccessfulCall(C)", "0") or 0)
    except (AssertionError, OSError, ValueError):
        return 0


async def _succeeding(tmp: Path, programs: dict[str, Program]) -> None:
    """Wait until each SIPp of ``programs`` (by its stat file's name) has completed
    :data:`KILL_AFTER` calls; fail when one exits first or after :data:`LOAD_START` s."""
    deadline = time.monotonic() + LOAD_START
    while any(_succeeded(tmp / f"{name}.csv") < KILL_AFTER for name in programs):
        for name, program in programs.items():
            assert program.returncode is None, f"{name}: {program.output()[-2000:]}"
        assert time.monotonic() < deadline, f"not {KILL_AFTER} calls each in {LOAD_START} s"
        await asyncio.sleep(0.1)


def _register_args(sipp: str, proxy: int, user: str, port: int, tmp: Path, name: str,
                   *load: str) -> list[str]:  # fmt: skip
    return [
        sipp, f"127.0.0.1:{proxy}", "-sf", str(SCENARIOS / "chain_register.xml"),
        "-key", "user", user, "-key", "domain", DOMAIN, "-au", user, "-ap", PASSWORD,
        "-auth_uri", DOMAIN, *(load or ("-m", "1")), *sipp_common(port, tmp, name),
    ]  # fmt: skip


def _call_args(sipp: str, proxy: int, port: int, tmp: Path, name: str) -> list[str]:
    return [
        sipp, f"127.0.0.1:{proxy}", "-sf", str(SCENARIOS / "chain_uac_auth_call.xml"),
        "-s", "bob", "-key", "user", "alice", "-key", "domain", DOMAIN,
        "-au", "alice", "-ap", PASSWORD, "-auth_uri", f"bob@{DOMAIN}",
        "-m", str(CALLS), "-r", str(RATE), "-recv_timeout", "20000",
        *sipp_common(port, tmp, name),
    ]  # fmt: skip


def test_registered_users_stay_reachable_and_calls_succeed_through_b_after_a_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sipp = need_binary("sipp", "sip-tester")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the saved admin token
    monkeypatch.setenv("HOME", str(tmp_path))
    configs = []
    ports = []
    for name in ("a", "b"):
        settings = settings_on_free_ports(
            Online={"DigestAlgorithms": "MD5", "AuthFailureLimit": 0, "SIPProtocol": "TCP"}
        )
        config = tmp_path / f"{name}.toml"
        config.write_text(render_settings(settings))
        configs.append(config)
        ports.append(settings.online.sip_port)
    port_a, port_b = ports

    async def main(endpoints: list[str]) -> None:
        a = _serve(configs[0], endpoints, tmp_path / "a.log", "--lab-users")
        b: Program | None = None
        try:
            _wait_ready(a)
            b = _serve(configs[1], endpoints, tmp_path / "b.log")
            _wait_ready(b)
            print(a.output(), b.output(), sep="\n")
            bob = free_port()
            reg = _register_args(sipp, port_a, "bob", bob, tmp_path, "reg_bob")
            with running(reg, tmp_path / "reg_bob.out") as program:
                assert await wait_exit(program, 30) == 0, program.output()[-2000:]
            uas = [
                sipp,
                "-sf",
                str(SCENARIOS / "chain_uas.xml"),
                *sipp_common(bob, tmp_path, "uas"),
            ]
            load = _register_args(sipp, port_a, "alice", free_port(), tmp_path, "reg_load",
                                  "-m", "1000", "-r", str(RATE))  # fmt: skip
            via_a = _call_args(sipp, port_a, free_port(), tmp_path, "via_a")
            via_b = _call_args(sipp, port_b, free_port(), tmp_path, "via_b")
            with (
                running(uas, tmp_path / "uas.out") as answering,
                running(load, tmp_path / "reg_load.out"),
            ):
                await wait_bound(answering, bob)  # a call to bob before it would fail
                with (
                    running(via_a, tmp_path / "via_a.out") as calls_a,
                    running(via_b, tmp_path / "via_b.out") as calls_b,
                ):
                    await _succeeding(tmp_path, {"via_a": calls_a, "via_b": calls_b})
                    killed_at = time.time()
                    os.kill(a.pid, signal.SIGKILL)  # A dies mid-run, as a crash would
                    a.process.wait(30)
                    await wait_exit(calls_b, CALLS / RATE + 120)
            # registrations set up after the kill go through B
            reg = _register_args(sipp, port_b, "alice", free_port(), tmp_path, "reg_after")
            with running(reg, tmp_path / "reg_after.out") as program:
                assert await wait_exit(program, 30) == 0, program.output()[-2000:]
        finally:
            a.stop()
            if b is not None:
                b.stop()
        before, after, ok = _failures(tmp_path / "via_b.csv", killed_at + WINDOW)
        print(f"calls through B: {ok} succeeded; failed: {before} before the end of the "
              f"detection window, {after} after it")  # fmt: skip
        log = tmp_path / "via_b_errors.log"
        errors = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        assert after == 0, errors
        assert ok + before == CALLS, errors
        a_before, _, a_ok = _failures(tmp_path / "via_a.csv", killed_at)
        print(f"calls through A: {a_ok} succeeded before the kill ({a_before} failed)")
        assert a_ok > 0 and a_before == 0

    (tmp_path / "etcd").mkdir()
    with running_cluster(tmp_path / "etcd") as cluster:
        asyncio.run(main(cluster.endpoints))
