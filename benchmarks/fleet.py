"""The fleet: calls/s of a site of 3 appliance processes against 1, and replication latency
to 3, 16 and 50 appliance processes.

Run: ``.venv/bin/python benchmarks/fleet.py [--rates 40,80,...] [--seconds 8] [--repeats 2]
[--sizes 3,16,50] [--changes 20] [--max-setup-ms 150] [--uacs-per-appliance 1]
[--skip-capacity] [--skip-replication]``

Capacity. :class:`hybridvoice.fleet.up.Fleet` (what ``hybridvoice up --config FLEET.toml``
runs) starts one site of N appliance processes (``hybridvoice appliance serve``) and the
online service in this process; a SIPp ``uas`` is the site's gateway. The load goes straight
to the appliances' edges (over TCP, as the online proxy sends it), ``--uacs-per-appliance``
SIPp uacs per appliance (each its own TCP connection), the rate split evenly
(``tests/interop/scenarios/edge_uac_call.xml``: INVITE, 200, ACK and BYE along the route
set), so the figure is the appliances' own (the online proxy is one process, and
the online tier's own benchmark measures it). Each rate runs ``--seconds``; a rate is
*clean* when every call succeeded and the mean setup time (INVITE to 200) stayed within
``--max-setup-ms`` (TCP: SIPp never retransmits, so an overloaded appliance shows as latency
first); the ramp stops at the first rate that is not. Media is anchored by every mediation
role (the default). N = 1 and N = 3 alternate in each repeat, so both see the same machine.

Replication. A fleet of N appliance processes (sites of up to 16, the original's limit) logs
at info level in JSON; the tenant's media bypass setting is flipped in the online service's
store ``--changes`` times (each a change in the feed every appliance long-polls) and each
appliance's ``media bypass now enabled/disabled`` log line (its timestamp, milliseconds)
against the time of the write gives the latency to that appliance.

Each run also gives the appliance processes' CPU (utime+stime from ``/proc``) per call and
in percent of one core over the run. Prints JSON lines per run and a summary; the machine's
``os.cpu_count()`` and load average are printed first and last (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "net"))

from _harness import TCK, Proc, sipp_last_row, tree_ticks
from ports import free_port, free_port_block

from hybridvoice.cms.fleet_plan import plan_fleet
from hybridvoice.cms.settings_fleet import PORT_STRIDE, parse_fleet
from hybridvoice.fleet.up import Fleet, appliance_command
from hybridvoice.online.models import NetworkConfig

ROOT = Path(__file__).resolve().parents[1]
UAC = ROOT / "tests" / "interop" / "scenarios" / "edge_uac_call.xml"
OUT = Path("/tmp/hybridvoice-bench-fleet")
MEDIA_PORTS = 800
#: SIPp uacs (each its own TCP connection) per appliance edge
UACS = [1]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"cpu_count={os.cpu_count()} loadavg(1m,5m)={one:.2f},{five:.2f}"


def description(sizes: list[int], gateway_port: int, media: int = 40) -> dict[str, Any]:
    count = sum(sizes)
    sites = [
        {"Name": f"Site{n}", "Appliances": size,
         "Gateway": [{"Name": f"gw{n}", "IP": "127.0.0.1", "Port": gateway_port + n,
                      "Protocol": "UDP", "SendSipOptions": False}]}
        for n, size in enumerate(sizes)
    ]  # fmt: skip
    return {
        "Fleet": {"SIPDomains": "contoso.example", "BasePort": free_port_block(PORT_STRIDE * count),
                  "MediaPortStart": free_port_block(media * count),
                  "MediaPortsPerAppliance": media},
        "Online": {"ServiceURL": f"http://127.0.0.1:{free_port()}", "SIPPort": free_port()},
        "Appliance": {"HealthMonitor": {"IntervalSeconds": 30}},
        "Site": sites,
    }  # fmt: skip


def command(extra: list[str]) -> Any:
    def build(config: Path, state: Path) -> list[str]:
        return [*appliance_command(config, state), "--drain-deadline", "5", *extra]

    return build


async def wait_exit(procs: list[Proc], limit: float) -> None:
    deadline = time.monotonic() + limit
    while any(p.alive() for p in procs) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for p in procs:
        p.stop()


async def one_rate(
    fleet: Fleet, rate: int, seconds: float, work: Path, max_setup_ms: float
) -> dict[str, Any]:
    edges = [a.settings.edge_server.external_sip_port for a in fleet.plan.appliances] * UACS[0]
    share = [rate // len(edges) + (1 if i < rate % len(edges) else 0) for i in range(len(edges))]
    procs = []
    work.mkdir(parents=True, exist_ok=True)
    for i, (edge, r) in enumerate(zip(edges, share, strict=True)):
        args = [
            "sipp", f"127.0.0.1:{edge}", "-t", "t1", "-sf", str(UAC), "-s", "+31205550199",
            "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-r", str(r),
            "-m", str(int(r * seconds)), "-buff_size", "4194304", "-timeout", "60s",
            "-trace_stat", "-stf", str(work / f"uac{i}.csv"), "-fd", "1",
        ]  # fmt: skip
        procs.append(Proc(args, work / f"uac{i}.out"))
    assert fleet.children is not None
    pids = [p for a in fleet.plan.appliances if (p := fleet.children.pid(a.name)) is not None]
    started, ticks0 = time.monotonic(), tree_ticks(pids)
    await wait_exit(procs, seconds + 60)
    wall = time.monotonic() - started
    cpu_s = (tree_ticks(pids) - ticks0) / TCK
    rows = [sipp_last_row(work / f"uac{i}.csv") for i in range(len(edges))]
    ok = sum(int(r.get("SuccessfulCall(C)", 0) or 0) for r in rows)
    failed = sum(int(r.get("FailedCall(C)", 0) or 0) for r in rows)
    retrans = sum(int(r.get("Retransmissions(C)", 0) or 0) for r in rows)
    setup = [_ms(r.get("ResponseTime1(C)", "")) for r in rows]
    calls = sum(int(r * seconds) for r in share)
    return {
        "appliances": len(fleet.plan.appliances), "uacs": len(edges), "rate": rate,
        "calls": calls, "ok": ok, "failed": failed,
        "retrans": retrans, "setup_ms_mean": round(statistics.mean(setup), 1) if setup else None,
        "wall_s": round(wall, 1),
        "appliance_cpu_ms_per_call": round(1000 * cpu_s / ok, 2) if ok else None,
        "appliance_cpu_pct": round(100 * cpu_s / wall, 1),
        "clean": ok == calls and failed == 0 and bool(setup) and max(setup) <= max_setup_ms,
    }  # fmt: skip


def _ms(text: str) -> float:
    """SIPp's ``HH:MM:SS:uuuuuu`` as milliseconds."""
    try:
        h, m, s, us = (int(x) for x in text.split(":"))
    except ValueError:
        return 0.0
    return ((h * 60 + m) * 60 + s) * 1000 + us / 1000


