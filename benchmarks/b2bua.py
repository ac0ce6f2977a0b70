"""Calls/s through the mediation role (media bypassed), beside sippy's B2BUA and Kamailio.

Run: ``.venv/bin/python benchmarks/b2bua.py [--seconds 20] [--hv-rates 400,800,...]``

Load: SIPp uac (the transactional scenario ``uac_txn.xml``) -> DUT -> SIPp uas, both SIPp
with ``-buff_size 4194304``, on 127.0.0.1. A rate is *clean* when every call succeeded and
neither SIPp retransmitted anything for the whole run (``--seconds`` at that rate). Each DUT
is ramped through its rates (fresh process per run, stopped by PID) until the first rate
that is not clean; the table gives the highest clean rate and the DUT's CPU per call
(utime+stime of it and its descendants from ``/proc/PID/stat`` over the run, divided by the
successful calls) at that rate and at a common rate every DUT sustains.

DUTs (recipes in ``../shared/peers/``):

- hybridvoice: ``hybridvoice mediation serve --no-relay`` (its own process, uvloop),
  one UDP gateway = the SIPp uas; the INVITE goes edge side -> B2BUA -> gateway side.
- sippy: ``b2bua -f -l 127.0.0.1 -p P -s 127.0.0.1:UAS -u -A 0`` from the sippy package in
  .venv, ``SIPLOG_LVL=ERR``, with the lower-case ``transport=udp`` uas scenario (sippy 2.5.0
  cannot send to ``transport=UDP``).
- kamailio: the stateful proxy config (tm ``t_relay``, record_route), 4 children, -m 1024.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import LoadResult, Proc, free_port, sipp_load

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
UAC = ROOT / "tests" / "interop" / "scenarios" / "uac_txn.xml"
UAS_LC = PEERS / "scenarios" / "uas_lc.xml"
VENV = ROOT / ".venv" / "bin"

MEDIATION_TOML = """\
[Common]
SIPDomains = "contoso.com"
SiteName = "Bench"
MaxConcurrentCalls = 1000000

[MediationServer]
IP = "127.0.0.1"
TCPPort = 0
TLSPort = 0
UDPPort = {gw_side}
BypassServicePort = 0               # never the CCE default 80 in a benchmark

[Gateway1]
IP = "127.0.0.1"
Port = {uas}
Protocol = "UDP"
VoiceRoutes = "All"
SendSipOptions = false

