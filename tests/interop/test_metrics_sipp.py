"""``/metrics`` of a running ``hybridvoice mediation serve`` counts exactly what SIPp did.

SIPp ``uac`` (the cloud side) places 200 calls through the mediation role (a process of
its own, ``--metrics 127.0.0.1:PORT``) to a SIPp ``uas`` gateway that answers them, then 50
more to a SIPp gateway that answers 486 Busy Here. The exposition is parsed by
prometheus-client's parser: calls admitted and ended by result equal SIPp's call counts, the
setup-time histogram counts exactly the answered calls, every bucket is cumulative, the
calls rejected by status are the 486s, the SIP counters of both sides saw every INVITE.
Real programs on 127.0.0.1 with free ports, each stopped by its PID.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from interop_programs import (
    SCENARIOS,
    Program,
    free_port,
    need_binary,
    running,
    sipp_stats,
    wait_bound_sync,
)
from prometheus_client.parser import text_string_to_metric_families
from test_sipp import SIPP_TIMEOUT, assert_clean, sipp_common

pytestmark = [
    pytest.mark.interop, pytest.mark.live, pytest.mark.load, pytest.mark.xdist_group("sipp-load"),
]  # fmt: skip

ANSWERED, BUSY, RATE = 200, 50, 50
NUMBER = "+31201234567"
SETTINGS = """\
[Common]
SIPDomains = "contoso.com"
SiteName = "Metrics"

[MediationServer]
IP = "127.0.0.1"
TCPPort = 0
TLSPort = 0
UDPPort = {gw_side}
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

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10.0)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for_line(program: Program, prefix: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in program.output().splitlines():
            if line.startswith(prefix):
                return line
        assert program.returncode is None, program.output()[-2000:]
        time.sleep(0.1)
    raise AssertionError(f"no {prefix} line: {program.output()[-2000:]}")


def uas(sipp: str, port: int, tmp: Path, name: str, scenario: Path | None = None) -> Program:
    how = ["-sf", str(scenario)] if scenario else ["-sn", "uas"]
    return Program([sipp, *how, "-aa", *sipp_common(port, tmp, name)], tmp / f"{name}.out")


def stop_uas(program: Program) -> None:
    """SIGUSR1: SIPp finishes its calls and exits (its stat file complete); by PID."""
    if program.returncode is None:
        program.process.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            program.process.wait(10)
    program.stop()


def uac(sipp: str, target: int, tmp: Path, name: str, scenario: str, calls: int) -> int:
    args = [
        sipp, f"127.0.0.1:{target}", "-sf", str(SCENARIOS / scenario), "-s", NUMBER,
        "-m", str(calls), "-r", str(RATE), *sipp_common(free_port(), tmp, name),
    ]  # fmt: skip
    with running(args, tmp / f"{name}.out") as program:
        return program.process.wait(SIPP_TIMEOUT + 30)


def test_metrics_match_a_sipp_run(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    gateway, edge, metrics = free_port(), free_port(), free_port()
    config = tmp_path / "mediation.toml"
    config.write_text(SETTINGS.format(gw_side=free_port(), gateway=gateway))
    serve = [
        sys.executable, "-m", "hybridvoice", "mediation", "serve", "--config", str(config),
        "--edge", f"udp:127.0.0.1:{edge}", "--edge-target", f"udp:127.0.0.1:{free_port()}",
        "--no-relay", "--metrics", f"127.0.0.1:{metrics}", "--log-dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    with running(serve, tmp_path / "mediation.out") as role:
        url = wait_for_line(role, "METRICS ").split()[1]
        wait_for_line(role, "READY ")
        assert url == f"http://127.0.0.1:{metrics}/metrics"
        before = scrape(url)
        assert value(before, "hybridvoice_calls_admitted_total") == 0

        answering = uas(sipp, gateway, tmp_path, "uas")
        try:
            wait_bound_sync(answering, gateway)  # a call before it would be retransmitted
            code = uac(sipp, edge, tmp_path, "uac", "uac_txn.xml", ANSWERED)
        finally:
            stop_uas(answering)
        assert code == 0, (tmp_path / "uac.out").read_text()[-2000:]
        busy = uas(sipp, gateway, tmp_path, "uas486", SCENARIOS / "uas_486.xml")
        try:
            wait_bound_sync(busy, gateway)
            code = uac(sipp, edge, tmp_path, "uac486", "uac_486.xml", BUSY)
        finally:
            stop_uas(busy)
        assert code == 0, (tmp_path / "uac486.out").read_text()[-2000:]

        answered = sipp_stats(tmp_path / "uac.csv")
        refused = sipp_stats(tmp_path / "uac486.csv")
        assert_clean(answered, ANSWERED, "uac")
        assert_clean(refused, BUSY, "uac486")  # SIPp's success: the 486 came
        deadline = time.monotonic() + 30  # the role lets go of the last call
        samples = scrape(url)
        while value(samples, "hybridvoice_calls_active") and time.monotonic() < deadline:
            time.sleep(0.2)
            samples = scrape(url)
        ok, busy_calls = int(answered["SuccessfulCall(C)"]), int(refused["SuccessfulCall(C)"])
        assert value(samples, "hybridvoice_calls_active") == 0
        assert value(samples, "hybridvoice_calls_admitted_total") == ok + busy_calls
        assert value(samples, "hybridvoice_calls_ended_total", result="answered") == ok
        assert value(samples, "hybridvoice_calls_ended_total", result="failed") == busy_calls
        assert value(samples, "hybridvoice_call_setup_seconds_count") == ok
        assert value(samples, "hybridvoice_call_setup_seconds_bucket", le="+Inf") == ok
        cumulative = [v for (name, labels), v in sorted(samples.items(), key=lambda kv: float(
            dict(kv[0][1]).get("le", "0").replace("+Inf", "inf")))
            if name == "hybridvoice_call_setup_seconds_bucket"]  # fmt: skip
        assert cumulative == sorted(cumulative) and len(cumulative) == 13
        gateway_name = "Gateway1"
        assert value(samples, "hybridvoice_gateway_calls_total", gateway=gateway_name) == (
            ok + busy_calls
        )
        invites = "hybridvoice_sip_requests_received_total"
        assert value(samples, invites, endpoint="mediation_edge_side", method="INVITE") >= (
            ok + busy_calls
        )
        assert value(samples, "hybridvoice_sip_responses_received_total",
                     endpoint="mediation_gateway_side", status="486") >= busy_calls  # fmt: skip
        rejected = {dict(labels)["status"]: v for (name, labels), v in samples.items()
                    if name == "hybridvoice_calls_rejected_total"}  # fmt: skip
        assert rejected == {"486": busy_calls}
    assert (tmp_path / "logs" / "hybridvoice.log").exists()
