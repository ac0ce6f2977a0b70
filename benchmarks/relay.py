"""Relayed G.711 calls: hybridvoice's RTP relay against rtpengine (userspace), same run, same load.

Run: ``.venv/bin/python benchmarks/relay.py [--calls 100,300,600] [--duration 15] [--repeats 1]``

The load is ``../shared/peers/rtpengine/rtp_load.py``'s: N calls, each with two endpoints
(A and B) on 127.0.0.1 sending 172-byte RTP (12-byte header + 160 bytes PCMU, 20 ms ptime)
at 50 packets/s each way through the relay; a forked receiver counts what arrives at the
endpoints (epoll), forked senders pace the packets. The relay's CPU is utime+stime of its
process from ``/proc/PID/stat`` over the send window, divided by the packets that arrived.

- hybridvoice: ``benchmarks/relay.py serve`` in its own process (uvloop when installed),
  driven over a small JSON-over-UDP control socket (create N calls with the endpoints'
  addresses as the "SDP" remotes, stats, release).
- rtpengine: ``rtpengine --table=-1`` (userspace forwarding, the recipe of
  ``../shared/peers/rtpengine/start.sh``), driven with ng offer/answer like rtp_load.py.

Each DUT is started fresh for each run and stopped by its PID; runs alternate between the
two; every run is bounded in time. The table reports the median over repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TCK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve()
NG = ("127.0.0.1", 22232)
CALL = tuple[str, int, int, int, int]  # (call id, A endpoint port, B endpoint port, A->, B->)


def ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    r = s[s.rindex(")") + 2 :].split()
    return int(r[11]) + int(r[12])


def udp_rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


# ---------------------------------------------------------------- hybridvoice runner process


def serve(args: argparse.Namespace) -> None:
    """The relay process: a RelayEngine plus a JSON-over-UDP control socket."""
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from hybridvoice.media import Leg  # noqa: PLC0415
    from hybridvoice.net.loop import run, uvloop_available  # noqa: PLC0415
    from hybridvoice.net.relay import RelayEngine  # noqa: PLC0415

    lo, hi = (int(x) for x in args.port_range.split("-"))

    async def main() -> None:
        engine = RelayEngine(
            "127.0.0.1",
            (lo, hi),
            reads_per_wakeup=args.reads,
            sequence_stats=not args.no_stats,
            demux=args.demux,
        )
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        async def handle(req: dict[str, Any]) -> dict[str, Any]:
            if req["cmd"] == "create":
                out = []
                for cid, pa, pb in req["calls"]:
                    call = await engine.create_call(cid)
                    call.set_remote(Leg.A, "127.0.0.1", pa)
                    call.set_remote(Leg.B, "127.0.0.1", pb)
                    out.append([call.local(Leg.A)[1], call.local(Leg.B)[1]])
                return {"ports": out}
            if req["cmd"] == "stats":
                s = engine.stats()
                return {"packets": s.packets, "dropped": s.dropped, "send_errors": s.send_errors}
            if req["cmd"] == "release":
                await engine.close()
                return {"ok": True}
            if req["cmd"] == "quit":
                done.set_result(None)
                return {"ok": True}
            return {"error": "unknown"}

        class Control(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t: Any = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                async def reply() -> None:
                    self.t.sendto(json.dumps(await handle(json.loads(data))).encode(), addr)

                tasks.add(asyncio.ensure_future(reply()))

        tasks: set[asyncio.Future[None]] = set()
        transport, _ = await loop.create_datagram_endpoint(
            Control, local_addr=("127.0.0.1", args.control)
        )
        print(f"ready uvloop={uvloop_available()}", flush=True)
        await done
        await asyncio.sleep(0.1)
        transport.close()

    run(main())


def ctl_cmd(port: int, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(json.dumps(req).encode(), ("127.0.0.1", port))
        data = s.recv(1 << 20)
    finally:
        s.close()
    result: dict[str, Any] = json.loads(data)
    return result


# ---------------------------------------------------------------- rtpengine (ng protocol)


def benc(x: Any) -> bytes:
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(benc(i) for i in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(benc(k) + benc(v) for k, v in sorted(x.items())) + b"e"
    raise TypeError(type(x))


def bdec(b: bytes, i: int = 0) -> tuple[Any, int]:
    c = b[i : i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1 : j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while b[i : i + 1] != b"e":
            v, i = bdec(b, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1 : j + 1 + n], j + 1 + n


class Ng:
    def __init__(self) -> None:
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.settimeout(3.0)
        self.n = 0

    def cmd(self, d: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        cookie = b"%d_%d" % (os.getpid(), self.n)
        self.s.sendto(cookie + b" " + benc(d), NG)
        while True:
            data = self.s.recv(65535)
            ck, _, rest = data.partition(b" ")
            if ck == cookie:
                result: dict[str, Any] = bdec(rest)[0]
                return result


def sdp(port: int, sess: int) -> str:
    return (
        f"v=0\r\no=- {sess} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


def sdp_port(body: bytes) -> int:
    for line in body.decode().split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError("no m=audio")


def setup_rtpengine(n: int, base: int) -> tuple[list[CALL], Callable[[], None]]:
    ng = Ng()
    assert ng.cmd({"command": "ping"}).get("result") == b"pong"
    tag = f"{int(time.time())}"
    calls: list[CALL] = []
    for i in range(n):
        pa, pb = base + 4 * i, base + 4 * i + 2
        cid = f"load-{tag}-{i}"
        opts = {"replace": ["origin", "session-connection"], "ICE": "remove"}
        r = ng.cmd(
            {"command": "offer", "call-id": cid, "from-tag": f"A{i}", "sdp": sdp(pa, i)} | opts
        )
        x_for_b = sdp_port(r["sdp"])
        r = ng.cmd(
            {"command": "answer", "call-id": cid, "from-tag": f"A{i}", "to-tag": f"B{i}"}
            | {"sdp": sdp(pb, i + 100000)}
            | opts
        )
        calls.append((cid, pa, pb, sdp_port(r["sdp"]), x_for_b))

    def teardown() -> None:
        for c in calls:
            ng.cmd({"command": "delete", "call-id": c[0]})

    return calls, teardown


def setup_hybridvoice(n: int, base: int, control: int) -> tuple[list[CALL], Callable[[], None]]:
    calls: list[CALL] = []
    for start in range(0, n, 200):
        chunk: list[tuple[str, int, int]] = [
            (f"c{i}", base + 4 * i, base + 4 * i + 2) for i in range(start, min(n, start + 200))
        ]
        ports = ctl_cmd(control, {"cmd": "create", "calls": chunk})["ports"]
        for (cid, pa, pb), (a_local, b_local) in zip(chunk, ports, strict=True):
            # A sends to the relay's leg-A port (relayed to B), B to the leg-B port.
            calls.append((cid, pa, pb, a_local, b_local))
    return calls, lambda: None


# ---------------------------------------------------------------- load (as rtp_load.py)


def receiver(socks: list[socket.socket], stop_at: float, wfd: int) -> None:
    ep = select.epoll()
    fdmap = {}
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        fdmap[s.fileno()] = s
    cnt = 0
    while time.time() < stop_at:
        for fd, _ in ep.poll(0.2):
            s = fdmap[fd]
            while True:
                try:
                    s.recv(2048)
                except BlockingIOError:
                    break
                cnt += 1
    os.write(wfd, json.dumps({"recv": cnt, "rx_cpu_s": time.process_time()}).encode())
    os._exit(0)


def sender(
    mine: list[tuple[socket.socket, int]],
    pps: int,
    size: int,
    start_at: float,
    stop_at: float,
    wfd: int,
) -> None:
    payload = b"\xff" * (size - 12)
    hdrs: list[list[Any]] = [
        [
            s,
            ("127.0.0.1", dp),
            random.getrandbits(32),
            random.getrandbits(16),
            random.getrandbits(32),
        ]
        for s, dp in mine
    ]
    period = 1.0 / pps
    sent = late = tick = 0
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        due = start_at + tick * period
        if due >= stop_at:
            break
        now = time.time()
        if now < due:
            time.sleep(due - now)
        elif now - due > period:
            late += 1
        for h in hdrs:
            s, dst, ssrc, seq, ts = h
            pkt = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
            s.sendto(pkt, dst)
            h[3] = seq + 1
            h[4] = ts + 160
            sent += 1
        tick += 1
    os.write(wfd, (json.dumps({"sent": sent, "late": late}) + "\n").encode())
    os._exit(0)


def free_base(n: int, start: int) -> int:
    """The first port >= ``start`` from which 4 * ``n`` consecutive loopback ports are free."""
    base = start
    while base + 4 * n < 36000:
        probes: list[socket.socket] = []
        try:
            for p in range(base, base + 4 * n):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            base = p + 1
        finally:
            for t in probes:
                t.close()
    raise RuntimeError("no free endpoint port range below 36000")


def load(
    calls: list[CALL], pid: int, pps: int, size: int, duration: float, senders: int
) -> dict[str, Any]:
    socks: list[tuple[socket.socket, int]] = []
    for _cid, pa, pb, xa, xb in calls:
        for lp, dp in ((pa, xa), (pb, xb)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", lp))
            socks.append((s, dp))
    start_at = time.time() + 0.5
    stop_at = start_at + duration
    rfd, wfd = os.pipe()
    rpid = os.fork()
    if rpid == 0:
        receiver([s for s, _ in socks], stop_at + 1.0, wfd)
    sr, sw = os.pipe()
    spids = []
    for k in range(senders):
        p = os.fork()
        if p == 0:
            sender(socks[k::senders], pps, size, start_at, stop_at, sw)
        spids.append(p)
    while time.time() < start_at:
        time.sleep(0.001)
    rb0 = udp_rcvbuf_errors()
    c0, w0 = ticks(pid), time.time()
    while time.time() < stop_at:
        time.sleep(0.05)
    c1, w1 = ticks(pid), time.time()
    for p in spids:
        os.waitpid(p, 0)
    os.waitpid(rpid, 0)
    sres = [json.loads(x) for x in os.read(sr, 1 << 16).decode().split("\n") if x.strip()]
    rres = json.loads(os.read(rfd, 1 << 16).decode())
    for fd in (rfd, wfd, sr, sw):
        os.close(fd)
    for s, _ in socks:
        s.close()
    sent = sum(r["sent"] for r in sres)
    cpu_s = (c1 - c0) / TCK
    wall = w1 - w0
    recv = rres["recv"]
    return {
        "calls": len(calls),
        "sent": sent,
        "received": recv,
        "loss_pct": 100.0 * (sent - recv) / max(1, sent),
        "relayed_pps": recv / wall,
        "cpu_pct": 100.0 * cpu_s / wall,
        "us_per_pkt": 1e6 * cpu_s / max(1, recv),
        "late_ticks": sum(r["late"] for r in sres),
        "rcvbuf_errors": udp_rcvbuf_errors() - rb0,
    }


# ---------------------------------------------------------------- DUT lifecycles


def stop_pid(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_hybridvoice(n: int, a: argparse.Namespace) -> dict[str, Any]:
    control = 47990
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE),
            "serve",
            "--control",
            str(control),
            "--port-range",
            "42000-47979",
            *a.serve_args.split(),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("ready"):
            raise RuntimeError(f"relay runner did not start: {line!r}")
        calls, _ = setup_hybridvoice(n, free_base(n, a.base_port), control)
        res = load(calls, proc.pid, a.pps, a.size, a.duration, a.senders)
        st = ctl_cmd(control, {"cmd": "stats"})
        res["dut_dropped"] = st["dropped"]
        res["dut_send_errors"] = st["send_errors"]
        res["loop"] = line
        ctl_cmd(control, {"cmd": "quit"})
        proc.wait(5)
    finally:
        stop_pid(proc)
    return res


def run_rtpengine(n: int, a: argparse.Namespace) -> dict[str, Any]:
    exe = shutil.which("rtpengine")
    if exe is None:
        raise RuntimeError("rtpengine not found: apt-get install -y rtpengine-daemon")
    log = open("/tmp/hv_bench_rtpengine.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            exe,
            "--config-file=none",
            "--interface=127.0.0.1",
            f"--listen-ng={NG[0]}:{NG[1]}",
            "--table=-1",
            "--foreground",
            "--log-stderr",
            "--port-min=36000",
            "--port-max=41999",  # 1,500 calls at 4 ports each
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.5)
        if proc.poll() is not None:
            raise RuntimeError("rtpengine exited; see /tmp/hv_bench_rtpengine.log")
        calls, teardown = setup_rtpengine(n, free_base(n, a.base_port))
        res = load(calls, proc.pid, a.pps, a.size, a.duration, a.senders)
        teardown()
    finally:
        stop_pid(proc)
        log.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    sv = sub.add_parser("serve", help="run the hybridvoice relay process (used by the benchmark)")
    sv.add_argument("--control", type=int, required=True)
    sv.add_argument("--port-range", default="42000-47979")
    sv.add_argument("--reads", type=int, default=64)
    sv.add_argument("--no-stats", action="store_true")
    sv.add_argument("--demux", choices=("epoll", "reader"), default=None)
    ap.add_argument("--calls", default="100,300,600")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--pps", type=int, default=50)
    ap.add_argument("--size", type=int, default=172)
    ap.add_argument("--senders", type=int, default=1)
    ap.add_argument("--base-port", type=int, default=20000)
    ap.add_argument("--only", choices=("hybridvoice", "rtpengine"))
    ap.add_argument("--serve-args", default="", help="extra arguments for the relay process")
    ap.add_argument("--json", action="store_true", help="print every run as a JSON line")
    a = ap.parse_args()
    if a.mode == "serve":
        serve(a)
        return
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for n in (int(x) for x in a.calls.split(",")):
        for rep in range(a.repeats):
            order = ["hybridvoice", "rtpengine"] if rep % 2 == 0 else ["rtpengine", "hybridvoice"]
            for who in order:
                if a.only and who != a.only:
                    continue
                res = run_hybridvoice(n, a) if who == "hybridvoice" else run_rtpengine(n, a)
                res["dut"] = who
                results.setdefault((who, n), []).append(res)
                if a.json:
                    print(json.dumps(res), flush=True)
                time.sleep(1.0)

    def med(who: str, n: int, key: str) -> float | None:
        rows = results.get((who, n))
        return statistics.median(r[key] for r in rows) if rows else None

    print(
        f"\n{'calls':>6} {'DUT':<12} {'relayed pkt/s':>13} {'loss %':>8} {'CPU %':>7} "
        f"{'us/pkt':>8} {'ratio':>7}"
    )
    for n in sorted({k[1] for k in results}):
        ref = med("rtpengine", n, "us_per_pkt")
        for who in ("hybridvoice", "rtpengine"):
            if (who, n) not in results:
                continue
            us = med(who, n, "us_per_pkt")
            ratio = f"{us / ref:.2f}x" if us is not None and ref else "-"
            print(
                f"{n:>6} {who:<12} {med(who, n, 'relayed_pps'):>13.0f} "
                f"{med(who, n, 'loss_pct'):>8.3f} {med(who, n, 'cpu_pct'):>7.1f} "
                f"{us:>8.2f} {ratio:>7}"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
