"""A gateway that trunks to every mediation role of its site retries on another when one is
stopped (issue 12, "High availability"): SIPp plays the PSTN gateway with
``scenarios/gw_retry_uac.xml`` (INVITE to mediation 1; on no answer or 503, a new INVITE to
mediation 2), two ``hybridvoice mediation serve`` processes are the site's mediation roles, a
SIPp ``uas`` stands in for the edge side (where inbound calls go next).

1. Mediation 1 is killed (SIGKILL, by PID) while the gateway places calls: every call
   completes, the ones after the kill through mediation 2.
2. Mediation 1 answers 503 (a SIPp UAS as a drained role): every call completes through 2.

Everything on 127.0.0.1 with ports from ``tests/net/ports.py``; every program stopped by its
PID in ``finally``; every wait bounded.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_programs import SCENARIOS, Program, free_port, need_binary, sipp_stats

pytestmark = pytest.mark.interop

MEDIATION_TOML = """\
[Common]
SIPDomains = "contoso.example"
SiteName = "Amsterdam"

[MediationServer]
IP = "127.0.0.1"
TCPPort = 0
TLSPort = false
UDPPort = {gateway_side}
BypassServicePort = 0

[Gateway1]
IP = "127.0.0.1"
Port = {gateway}
Protocol = "UDP"
VoiceRoutes = "All"
SendSipOptions = false