[HybridVoiceRoutes]
All = ".*"
"""


class _Dut:
    """A context manager that starts a DUT listening on ``port`` toward ``uas`` and stops it."""

    def __init__(self, kind: str, port: int, uas: int, workdir: Path) -> None:
        self.kind, self.port, self.uas, self.workdir = kind, port, uas, workdir
        self.proc: Proc | None = None

    def __enter__(self) -> Proc:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        if self.kind == "hybridvoice":
            cfg = w / "mediation.toml"
            cfg.write_text(MEDIATION_TOML.format(gw_side=free_port(), uas=self.uas))
            args = [
                str(VENV / "hybridvoice"), "mediation", "serve", "--config", str(cfg),
                "--edge", f"udp:127.0.0.1:{self.port}",
                "--edge-target", f"udp:127.0.0.1:{self.uas}", "--no-relay",
            ]  # fmt: skip
            self.proc = Proc(args, w / "dut.out")
            ready = self.proc.wait_for_text("READY", 15)
        elif self.kind == "sippy":
            args = [
                str(VENV / "b2bua"), "-f", "-l", "127.0.0.1", "-p", str(self.port),
                "-s", f"127.0.0.1:{self.uas}", "-u", "-A", "0", "-c", str(w / "b2bua.sock"),
                "-L", str(w / "b2bua.log"), "-P", str(w / "b2bua.pidfile"),
            ]  # fmt: skip
            env = {"SIPLOG_LVL": "ERR", "PATH": "/usr/bin:/bin"}
            self.proc = Proc(args, w / "dut.out", env=env)
            time.sleep(2.0)
            ready = self.proc.alive()
        else:
            cfg_text = (PEERS / "kamailio" / "kamailio.cfg").read_text()
            cfg_text = cfg_text.replace("udp:127.0.0.1:5080", f"udp:127.0.0.1:{self.port}")
            cfg_text = cfg_text.replace("sip:127.0.0.1:5070", f"sip:127.0.0.1:{self.uas}")
            cfg = w / "kamailio.cfg"
            cfg.write_text(cfg_text)
            (w / "run").mkdir(exist_ok=True)
            args = [
                shutil.which("kamailio") or "kamailio", "-DD", "-E", "-f", str(cfg), "-n", "4",
                "-m", "1024", "-M", "8", "-Y", str(w / "run"), "-w", str(w),
            ]  # fmt: skip
            self.proc = Proc(args, w / "dut.out")
            time.sleep(1.5)
            ready = self.proc.alive()
        if not ready:
            self.proc.stop()
            raise RuntimeError(f"{self.kind} did not start: {(w / 'dut.out').read_text()[-800:]}")
        return self.proc

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.stop(grace=10.0)


def run_one(kind: str, rate: int, seconds: float, out: Path) -> LoadResult:
    port, uas = free_port(), free_port()
    workdir = out / f"{kind}_r{rate}_{int(time.time() * 1000)}"
    with _Dut(kind, port, uas, workdir) as dut:
        result = sipp_load(
            label=kind, target=f"127.0.0.1:{port}", rate=rate, seconds=seconds, uas_port=uas,
            workdir=workdir, uac_sf=UAC, uas_sf=UAS_LC if kind == "sippy" else None,
            dut_pid=dut.pid,
        )  # fmt: skip
    (workdir / "result.json").write_text(json.dumps(result.as_dict()))
    print(json.dumps(result.as_dict()), flush=True)
    return result


def ramp(kind: str, rates: list[int], seconds: float, out: Path) -> list[LoadResult]:
    """Run ``rates`` in order; stop after the first unclean run above a clean one."""
    results: list[LoadResult] = []
    for rate in rates:
        result = run_one(kind, rate, seconds, out)
        results.append(result)
        if not result.clean and any(r.clean for r in results):
            break
    return results


def _rates(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    p.add_argument("--common-rate", type=int, default=200, help="rate for CPU comparison")
    p.add_argument("--hv-rates", default="300,600,800,900,1000,1100,1200,1400,1500")
    p.add_argument("--sippy-rates", default="200,250,300,350,400")
    p.add_argument("--kam-rates", default="2000,4000,5000,5500,6000")
    p.add_argument("--skip", default="", help="comma-separated DUTs to skip")
    p.add_argument("--out", type=Path, default=Path("/tmp/hv-bench-b2bua"))
    a = p.parse_args(argv)
    skip = set(a.skip.split(","))
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install -y sip-tester)")
        return 2
    plan = {
        "hybridvoice": _rates(a.hv_rates),
        "sippy": _rates(a.sippy_rates),
        "kamailio": _rates(a.kam_rates),
    }
    if shutil.which("kamailio") is None:
        print("kamailio is not installed (apt-get install -y kamailio): skipped")
        skip.add("kamailio")
    if not (VENV / "b2bua").exists():
        print("sippy's b2bua is not in .venv (pip install sippy): skipped")
        skip.add("sippy")
    table: dict[str, dict[str, float | None]] = {}
    for kind, rates in plan.items():
        if kind in skip:
            continue
        common = run_one(kind, a.common_rate, a.seconds, a.out)
        results = ramp(kind, rates, a.seconds, a.out)
        clean = [r for r in results if r.clean]
        best = max(clean, key=lambda r: r.rate) if clean else None
        table[kind] = {
            "max_clean_cps": best.rate if best else 0,
            "cpu_ms_at_max": best.dut_cpu_ms_per_call if best else None,
            "cpu_ms_at_common": common.dut_cpu_ms_per_call,
            "common_clean": 1.0 if common.clean else 0.0,
        }
    print_table(table, a.common_rate)
    (a.out / "summary.json").write_text(json.dumps(table, indent=1))
    return 0


def _ratio(x: float | None, y: float | None) -> str:
    return "-" if not x or not y else f"{x / y:.2f}x"


def print_table(table: dict[str, dict[str, float | None]], common: int) -> None:
    sippy = table.get("sippy", {}).get("max_clean_cps")
    kam = table.get("kamailio", {})
    print()
    at_common = f"ms CPU/call@{common}"
    print(f"{'DUT':<12} {'max clean cps':>13} {'ms CPU/call@max':>16} {at_common:>16} "
          f"{'cps vs sippy':>13} {'CPU vs kamailio':>16}")  # fmt: skip
    for kind, row in table.items():
        cpu_max, cpu_common = row["cpu_ms_at_max"], row["cpu_ms_at_common"]
        print(
            f"{kind:<12} {row['max_clean_cps'] or 0:>13.0f} {cpu_max or 0:>16.3f} "
            f"{cpu_common or 0:>16.3f} {_ratio(row['max_clean_cps'], sippy):>13} "
            f"{_ratio(cpu_max, kam.get('cpu_ms_at_max'))}/"
            f"{_ratio(cpu_common, kam.get('cpu_ms_at_common'))} (max/common)"
        )
    print("goals: >= 5x sippy's clean rate; CPU per call <= 2.5x Kamailio's")


if __name__ == "__main__":
    sys.exit(main())
