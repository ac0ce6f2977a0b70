"""CPU per call of the mediation B2BUA with the SIP capture off and on, in one session.

Run: ``.venv/bin/python benchmarks/ab_traces.py [--rate 200] [--seconds 8] [--repeats 5]``

The same tree runs ``hybridvoice mediation serve --no-relay`` under the load of
``benchmarks/b2bua.py`` (SIPp uac ``uac_txn.xml`` -> DUT -> SIPp uas, UDP, 127.0.0.1), once with
``[Traces] Capture = false`` and once with the default capture (on; ``MaxCalls`` 1000, so a
run of more calls also evicts), alternating run after run (the order reversed every repeat).
Reports per setting the median CPU per call (utime+stime of the DUT over the run / successful
calls), min and max, and the ratio of capture on to off per repeat (the spread) and of the
medians. Only clean runs (no retransmission) count unless ``--any-run``. Only same-session
ratios mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import LoadResult, Proc, free_port, sipp_load
from ab_b2bua import dut_args
from b2bua import MEDIATION_TOML, UAC

TREE = Path(__file__).resolve().parent.parent
SETTINGS = {"off": "\n[Traces]\nCapture = false\n", "on": "\n[Traces]\nCapture = true\n"}


def run(mode: str, rate: int, seconds: float, out: Path) -> LoadResult:
    port, uas = free_port(), free_port()
    workdir = out / f"capture_{mode}_r{rate}_{int(time.time() * 1000)}"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "mediation.toml"
    cfg.write_text(MEDIATION_TOML.format(gw_side=free_port(), uas=uas) + SETTINGS[mode])
    env = {**os.environ, "PYTHONPATH": str(TREE / "src")}
    proc = Proc(dut_args(TREE, cfg, port, uas, None), workdir / "dut.out", env=env)
    try:
        if not proc.wait_for_text("READY", 30):
            raise RuntimeError(f"{mode} did not start: {(workdir / 'dut.out').read_text()[-800:]}")
        return sipp_load(
            label=f"capture-{mode}", target=f"127.0.0.1:{port}", rate=rate, seconds=seconds,
            uas_port=uas, workdir=workdir, uac_sf=UAC, dut_pid=proc.pid,
        )  # fmt: skip
    finally:
        proc.stop(grace=20.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("/tmp/hv-bench-traces"))
    p.add_argument("--any-run", action="store_true",
                   help="count runs with retransmissions too (a loaded machine)")  # fmt: skip
    a = p.parse_args(argv)
    figures: dict[str, list[float]] = {"off": [], "on": []}
    ratios: list[float] = []
    for i in range(a.repeats):
        order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
        row: dict[str, float] = {}
        for mode in order:
            result = run(mode, a.rate, a.seconds, a.out)
            print(json.dumps(result.as_dict()), flush=True)
            if (result.clean or a.any_run) and result.dut_cpu_ms_per_call is not None:
                figures[mode].append(result.dut_cpu_ms_per_call)
                row[mode] = result.dut_cpu_ms_per_call
        if len(row) == 2:
            ratios.append(row["on"] / row["off"])
    if ratios:
        spread = f"min {min(ratios):.3f}, max {max(ratios):.3f}"
        print(f"ratio on/off per repeat: {' '.join(f'{r:.3f}' for r in ratios)}; median "
              f"{statistics.median(ratios):.3f} ({spread})")  # fmt: skip
    for mode, values in figures.items():
        if values:
            print(f"capture {mode}: median {statistics.median(values):.3f} ms/call (min "
                  f"{min(values):.3f}, max {max(values):.3f}, n={len(values)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
