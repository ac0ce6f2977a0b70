"""CPU per call of the mediation B2BUA in two source trees, alternating runs in one session.

Run: ``.venv/bin/python benchmarks/ab_b2bua.py /work/wt-base . [--rate 200] [--seconds 8]
[--repeats 5] [--profile] [--records]`` (``--records``: each DUT writes its call records to
SQLite, as an appliance does)

Each tree runs its own ``hybridvoice mediation serve --no-relay`` (from its own ``.venv``; a tree
before the ``serve`` command runs ``python -m hybridvoice.mediation.role``) under the load of
``benchmarks/b2bua.py`` (SIPp uac ``uac_txn.xml`` -> DUT -> SIPp uas, UDP, 127.0.0.1) at one
fixed rate, the trees alternating run after run (order reversed every repeat), ``--repeats``
times; with ``--parallel`` the trees run at the same time, each under its own SIPp pair.
The machine may be shared:
only same-session ratios mean anything, hence the alternation; the report gives per tree the
median CPU per call (utime+stime of the DUT over the run / successful calls), min and max, and
the ratio of the medians to the first tree. ``--profile`` runs each DUT once under cProfile and
prints the functions whose own time per call differs most between the trees (cProfile about
doubles the CPU: use it for where the time goes, not for figures).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import LoadResult, Proc, free_port, sipp_load
from b2bua import MEDIATION_TOML, UAC


def dut_args(
    tree: Path, cfg: Path, port: int, uas: int, profile: Path | None, records: Path | None = None
) -> list[str]:
    python = str(tree / ".venv" / "bin" / "python")
    prefix = [python] if profile is None else [python, "-m", "cProfile", "-o", str(profile)]
    has_serve = "def mediation" in (tree / "src" / "hybridvoice" / "cli.py").read_text()
    role = ["-m", "hybridvoice", "mediation", "serve"] if has_serve else [
        "-m", "hybridvoice.mediation.role"]  # fmt: skip
    rest = ["--config", str(cfg), "--edge", f"udp:127.0.0.1:{port}",
            "--edge-target", f"udp:127.0.0.1:{uas}", "--no-relay"]  # fmt: skip
    if records is not None:  # every call written to SQLite, as an appliance does
        rest += ["--records", str(records)]
    return prefix + role + rest


def run(
    tree: Path, rate: int, seconds: float, out: Path, profile: Path | None, records: bool = False
) -> LoadResult:
    port, uas = free_port(), free_port()
    workdir = out / f"{tree.name}_r{rate}_{int(time.time() * 1000)}"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "mediation.toml"
    cfg.write_text(MEDIATION_TOML.format(gw_side=free_port(), uas=uas))
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}  # (a tree may borrow a .venv)
    db = workdir / "calls.db" if records else None
    proc = Proc(dut_args(tree, cfg, port, uas, profile, db), workdir / "dut.out", env=env)
    try:
        if not proc.wait_for_text("READY", 30):
            raise RuntimeError(f"{tree} did not start: {(workdir / 'dut.out').read_text()[-800:]}")
        return sipp_load(
            label=tree.name, target=f"127.0.0.1:{port}", rate=rate, seconds=seconds,
            uas_port=uas, workdir=workdir, uac_sf=UAC, dut_pid=proc.pid,
        )  # fmt: skip
    finally:
        proc.stop(grace=20.0)


def compare_profiles(files: list[Path], calls: list[int], top: int) -> None:
    """Own time per call of each function, the trees side by side, biggest differences first."""
    per: list[dict[str, float]] = []
    for path, n in zip(files, calls, strict=True):
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        table: dict[str, float] = {}
        for (file, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.items():
            key = f"{Path(file).name}:{name}"
            table[key] = table.get(key, 0.0) + 1e6 * tt / max(n, 1)
        per.append(table)
    totals = [sum(t.values()) for t in per]
    print("total own us/call: " + "  ".join(f"{t:.1f}" for t in totals))
    keys = set().union(*per)
    rows = sorted(keys, key=lambda k: -abs(per[-1].get(k, 0.0) - per[0].get(k, 0.0)))
    for key in rows[:top]:
        values = "  ".join(f"{t.get(key, 0.0):8.2f}" for t in per)
        print(f"{values}  {per[-1].get(key, 0.0) - per[0].get(key, 0.0):+8.2f}  {key}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trees", type=Path, nargs="+", help="source trees, the first is the reference")
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--parallel", action="store_true", help="the trees' runs at the same time")
    p.add_argument("--profile", action="store_true", help="one cProfile run per tree instead")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path("/tmp/hv-bench-ab"))
    p.add_argument("--records", action="store_true", help="the DUTs write call records")
    a = p.parse_args(argv)
    trees = [t.resolve() for t in a.trees]
    if a.profile:
        files, calls = [], []
        for i, tree in enumerate(trees):
            stats = a.out / f"profile_{i}_{tree.name}.pstats"
            result = run(tree, a.rate, a.seconds, a.out, stats, a.records)
            print(json.dumps(result.as_dict()), flush=True)
            files.append(stats)
            calls.append(result.success)
        compare_profiles(files, calls, a.top)
        return 0
    figures: dict[Path, list[float]] = {tree: [] for tree in trees}
    ratios: list[float] = []
    for i in range(a.repeats):
        order = trees if i % 2 == 0 else trees[::-1]
        if a.parallel:  # every tree under load at the same time: the same machine for each
            with ThreadPoolExecutor(len(order)) as pool:
                futures = [
                    pool.submit(run, t, a.rate, a.seconds, a.out, None, a.records) for t in order
                ]
                results = dict(zip(order, [f.result() for f in futures], strict=True))
        else:
            results = {tree: run(tree, a.rate, a.seconds, a.out, None, a.records) for tree in order}
        row = {}
        for tree in trees:
            result = results[tree]
            print(json.dumps(result.as_dict()), flush=True)
            if result.clean and result.dut_cpu_ms_per_call is not None:
                figures[tree].append(result.dut_cpu_ms_per_call)
                row[tree] = result.dut_cpu_ms_per_call
        if len(row) == len(trees):
            ratios.append(row[trees[-1]] / row[trees[0]])
    if ratios:
        print(f"ratio last/first per repeat: {' '.join(f'{r:.3f}' for r in ratios)}; median "
              f"{statistics.median(ratios):.3f}")  # fmt: skip
    ref = statistics.median(figures[trees[0]]) if figures[trees[0]] else None
    for tree, values in figures.items():
        if not values:
            print(f"{tree}: no clean run")
            continue
        median = statistics.median(values)
        ratio = f"{median / ref:.3f}" if ref else "-"
        print(f"{tree}: median {median:.3f} ms/call (min {min(values):.3f}, max {max(values):.3f},"
              f" n={len(values)}), ratio to the first {ratio}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