[HybridVoiceRoutes]
All = ".*"
"""
CALLS = 24
#: the gateway's retransmissions before it moves on: 500 ms doubling, 3 = 7.5 s
GATEWAY_RETRANS = 3


def mediation(tmp: Path, name: str, gateway: int, edge_target: int) -> tuple[Program, int]:
    """A ``hybridvoice mediation serve`` process; returns it and its gateway-side UDP port."""
    side, edge = free_port(), free_port()
    config = tmp / f"{name}.toml"
    config.write_text(MEDIATION_TOML.format(gateway_side=side, gateway=gateway))
    args = [
        sys.executable, "-m", "hybridvoice", "mediation", "serve", "--config", str(config),
        "--edge", f"udp:127.0.0.1:{edge}", "--edge-target", f"udp:127.0.0.1:{edge_target}",
        "--no-relay", "--no-bypass-service",
    ]  # fmt: skip
    program = Program(args, tmp / f"{name}.out")
    deadline = time.monotonic() + 30
    while "READY" not in program.output():
        if program.returncode is not None or time.monotonic() > deadline:
            program.stop()
            raise AssertionError(f"{name} did not start: {program.output()[-2000:]}")
        time.sleep(0.05)
    return program, side


def sipp_args(sipp: str, port: int, tmp: Path, name: str) -> list[str]:
    return [
        "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-buff_size", "4194304",
        "-timeout", "120s", "-timeout_error", "-trace_stat", "-stf", str(tmp / f"{name}.csv"),
        "-fd", "1", "-trace_err", "-error_file", str(tmp / f"{name}_errors.log"),
        "-trace_logs", "-log_file", str(tmp / f"{name}_logs.log"),
    ]  # fmt: skip


def gateway(sipp: str, port: int, first: int, second: int, tmp: Path, rate: int) -> Program:
    args = [
        sipp, f"127.0.0.1:{first}", "-sf", str(SCENARIOS / "gw_retry_uac.xml"),
        "-s", "+15550100", "-set", "m2host", "127.0.0.1", "-set", "m2port", str(second),
        "-max_invite_retrans", str(GATEWAY_RETRANS), "-m", str(CALLS), "-r", str(rate),
        *sipp_args(sipp, port, tmp, "gw"),
    ]  # fmt: skip
    return Program(args, tmp / "gw.out")


def successful(path: Path) -> int:
    try:
        return int(sipp_stats(path).get("SuccessfulCall(C)", "0") or 0)
    except (AssertionError, OSError, ValueError):
        return 0


def wait_exit(program: Program, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while program.returncode is None:
        if time.monotonic() > deadline:
            program.stop()
            raise AssertionError(f"{program.args[0]} did not finish in {timeout} s")
        time.sleep(0.1)
    return program.returncode


def answered(program: Program) -> int:
    """Calls a stopped ``mediation serve`` answered (its STATS line)."""
    for line in program.output().splitlines():
        if line.startswith("STATS "):
            fields = dict(f.split("=", 1) for f in line.split()[1:4])
            return int(fields["answered"])
    raise AssertionError(f"no STATS line: {program.output()[-1000:]}")


@contextlib.contextmanager
def stopped_at_end(*programs: Program) -> Iterator[None]:
    try:
        yield
    finally:
        for program in programs:
            program.stop()


def byes_lost(tmp: Path) -> list[str]:
    """``Call-ID URI`` of each call whose BYE got no answer (the scenario's BYE-LOST lines;
    the URI is the Contact of the mediation that had answered the call)."""
    try:
        text = (tmp / "gw_logs.log").read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line.split("BYE-LOST ", 1)[1] for line in text.splitlines() if "BYE-LOST " in line]


def assert_all_completed(tmp: Path, *, killed_port: int | None = None) -> None:
    """Every call set up and completed. With ``killed_port`` (the gateway side of the role
    that was killed), a call that role had already answered loses its BYE (nobody else knows
    its dialog): each such BYE must have gone to that role, and at 4 calls/s of a few
    milliseconds each there is 1 at the most (2 on a slow machine); never one that began
    after the kill, and none without a kill."""
    stats = sipp_stats(tmp / "gw.csv")
    keys = ("SuccessfulCall(C)", "FailedCall(C)", "FailedUnexpectedMessage(C)")
    summary = {k: stats.get(k) for k in keys}
    lost = byes_lost(tmp)
    print(f"gateway: {summary}, BYE lost: {lost}")
    assert int(stats["SuccessfulCall(C)"]) == CALLS, summary
    assert int(stats["FailedCall(C)"]) == 0, summary
    if killed_port is None:
        assert lost == []
    else:
        assert len(lost) <= 2, lost
        assert all(f":{killed_port}" in entry.split(" ", 1)[-1] for entry in lost), lost


def test_gateway_retries_on_the_other_mediation_when_one_is_killed(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    gw_port, edge_port = free_port(), free_port()
    edge = Program([sipp, "-sn", "uas", *sipp_args(sipp, edge_port, tmp_path, "edge")],
                   tmp_path / "edge.out")  # fmt: skip
    with stopped_at_end(edge):
        m1, m1_port = mediation(tmp_path, "mediation1", gw_port, edge_port)
        m2, m2_port = mediation(tmp_path, "mediation2", gw_port, edge_port)
        with stopped_at_end(m1, m2):
            gw = gateway(sipp, gw_port, m1_port, m2_port, tmp_path, rate=4)
            with stopped_at_end(gw):
                deadline = time.monotonic() + 60
                while successful(tmp_path / "gw.csv") < 4:  # mediation 1 takes calls
                    assert time.monotonic() < deadline and gw.returncode is None, gw.output()
                    time.sleep(0.1)
                m1.process.send_signal(signal.SIGKILL)
                m1.process.wait(10)
                code = wait_exit(gw, 150)
            assert_all_completed(tmp_path, killed_port=m1_port)
            assert code == 0, gw.output()[-2000:]
            m2.stop()
            after_kill = answered(m2)
            print(f"mediation 2 answered {after_kill} of {CALLS} calls")
            assert 1 <= after_kill <= CALLS - 4


def test_gateway_retries_on_the_other_mediation_after_a_503(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    gw_port, edge_port, drained_port = free_port(), free_port(), free_port()
    edge = Program([sipp, "-sn", "uas", *sipp_args(sipp, edge_port, tmp_path, "edge")],
                   tmp_path / "edge.out")  # fmt: skip
    drained = Program(
        [sipp, "-sf", str(SCENARIOS / "uas_503.xml"),
         *sipp_args(sipp, drained_port, tmp_path, "drained")],
        tmp_path / "drained.out",
    )  # fmt: skip
    with stopped_at_end(edge, drained):
        m2, m2_port = mediation(tmp_path, "mediation2", gw_port, edge_port)
        with stopped_at_end(m2):
            gw = gateway(sipp, gw_port, drained_port, m2_port, tmp_path, rate=4)
            with stopped_at_end(gw):
                code = wait_exit(gw, 120)
            assert_all_completed(tmp_path)
            assert code == 0, gw.output()[-2000:]
            m2.stop()
            assert answered(m2) == CALLS