async def capacity(
    n: int, rates: list[int], seconds: float, work: Path, max_setup_ms: float
) -> list[dict[str, Any]]:
    gw = free_port()
    work.mkdir(parents=True, exist_ok=True)
    raw = description([n], gw, media=MEDIA_PORTS)
    fleet = Fleet(plan_fleet(parse_fleet(raw)), work / f"fleet{n}", command=command([]))
    uas = Proc(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(gw), "-nostdin",
                "-buff_size", "4194304"], work / f"uas{n}.out")  # fmt: skip
    out: list[dict[str, Any]] = []
    try:
        await fleet.start(timeout=180)
        for rate in rates:
            result = await one_rate(fleet, rate, seconds, work / f"n{n}_r{rate}", max_setup_ms)
            print(json.dumps(result), flush=True)
            out.append(result)
            if not result["clean"]:
                break
            await asyncio.sleep(2)
    finally:
        uas.stop()
        await fleet.stop()
    return out


async def replication(size: int, changes: int, work: Path) -> dict[str, Any]:
    sites = [16] * (size // 16) + ([size % 16] if size % 16 else [])
    raw = description(sites, free_port_block(len(sites)))
    extra = ["--log-level", "info", "--log-format", "json"]
    fleet = Fleet(plan_fleet(parse_fleet(raw)), work / f"rep{size}", command=command(extra))
    samples: list[float] = []
    worst: list[float] = []
    try:
        started = time.monotonic()
        await fleet.start(timeout=60 + 6 * size)
        print(f"# {size} appliance processes ready in {time.monotonic() - started:.1f} s",
              flush=True)  # fmt: skip
        logs = {a.name: fleet.log_of(a.name) for a in fleet.plan.appliances}
        offsets = {name: path.stat().st_size for name, path in logs.items()}
        await asyncio.sleep(2)
        enabled = False
        for _ in range(changes):
            enabled = not enabled
            word = "enabled" if enabled else "disabled"
            config = NetworkConfig(media_bypass_enabled=enabled, internal_subnets=("127.0.0.0/8",))
            written = time.time()
            fleet.store.set_network_config(config)
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 30
            while len(seen) < len(logs) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                for name, path in logs.items():
                    if name in seen:
                        continue
                    with path.open("rb") as f:
                        f.seek(offsets[name])
                        chunk = f.read()
                    for line in chunk.decode(errors="replace").splitlines():
                        if f"media bypass now {word}" in line:
                            ts = json.loads(line)["ts"].replace("Z", "+00:00")
                            seen[name] = datetime.datetime.fromisoformat(ts).timestamp()
                            offsets[name] += len(chunk)
                            break
            latencies = [1000 * (t - written) for t in seen.values()]
            if len(seen) < len(logs):
                print(f"# change not seen by {len(logs) - len(seen)} appliances in 30 s")
            samples += latencies
            worst.append(max(latencies) if latencies else float("nan"))
            await asyncio.sleep(0.5)
    finally:
        await fleet.stop()
    (work / f"rep{size}" / "samples.json").write_text(json.dumps(samples))
    qs = (
        statistics.quantiles(samples, n=100, method="inclusive")
        if len(samples) > 1
        else [float("nan")] * 99
    )
    result = {
        "appliances": size, "changes": changes, "samples": len(samples),
        "p50_ms": round(qs[49], 1), "p99_ms": round(qs[98], 1),
        "max_ms": round(max(samples), 1) if samples else None,
        "every_appliance_p50_ms": round(statistics.median(worst), 1),
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="40,80,120,160,200,240,280,320")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-setup-ms", type=float, default=150.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", default="3,16,50")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--uacs-per-appliance", type=int, default=1)
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-replication", action="store_true")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    UACS[0] = args.uacs_per_appliance
    work = OUT / time.strftime("%Y%m%d-%H%M%S")
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {load()}", flush=True)
    best: dict[int, list[int]] = {1: [], 3: []}
    if not args.skip_capacity:
        for repeat in range(args.repeats):
            for n in (1, 3):
                where = work / f"cap{repeat}"
                runs = await capacity(n, rates, args.seconds, where, args.max_setup_ms)
                clean = [r["rate"] for r in runs if r["clean"]]
                best[n].append(max(clean) if clean else 0)
        print(f"# highest clean rate, 1 appliance: {best[1]}; 3 appliances: {best[3]}")
        if best[1] and min(best[1]) > 0:
            factors = [b3 / b1 for b1, b3 in zip(best[1], best[3], strict=True) if b1]
            print(f"# scaling factor per repeat: {[round(f, 2) for f in factors]}")
    if not args.skip_replication:
        for size in (int(s) for s in args.sizes.split(",")):
            await replication(size, args.changes, work)
    print(f"# done, {load()}; runs under {work}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
