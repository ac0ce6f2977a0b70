"""CPU per call of the whole chain in two source trees, alternating runs in one session.

Run: ``.venv/bin/python benchmarks/ab_chain.py /work/wt-base . [--rate 150] [--seconds 8]
[--repeats 7] [--auth trusted,digest]``

Each tree runs its own chain process (its own ``benchmarks/chain.py serve``: the online proxy,
edge and mediation of ``hybridvoice up`` in one process, media bypassed, the SIPp uas as the
gateway; see ``benchmarks/chain.py``) from its own ``.venv`` with ``PYTHONPATH`` at its own
``src``, under ``chain.py``'s SIPp uac scenario at one fixed rate, for each ``--auth`` mode
(``trusted``: one INVITE per call; ``digest``: 407, ACK and the INVITE again with
credentials). The trees alternate run after run (order reversed every repeat), ``--repeats``
times per mode; with ``--parallel`` both trees run at the same time, each under its own SIPp
pair (the same machine for each: the ratio's spread is smaller on a shared machine). CPU per
call is utime+stime of the chain process over the run divided by the
successful calls (``_harness.sipp_load``). The machine may be shared: only same-session ratios
mean anything, hence the alternation; the report gives per mode and tree the median CPU per
call (min, max) and the per-repeat ratios last/first with their median and spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import LoadResult, Proc, free_port, sipp_load
from chain import NUMBER, uac_scenario


def run(tree: Path, trust: bool, rate: int, seconds: float, out: Path) -> LoadResult:
    """One chain process of ``tree`` under load at ``rate`` for ``seconds``."""
    uas = free_port()
    label = f"{tree.name}_{'trusted' if trust else 'digest'}"
    workdir = out / f"{label}_r{rate}_{int(time.time() * 1000)}"
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        str(tree / ".venv" / "bin" / "python"), str(tree / "benchmarks" / "chain.py"), "serve",
        "--gateway-port", str(uas), "--state", str(workdir / "state"),
    ]  # fmt: skip
    if trust:
        args.append("--trust")
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONUNBUFFERED": "1"}
    proc = Proc(args, workdir / "chain.out", env=env)
    try:
        if not proc.wait_for_text("ready proxy=", 60):
            tail = (workdir / "chain.out").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{tree}: the chain did not start: {tail}")
        text = (workdir / "chain.out").read_text(errors="replace")
        target = text.split("ready proxy=", 1)[1].split()[0]
        sf = workdir / "uac.xml"
        sf.write_text(uac_scenario(auth=not trust))
        return sipp_load(
            label=label, target=target, rate=rate, seconds=seconds, uas_port=uas,
            workdir=workdir, uac_sf=sf, dut_pid=proc.pid, service=NUMBER,
            extra_uac=[] if trust else ["-auth_uri", f"{NUMBER}@{target}"],
        )  # fmt: skip
    finally:
        proc.stop(grace=15.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trees", type=Path, nargs=2, help="reference tree, then the tree compared")
    p.add_argument("--rate", type=int, default=150)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--auth", default="trusted,digest", help="comma-separated: trusted,digest")
    p.add_argument("--parallel", action="store_true", help="the trees' runs at the same time")
    p.add_argument("--out", type=Path, default=Path("/tmp/hv-bench-ab-chain"))
    a = p.parse_args(argv)
    trees = [t.resolve() for t in a.trees]
    modes = [m for m in a.auth.split(",") if m]
    figures = {(m, t): [] for m in modes for t in trees}  # type: dict[tuple[str, Path], list[float]]
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(a.repeats):
        order = trees if i % 2 == 0 else trees[::-1]
        for mode in modes:
            row: dict[Path, float] = {}
            trust = mode == "trusted"
            if a.parallel:
                with ThreadPoolExecutor(len(order)) as pool:
                    futures = [pool.submit(run, t, trust, a.rate, a.seconds, a.out) for t in order]
                    results = [f.result() for f in futures]
            else:
                results = [run(tree, trust, a.rate, a.seconds, a.out) for tree in order]
            for tree, result in zip(order, results, strict=True):
                print(json.dumps(result.as_dict()), flush=True)
                if result.clean and result.dut_cpu_ms_per_call is not None:
                    figures[(mode, tree)].append(result.dut_cpu_ms_per_call)
                    row[tree] = result.dut_cpu_ms_per_call
            if len(row) == len(trees):
                ratios[mode].append(row[trees[1]] / row[trees[0]])
    how = "at the same time" if a.parallel else "alternating"
    print(f"\nchain at {a.rate} calls/s, {a.seconds:g} s runs, {a.repeats} repeats, trees "
          f"{how}; ratio = {trees[1].name} / {trees[0].name}")  # fmt: skip
    for mode in modes:
        for tree in trees:
            values = figures[(mode, tree)]
            if values:
                med, low, high = statistics.median(values), min(values), max(values)
                print(f"{mode:8s} {tree.name:14s} median {med:.3f} ms/call "
                      f"(min {low:.3f}, max {high:.3f}, n={len(values)})")  # fmt: skip
            else:
                print(f"{mode:8s} {tree.name:14s} no clean run")
        r = ratios[mode]
        if r:
            each, med = " ".join(f"{x:.3f}" for x in r), statistics.median(r)
            print(f"{mode:8s} ratio per repeat: {each}; median "
                  f"{med:.3f} ({min(r):.3f}..{max(r):.3f}, n={len(r)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
