"""Registrations/s and calls/s through one online instance: SQLite against etcd, and SQLite on
this tree against SQLite on another tree (``--base``: main's ``src``), all in one run.

Run: ``.venv/bin/python benchmarks/online_store.py [--seconds 10] [--repeats 3] [--base DIR]``

The DUT is the online service of ``hybridvoice up`` (:meth:`hybridvoice.app.Lab.start_online`:
registrar, proxy, API, the lab tenant with alice and bob) in a process of its own, uvloop,
started fresh for each run and stopped by PID:

- ``sqlite``: the tenant in SQLite (in memory), as ``hybridvoice up``;
- ``etcd``: the tenant, registrations and tokens on a 3-member etcd cluster on loopback
  (``hybridvoice online serve --etcd``: :mod:`hybridvoice.online.store_kv`), which this
  benchmark starts (``tests/store/etcd_cluster.py``) and stops by PID;
- ``base-sqlite`` (with ``--base``): ``sqlite`` on the other tree's code.

Loads (SIPp over UDP, closed loop: ``-l`` calls in flight at most, as fast as the DUT answers,
for ``--seconds``; at most 20 registrations or 50 calls in flight):

- registrations: alice REGISTERs again and again (401, then 200 with digest; one contact, so
  every REGISTER rewrites one binding: on etcd, one binding key under its lease);
- calls: alice calls bob (INVITE, 407, INVITE with credentials, 180/200, ACK, BYE through the
  record-routing proxy), bob registered once, his calls answered by a SIPp UAS.

Each figure: successful operations per second over the run, and the DUT's CPU (utime+stime of
its process tree, all threads: on etcd the bridge's thread too) per operation. The table gives
the median and the range over ``--repeats`` runs; the order of the DUTs alternates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _harness import TCK, Proc, descendants, free_port, sipp_last_row, tree_ticks

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "interop" / "scenarios"
DOMAIN = "contoso.example"
PASSWORD = "hybridvoice"


def _settings(path: Path) -> tuple[int, int]:
    """Lab settings on free ports, MD5 challenges (SIPp 3.6), no failure limits."""
    sys.path.insert(0, str(ROOT / "tests" / "net"))
    from chain_harness import settings_on_free_ports  # noqa: PLC0415

    from hybridvoice.cms.template import render_settings  # noqa: PLC0415

    settings = settings_on_free_ports(
        Online={"DigestAlgorithms": "MD5", "AuthFailureLimit": 0, "SIPProtocol": "TCP"}
    )
    path.write_text(render_settings(settings))
    return settings.online.sip_port, settings.management.port


def _serve(config: Path, etcd: list[str]) -> None:
    """The DUT process (``serve`` subcommand): on the tree of its PYTHONPATH."""
    import uvloop  # noqa: PLC0415

    from hybridvoice.app import Lab  # noqa: PLC0415
    from hybridvoice.cms.settings import load_settings  # noqa: PLC0415

    settings = load_settings(config)

    async def main() -> None:
        if etcd:
            from rich.console import Console  # noqa: PLC0415

            from hybridvoice.online_serve import run_online  # noqa: PLC0415

            await run_online(settings, None, etcd=tuple(etcd), console=Console(), lab_users=True)
            return
        lab = Lab(settings, None, lab_gateway=False, lab_users=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await lab.start_online()
        print("ready", flush=True)
        try:
            await stop.wait()
        finally:
            await lab.stop()

    uvloop.install()
    asyncio.run(main())


def _sipp(target: int, port: int, scenario: str, work: Path, name: str, *extra: str) -> Proc:
    args = [
        "sipp", f"127.0.0.1:{target}", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
        "-p", str(port), "-nostdin", "-buff_size", "4194304", "-key", "domain", DOMAIN,
        "-ap", PASSWORD, "-trace_stat", "-stf", str(work / f"{name}.csv"), "-fd", "1", *extra,
    ]  # fmt: skip
    return Proc(args, work / f"{name}.out")


def _count(work: Path, name: str, column: str) -> int:
    return int(sipp_last_row(work / f"{name}.csv").get(column, 0) or 0)


def _measure(proc: Proc, dut: int, seconds: float, work: Path, name: str) -> dict[str, float]:
    """Operations done between two rows of SIPp's statistics (written every second)."""
    pids = descendants(dut)
    first = _count(work, name, "SuccessfulCall(C)")
    failed0 = _count(work, name, "FailedCall(C)")
    t0, c0 = time.monotonic(), tree_ticks(pids)
    time.sleep(seconds)
    wall, cpu = time.monotonic() - t0, (tree_ticks(pids) - c0) / TCK
    done = _count(work, name, "SuccessfulCall(C)") - first
    failed = _count(work, name, "FailedCall(C)") - failed0
    proc.stop()
    return {
        "per_s": round(done / wall, 1),
        "cpu_ms": round(1000 * cpu / done, 3) if done else None,
        "failed": failed,
    }


