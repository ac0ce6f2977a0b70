"""TURN relay CPU against coturn: ``turnutils_uclient`` load, same run, same load (issue 11).

Run: ``.venv/bin/python benchmarks/turn.py [--clients 10,100] [--messages 1000] [--repeats 3]``

The load is ``../shared/peers/coturn/run_uclient.py``'s: ``turnutils_uclient -m M -n N -l 170
-z 20`` with REST-API credentials (``-W``), ``turnutils_peer`` as the UDP echo peer. Each of
the M clients allocates (with an RTCP allocation: EVEN-PORT and RESERVATION-TOKEN), binds
a channel and sends N messages of 170 bytes every 20 ms; the peer echoes them, so every
message is relayed twice (client -> peer, peer -> client). ``--tcp`` makes the clients talk
to the server over TCP (``uclient -t``; RFC 8656 §3.1), the relayed side staying UDP.

DUTs, each started fresh per run on free loopback ports and stopped by its PID:

- hybridvoice: ``python -m hybridvoice turn serve`` (uvloop when installed);
- coturn: ``turnserver`` with the recipe's flags (``--use-auth-secret``, no TLS/DTLS/CLI).

CPU is utime+stime of the DUT and its descendants from ``/proc/PID/stat`` over the steady
transmit window (from 10 % to 90 % of the messages sent, from uclient's once-a-second
progress lines), divided by the packets relayed in that window (sent + received messages).
Runs alternate between the DUTs (ABBA order over repeats); the table gives the median and
the min..max spread of each and the same-run ratios (ours / coturn's of each repeat).
Loss is uclient's "Total lost packets". Every run is bounded (``timeout 90`` on uclient).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import TCK, Proc, descendants, free_port, tree_ticks, udp_rcvbuf_errors

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
HOST = "127.0.0.1"
SECRET = "bench-turn-secret"
REALM = "bench.test"
PROGRESS = re.compile(r"msz=\d+, tot_send_msgs=(\d+), tot_recv_msgs=(\d+)")
LOST = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\)")
RTT = re.compile(r"Average round trip delay ([\d.]+) ms")
JITTER = re.compile(r"Average jitter ([\d.]+) ms")
TOTAL = re.compile(r"Total transmit time is (\d+)")


def _port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive ports starting at a free one (the relay range)."""
    base = free_port()
    while base + size > 65535:
        base = free_port()
    return base, base + size - 1


def start_ours(port: int, ports: tuple[int, int], tcp: bool, workdir: Path, extra: str) -> Proc:
    args = [
        sys.executable, "-m", "hybridvoice", "turn", "serve", "--secret", SECRET,
        "--listen", f"{HOST}:{port}", "--relay-host", HOST, "--ports", f"{ports[0]}-{ports[1]}",
        "--realm", REALM, "--allow-loopback-peers", "--user-quota", "1000",
        *(["--tcp"] if tcp else []), *extra.split(),
    ]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    proc = Proc(args, workdir / "ours.out", env=env)
    if not proc.wait_for_text("READY", 20):
        proc.stop()
        raise RuntimeError(f"our relay did not start: {(workdir / 'ours.out').read_text()}")
    return proc


def start_coturn(port: int, ports: tuple[int, int], tcp: bool, workdir: Path) -> Proc:
    exe = shutil.which("turnserver")
    if exe is None:
        raise RuntimeError("turnserver not found: apt-get install -y coturn")
    args = [
        exe, "-n", f"--listening-ip={HOST}", f"--listening-port={port}", f"--relay-ip={HOST}",
        f"--min-port={ports[0]}", f"--max-port={ports[1]}", "--no-tls", "--no-dtls", "--no-cli",
        "--use-auth-secret", f"--static-auth-secret={SECRET}", f"--realm={REALM}",
        "--allow-loopback-peers", f"--log-file={workdir / 'turnserver.log'}", "--simple-log",
        f"--pidfile={workdir / 'turnserver.pid'}", *([] if tcp else ["--no-tcp"]),
    ]  # fmt: skip
    proc = Proc(args, workdir / "coturn.out")
    time.sleep(1.5)  # as the recipe's start.sh
    if not proc.alive():
        raise RuntimeError(f"turnserver exited: {(workdir / 'coturn.out').read_text()}")
    return proc


