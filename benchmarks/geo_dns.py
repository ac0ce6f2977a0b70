"""Geo-DNS throughput: the core alone, and ``hybridvoice dns serve`` over UDP on loopback.

Run: ``.venv/bin/python benchmarks/geo_dns.py [--queries 20000] [--window 32]``

1. The core (:class:`hybridvoice.mediation.geo_dns.GeoDns`) in this process: answers/s for
   the seed's policy (Amsterdam 4 addresses, Seattle 3), A queries with an EDNS Client Subnet
   option alternating between the two sites' subnets.
2. The responder as its own process (``python -m hybridvoice dns serve``, uvloop when
   installed) on a free 127.0.0.1 port, stopped by its PID: one UDP socket keeps ``--window``
   queries in flight; answers/s, the share answered, and the server's CPU seconds from
   ``/proc/PID/stat`` (utime+stime). Every answer is checked against the site's addresses.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.edns
import dns.message

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "net"))
from geo_dns_seed import AMSTERDAM, NAME, SEATTLE, SEED_TOML, seed_raw
from ports import free_port

from hybridvoice.cms.settings_geo_dns import parse_geo_dns
from hybridvoice.mediation.geo_dns import GeoDns, policy_from_settings

TCK = os.sysconf("SC_CLK_TCK")


def queries() -> list[tuple[bytes, list[str]]]:
    made = []
    for subnet, expected in (("192.168.1.0/24", AMSTERDAM), ("10.10.1.0/24", SEATTLE)):
        ecs = dns.edns.ECSOption.from_text(subnet)
        query = dns.message.make_query(NAME, "A", use_edns=0, options=[ecs])
        made.append((query.to_wire(), sorted(expected)))
    return made


def core_rate(count: int, *, cached: bool) -> float:
    """Answers/s of the core: from its cache (the same questions again) or computed each time
    (a new core's first answer: parse, decide, write with dnslib)."""
    core = GeoDns(policy_from_settings(parse_geo_dns(seed_raw())))
    made = queries()
    answer = core.answer if cached else core._answer
    start = time.perf_counter()
    for i in range(count):
        answer(made[i % 2][0], "127.0.0.1", False)
    return count / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TCK


def server_rate(count: int, window: int) -> tuple[float, float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "geo.toml"
        policy.write_text(SEED_TOML)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hybridvoice", "dns", "serve", str(policy),
             "--listen", f"127.0.0.1:{port}", "--no-tcp"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("READY")
            made = queries()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(("127.0.0.1", port))
            sock.settimeout(5.0)
            cpu0, start = cpu_seconds(proc.pid), time.perf_counter()
            sent = answered = 0
            while sent < min(window, count):
                sock.send(made[sent % 2][0])
                sent += 1
            checked: set[bytes] = set()  # answers (after the ID) parsed and checked once
            while answered < sent:
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    break
                if data[2:] not in checked:
                    reply = dns.message.from_wire(data)
                    got = sorted(rr.to_text() for rrset in reply.answer for rr in rrset)
                    assert got in (sorted(AMSTERDAM), sorted(SEATTLE)), got
                    checked.add(data[2:])
                answered += 1
                if sent < count:
                    sock.send(made[sent % 2][0])
                    sent += 1
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return answered / elapsed, answered / count, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--window", type=int, default=32)
    args = parser.parse_args()
    fresh, cached = core_rate(args.queries, cached=False), core_rate(args.queries, cached=True)
    print(f"core: {fresh:,.0f} answers/s computed, {cached:,.0f} answers/s from its cache")
    rate, share, cpu = server_rate(args.queries, args.window)
    print(
        f"dns serve over UDP: {rate:,.0f} answers/s, {share:.1%} answered, "
        f"server CPU {cpu:.2f} s for {args.queries} queries (window {args.window})"
    )


if __name__ == "__main__":
    main()