def _run(dut_name: str, src: Path, etcd: list[str], seconds: float, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "settings.toml"
    sip_port, _ = _settings(config)
    env = {**os.environ, "PYTHONPATH": f"{src}:{ROOT / 'benchmarks'}"}
    env["XDG_CONFIG_HOME"] = str(work / "config")  # the saved admin token stays here
    args = [sys.executable, __file__, "serve", "--config", str(config)]
    for member in etcd:
        args += ["--etcd", member]
    dut = Proc(args, work / "dut.log", env)
    try:
        if not dut.wait_for_text("ready", 60):
            raise RuntimeError(f"{dut_name} did not start: {dut.log.read_text()[-2000:]}")
        time.sleep(0.5)
        reg = _sipp(sip_port, free_port(), "chain_register.xml", work, "reg",
                    "-key", "user", "alice", "-au", "alice", "-auth_uri", DOMAIN,
                    "-r", "5000", "-l", "20", "-m", "10000000")  # fmt: skip
        time.sleep(1.0)  # warm-up, then measure
        registrations = _measure(reg, dut.pid, seconds, work, "reg")
        bob = free_port()
        one = _sipp(sip_port, bob, "chain_register.xml", work, "bob", "-key", "user", "bob",
                    "-au", "bob", "-auth_uri", DOMAIN, "-m", "1")  # fmt: skip
        one.popen.wait(30)
        one.stop()
        if _count(work, "bob", "SuccessfulCall(C)") != 1:
            raise RuntimeError(f"{dut_name}: bob did not register: {one.log.read_text()[-2000:]}")
        uas_args = ["sipp", "-sf", str(SCENARIOS / "chain_uas.xml"), "-i", "127.0.0.1",
                    "-p", str(bob), "-nostdin", "-buff_size", "4194304"]  # fmt: skip
        uas = Proc(uas_args, work / "uas.out")
        try:
            time.sleep(0.5)
            calls = _sipp(sip_port, free_port(), "chain_uac_auth_call.xml", work, "calls",
                          "-s", "bob", "-key", "user", "alice", "-au", "alice",
                          "-auth_uri", f"bob@{DOMAIN}", "-r", "5000", "-l", "50",
                          "-m", "10000000")  # fmt: skip
            time.sleep(1.0)
            call_figures = _measure(calls, dut.pid, seconds, work, "calls")
        finally:
            uas.stop(signal.SIGKILL)
    finally:
        dut.stop()
    return {"dut": dut_name, "registrations": registrations, "calls": call_figures}


def _summary(runs: list[dict]) -> list[str]:
    lines = ["| DUT | registrations/s | CPU ms/registration | calls/s | CPU ms/call |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in dict.fromkeys(r["dut"] for r in runs):
        mine = [r for r in runs if r["dut"] == name]
        cells = []
        for load in ("registrations", "calls"):
            for field in ("per_s", "cpu_ms"):
                values = [r[load][field] for r in mine if r[load][field] is not None]
                if not values:
                    cells.append("-")
                    continue
                cells.append(f"{statistics.median(values):g} ({min(values):g}-{max(values):g})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--etcd", action="append", default=[])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", type=Path, help="another tree's src (e.g. main's)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results here")
    args = parser.parse_args()
    if args.command == "serve":
        _serve(args.config, args.etcd)
        return
    sys.path.insert(0, str(ROOT / "tests" / "store"))
    sys.path.insert(0, str(ROOT / "tests" / "net"))
    from etcd_cluster import running_cluster  # noqa: PLC0415

    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hv-online-bench-") as tmp:
        work = Path(tmp)
        (work / "etcd").mkdir()
        with running_cluster(work / "etcd") as cluster:
            duts = [("sqlite", ROOT / "src", []), ("etcd", ROOT / "src", cluster.endpoints)]
            if args.base is not None:
                duts.append(("base-sqlite", args.base.resolve(), []))
            for repeat in range(args.repeats):
                order = duts if repeat % 2 == 0 else duts[::-1]
                for name, src, etcd in order:
                    result = _run(name, src, etcd, args.seconds, work / f"{name}-{repeat}")
                    print(json.dumps(result), flush=True)
                    runs.append(result)
    print(f"cores: {os.cpu_count()}, {args.seconds:g} s per load, {args.repeats} repeats")
    print("\n".join(_summary(runs)))
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