def uclient_load(
    dut: Proc, port: int, peer_port: int, a: argparse.Namespace, log: Path
) -> dict[str, Any]:
    """One bounded uclient run against the DUT on ``port``; CPU sampled over the window."""
    exe = shutil.which("turnutils_uclient")
    if exe is None:
        raise RuntimeError("turnutils_uclient not found: apt-get install -y coturn")
    cmd = [
        "timeout", "90", exe, "-W", SECRET, "-u", "bench", "-e", HOST, "-r", str(peer_port),
        "-p", str(port), "-L", HOST, "-m", str(a.clients_now), "-n", str(a.messages),
        "-l", str(a.size), "-z", str(a.interval), *(["-t"] if a.tcp else []), HOST,
    ]  # fmt: skip
    pids = descendants(dut.pid)
    samples: list[tuple[float, int]] = []
    progress: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), tree_ticks(pids)))
            done.wait(0.25)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    rcv0 = udp_rcvbuf_errors()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, bufsize=1, start_new_session=True,
    )  # fmt: skip
    out: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        m = PROGRESS.search(line)
        if m:
            progress.append((time.monotonic(), int(m.group(1)), int(m.group(2))))
    rc = proc.wait()
    wall = time.monotonic() - t0
    samples.append((time.monotonic(), tree_ticks(pids)))
    done.set()
    thread.join()
    text = "".join(out)
    log.write_text(" ".join(cmd) + "\n" + text)
    res: dict[str, Any] = {
        "rc": rc, "wall_s": round(wall, 1), "udp_rcvbuf_errors": udp_rcvbuf_errors() - rcv0,
        "cpu_s_total": round((samples[-1][1] - samples[0][1]) / TCK, 2),
    }  # fmt: skip
    sent = recv = 0
    if progress:
        sent, recv = progress[-1][1], progress[-1][2]
    lost = LOST.findall(text)
    res["sent"], res["received"] = sent, recv
    res["lost"] = int(lost[-1][0]) if lost else None
    res["loss_pct"] = float(lost[-1][1]) if lost else None
    rtt, jitter = RTT.findall(text), JITTER.findall(text)
    res["rtt_ms"] = float(rtt[-1]) if rtt else None
    res["jitter_ms"] = float(jitter[-1]) if jitter else None
    total = max((p[1] for p in progress), default=0)
    lo = [p for p in progress if p[1] >= 0.1 * total]
    hi = [p for p in progress if p[1] >= 0.9 * total]
    if lo and hi and hi[0][0] > lo[0][0]:
        first, last = lo[0], hi[0]

        def at(t: float) -> int:
            before = [s for s in samples if s[0] <= t]
            return (before[-1] if before else samples[0])[1]

        dt = last[0] - first[0]
        relayed = (last[1] - first[1]) + (last[2] - first[2])
        cpu = (at(last[0]) - at(first[0])) / TCK
        res.update(
            window_s=round(dt, 1),
            relayed_pps=round(relayed / dt),
            cpu_pct=round(100 * cpu / dt, 1),
            us_per_pkt=round(1e6 * cpu / max(1, relayed), 2),
        )
    return res


