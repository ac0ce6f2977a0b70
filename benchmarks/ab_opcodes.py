"""Bytecode instructions per call of the mediation B2BUA in two source trees: a figure that
does not depend on the machine's load.

Run: ``.venv/bin/python benchmarks/ab_opcodes.py /work/wt-base . [--rate 4] [--seconds 10]
[--top 40] [--chain trusted|digest]``

CPU time on a shared machine moves by several percent from run to run; a difference of 1-3%
between two trees takes many alternating runs to see (``ab_b2bua.py``), and cProfile's
overhead per function call hides it. This counts instead: each tree's ``hybridvoice mediation
serve --no-relay`` runs under ``sys.settrace`` with opcode events, counting every bytecode
instruction executed per code object (a dataclass's generated ``__init__`` by its class),
from after ``READY`` to the end of a SIPp load (``uac_txn.xml``, as ``b2bua.py``) at a low
rate (tracing costs about 50x; at ``--rate`` 4 nothing is retransmitted). The report gives
instructions and Python function calls per call for each tree, then the files and the
functions whose instructions per call differ most. Instructions are not time (a C call or a
frozen dataclass's ``object.__setattr__`` is one instruction), but their count is nearly
the same run after run (within about 0.2%, with the timers that happen to fire): it says
where a tree does more work, and by how much. ``--chain`` counts the whole chain instead
(each tree's ``benchmarks/chain.py serve``, its uac as there).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Proc, free_port, sipp_load
from ab_b2bua import dut_args
from b2bua import MEDIATION_TOML, UAC
from chain import NUMBER, uac_scenario

#: run in the DUT's interpreter: counts instructions per code object between SIGUSR1 and
#: SIGUSR2, then writes them as JSON to $OPCOUNT_OUT
TRACER = r"""
import collections, json, os, runpy, signal, sys
counts, calls = collections.Counter(), collections.Counter()
def start(signum, frame):
    counts.clear(); calls.clear(); sys.settrace(enter)
def enter(frame, event, arg):
    frame.f_trace_opcodes = True
    code = frame.f_code
    key = (code.co_filename, code.co_qualname)
    if code.co_filename == "<string>":  # a dataclass's generated method: name its class
        owner = type(frame.f_locals.get("self"))
        key = ("<string>", f"{owner.__module__}.{owner.__qualname__}.{code.co_name}")
    calls[key] += 1
    def each(frame, event, arg):
        if event == "opcode":
            counts[key] += 1
        return each
    return each
def stop(signum, frame):
    sys.settrace(None)
    rows = [[f, q, n, calls[(f, q)]] for (f, q), n in counts.items()]
    with open(os.environ["OPCOUNT_OUT"], "w") as out:
        json.dump(rows, out)
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.argv = sys.argv[1:]
if sys.argv[0].endswith(".py"):
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def count(tree: Path, rate: int, seconds: float, out: Path, chain: str) -> tuple[Path, int]:
    """Run ``tree``'s DUT traced under load; the counts file and the successful calls."""
    port, uas = free_port(), free_port()
    workdir = out / f"{tree.name}_{int(time.time() * 1000)}"
    workdir.mkdir(parents=True, exist_ok=True)
    tracer = workdir / "tracer.py"
    tracer.write_text(TRACER)
    counts = workdir / "opcodes.json"
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OPCOUNT_OUT": str(counts)}
    python = str(tree / ".venv" / "bin" / "python")
    uac, extra, ready = UAC, [], "READY"
    if chain:  # the tree's own chain.py serve: online proxy -> edge -> mediation
        trust = chain == "trusted"
        args = [str(tree / "benchmarks" / "chain.py"), "serve", "--gateway-port", str(uas),
                "--state", str(workdir / "state"), *(["--trust"] if trust else [])]  # fmt: skip
        uac, ready = workdir / "uac.xml", "ready proxy="
        uac.write_text(uac_scenario(auth=not trust))
    else:
        cfg = workdir / "mediation.toml"
        cfg.write_text(MEDIATION_TOML.format(gw_side=free_port(), uas=uas))
        args = dut_args(tree, cfg, port, uas, None)[2:]
    proc = Proc([python, str(tracer), *args], workdir / "dut.out", env=env)
    try:
        if not proc.wait_for_text(ready, 60):
            raise RuntimeError(f"{tree} did not start: {(workdir / 'dut.out').read_text()[-800:]}")
        target = f"127.0.0.1:{port}"
        if chain:
            target = (workdir / "dut.out").read_text().split(ready, 1)[1].split()[0]
            extra = [] if chain == "trusted" else ["-auth_uri", f"{NUMBER}@{target}"]
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(0.3)
        result = sipp_load(
            label=tree.name, target=target, rate=rate, seconds=seconds, uas_port=uas,
            workdir=workdir, uac_sf=uac, dut_pid=proc.pid, extra_uac=extra,
            service=NUMBER if chain else "+31201234567",
        )  # fmt: skip
        os.kill(proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 20
        while not counts.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.stop(grace=20.0)
    if not result.clean:
        print(f"{tree.name}: not clean (retransmissions or failures): counts include them")
    return counts, result.success


def load(path: Path, calls: int) -> tuple[dict[str, float], dict[str, float], float]:
    """Instructions per call by file and by function, and function calls per call."""
    by_file: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    entered = 0
    for file, name, n, c in json.loads(path.read_text()):
        where = "/".join(Path(file).parts[-2:])
        by_file[where] += n / calls
        by_function[f"{where}:{name}"] += n / calls
        entered += c
    return dict(by_file), dict(by_function), entered / calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("trees", type=Path, nargs=2, help="reference tree, then the tree compared")
    p.add_argument("--rate", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--chain", choices=("trusted", "digest"), default=None,
                   help="count the whole chain (each tree's chain.py serve) instead")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("/tmp/hv-bench-ab-opcodes"))
    a = p.parse_args(argv)
    trees = [t.resolve() for t in a.trees]
    runs = [load(*count(tree, a.rate, a.seconds, a.out, a.chain or "")) for tree in trees]
    (files0, funcs0, calls0), (files1, funcs1, calls1) = runs
    total0, total1 = sum(files0.values()), sum(files1.values())
    ratio = total1 / total0
    print(f"instructions per call: {trees[0].name} {total0:.0f}, {trees[1].name} {total1:.0f} "
          f"(ratio {ratio:.3f}); Python calls per call {calls0:.0f}, {calls1:.0f}")  # fmt: skip
    for title, left, right in (("file", files0, files1), ("function", funcs0, funcs1)):
        print(f"\nby {title}, largest differences first ({trees[0].name}, {trees[1].name}, diff)")
        keys = sorted(set(left) | set(right), key=lambda k: -abs(right.get(k, 0) - left.get(k, 0)))
        for key in keys[: a.top]:
            x, y = left.get(key, 0.0), right.get(key, 0.0)
            print(f"{x:8.0f} {y:8.0f} {y - x:+7.0f}  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