def one_run(who: str, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ports = _port_range(a.relay_ports)
    peer_port = free_port()
    peer = Proc(["turnutils_peer", "-L", HOST, "-p", str(peer_port)], workdir / "peer.out")
    try:
        time.sleep(0.3)
        if who == "hybridvoice":
            dut = start_ours(port, ports, a.tcp, workdir, a.serve_args)
        else:
            dut = start_coturn(port, ports, a.tcp, workdir)
        try:
            res = uclient_load(dut, port, peer_port, a, workdir / "uclient.log")
        finally:
            dut.stop(signal.SIGTERM, grace=8.0)
        if who == "hybridvoice":
            stats = [
                line for line in (workdir / "ours.out").read_text().splitlines()
                if line.startswith("STATS ")
            ]  # fmt: skip
            if stats:
                counters = json.loads(stats[-1][6:])
                res["dut_send_errors"] = counters.get("send_errors", 0)
                res["dut_relayed"] = counters.get("to_peer", 0) + counters.get("from_peer", 0)
    finally:
        peer.stop()
    res["dut"] = who
    res["clients"] = a.clients_now
    res["tcp"] = a.tcp
    res["dir"] = str(workdir)
    return res


def _fmt(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def report(results: dict[tuple[str, int], list[dict[str, Any]]], clients: list[int]) -> None:
    print(
        f"\n{'clients':>7} {'DUT':<12} {'runs':>4} {'relayed pkt/s':>13} {'lost':>6} "
        f"{'CPU %':>16} {'us/pkt median (min..max)':>26}"
    )
    for n in clients:
        for who in ("hybridvoice", "coturn"):
            rows = [r for r in results.get((who, n), []) if "us_per_pkt" in r]
            if not rows:
                continue
            lost = sum(r["lost"] or 0 for r in rows)
            print(
                f"{n:>7} {who:<12} {len(rows):>4} "
                f"{statistics.median(r['relayed_pps'] for r in rows):>13.0f} {lost:>6} "
                f"{_fmt([r['cpu_pct'] for r in rows], 1):>16} "
                f"{_fmt([r['us_per_pkt'] for r in rows]):>26}"
            )
        ours = results.get(("hybridvoice", n), [])
        theirs = results.get(("coturn", n), [])
        ratios = [
            o["us_per_pkt"] / t["us_per_pkt"]
            for o, t in zip(ours, theirs, strict=False)
            if "us_per_pkt" in o and "us_per_pkt" in t and t["us_per_pkt"]
        ]
        if ratios:
            print(
                f"{n:>7} ratio ours/coturn, same repeat: {_fmt(ratios)}x "
                f"[{', '.join(f'{r:.2f}' for r in ratios)}]"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", default="10", help="uclient -m, comma-separated")
    ap.add_argument("--messages", type=int, default=1000, help="uclient -n")
    ap.add_argument("--size", type=int, default=170, help="uclient -l")
    ap.add_argument("--interval", type=int, default=20, help="uclient -z (ms)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tcp", action="store_true", help="clients over TCP (uclient -t)")
    ap.add_argument("--relay-ports", type=int, default=1000, help="size of the relay range")
    ap.add_argument("--only", choices=("hybridvoice", "coturn"))
    ap.add_argument("--serve-args", default="", help="extra arguments for `turn serve`")
    ap.add_argument("--json", action="store_true", help="print every run as a JSON line")
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    root = a.workdir or Path(tempfile.mkdtemp(prefix="hv-bench-turn-"))
    clients = [int(x) for x in a.clients.split(",")]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for n in clients:
        a.clients_now = n
        for rep in range(a.repeats):
            order = ["hybridvoice", "coturn"] if rep % 2 == 0 else ["coturn", "hybridvoice"]
            for who in order:
                if a.only and who != a.only:
                    continue
                res = one_run(who, a, root / f"{who}_m{n}_r{rep}")
                res["repeat"] = rep
                results.setdefault((who, n), []).append(res)
                if a.json:
                    print(json.dumps(res), flush=True)
                time.sleep(1.0)
    print(f"\nruns in {root}; load: uclient -m N -n {a.messages} -l {a.size} -z {a.interval}"
          f"{' -t' if a.tcp else ''}")  # fmt: skip
    report(results, clients)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
