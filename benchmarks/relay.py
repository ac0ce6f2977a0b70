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
two; every run is bounded in time. The table reports the median over repeats, and the ratio's
spread (lowest and highest of the per-repeat ratios, each run paired with the other DUT's run
of the same repeat).

``--srtp``: SRTP (SDES, AES_CM_128_HMAC_SHA1_80, RFC 3711 / RFC 4568) on leg A, plain RTP on
leg B, so the relay decrypts A -> B and encrypts B -> A. The A endpoints encrypt what they
send with their own key (in the forked senders, outside the DUT's CPU). hybridvoice gets the
keys with ``RelayCall.set_crypto``; rtpengine is offered ``RTP/SAVP`` with A's ``a=crypto``
and ``transport-protocol=RTP/AVP`` toward B (its SDES bridging), the answer comes back
``RTP/SAVP`` with rtpengine's own key. The receivers count packets and bytes (``avg_size``:
182-byte SRTP toward A, 172-byte RTP toward B, 177 on average when both work).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
    from hybridvoice.media import CryptoAttribute, CryptoSuite, Leg, LegCrypto  # noqa: PLC0415
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
                keys = req.get("srtp")  # [A's key, the relay's key toward A], hex
                for cid, pa, pb in req["calls"]:
                    call = await engine.create_call(cid)
                    call.set_remote(Leg.A, "127.0.0.1", pa)
                    call.set_remote(Leg.B, "127.0.0.1", pb)
                    if keys:
                        recv, send = (
                            CryptoAttribute(
                                1, CryptoSuite.AES_CM_128_HMAC_SHA1_80, bytes.fromhex(k)
                            )
                            for k in keys
                        )
                        call.set_crypto(LegCrypto(recv=recv, send=send), None)
                    out.append([call.local(Leg.A)[1], call.local(Leg.B)[1]])
                return {"ports": out}
            if req["cmd"] == "stats":
                s = engine.stats()
                srtp = [0, 0, 0]  # auth failures, replays, errors over live calls
                for live in engine.calls.values():
                    for leg in (live.session.a, live.session.b):
                        for i, count in enumerate(leg.srtp_counts()):
                            srtp[i] += count
                return {
                    "packets": s.packets,
                    "dropped": s.dropped,
                    "send_errors": s.send_errors,
                    "srtp_failures": srtp,
                }
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


def sdp(port: int, sess: int, crypto: bytes | None = None) -> str:
    proto = "RTP/AVP" if crypto is None else "RTP/SAVP"
    body = (
        f"v=0\r\no=- {sess} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    if crypto is not None:
        key = base64.b64encode(crypto).decode()
        body += f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
    return body


def sdp_port(body: bytes) -> int:
    for line in body.decode().split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError("no m=audio")


def setup_rtpengine(
    n: int, base: int, srtp_key: bytes | None = None
) -> tuple[list[CALL], Callable[[], None]]:
    ng = Ng()
    assert ng.cmd({"command": "ping"}).get("result") == b"pong"
    tag = f"{int(time.time())}"
    calls: list[CALL] = []
    for i in range(n):
        pa, pb = base + 4 * i, base + 4 * i + 2
        cid = f"load-{tag}-{i}"
        opts: dict[str, Any] = {"replace": ["origin", "session-connection"], "ICE": "remove"}
        offer = {"command": "offer", "call-id": cid, "from-tag": f"A{i}"}
        offer["sdp"] = sdp(pa, i, srtp_key)
        if srtp_key is not None:
            offer["transport-protocol"] = "RTP/AVP"  # plain toward B: rtpengine bridges SDES
        r = ng.cmd(offer | opts)
        if srtp_key is not None and b"RTP/AVP" not in r["sdp"]:
            raise RuntimeError(f"rtpengine did not offer plain RTP toward B: {r['sdp']!r}")
        x_for_b = sdp_port(r["sdp"])
        r = ng.cmd(
            {"command": "answer", "call-id": cid, "from-tag": f"A{i}", "to-tag": f"B{i}"}
            | {"sdp": sdp(pb, i + 100000)}
            | opts
        )
        if srtp_key is not None and b"a=crypto:" not in r["sdp"]:
            raise RuntimeError(f"rtpengine did not answer A with SDES: {r['sdp']!r}")
        calls.append((cid, pa, pb, sdp_port(r["sdp"]), x_for_b))

    def teardown() -> None:
        for c in calls:
            ng.cmd({"command": "delete", "call-id": c[0]})

    return calls, teardown


def setup_hybridvoice(
    n: int, base: int, control: int, srtp_key: bytes | None = None
) -> tuple[list[CALL], Callable[[], None]]:
    calls: list[CALL] = []
    keys = None if srtp_key is None else [srtp_key.hex(), os.urandom(30).hex()]
    for start in range(0, n, 200):
        chunk: list[tuple[str, int, int]] = [
            (f"c{i}", base + 4 * i, base + 4 * i + 2) for i in range(start, min(n, start + 200))
        ]
        ports = ctl_cmd(control, {"cmd": "create", "calls": chunk, "srtp": keys})["ports"]
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
    cnt = nbytes = 0
    while time.time() < stop_at:
        for fd, _ in ep.poll(0.2):
            s = fdmap[fd]
            while True:
                try:
                    nbytes += len(s.recv(2048))
                except BlockingIOError:
                    break
                cnt += 1
    result = {"recv": cnt, "recv_bytes": nbytes, "rx_cpu_s": time.process_time()}
    os.write(wfd, json.dumps(result).encode())
    os._exit(0)


def sender(
    mine: list[tuple[socket.socket, int, bytes | None]],
    pps: int,
    size: int,
    start_at: float,
    stop_at: float,
    wfd: int,
) -> None:
    from hybridvoice.media import CryptoAttribute, CryptoSuite, SrtpStream  # noqa: PLC0415

    def stream(key: bytes | None) -> SrtpStream | None:
        if key is None:
            return None
        crypto = CryptoAttribute(1, CryptoSuite.AES_CM_128_HMAC_SHA1_80, key)
        return SrtpStream(crypto, outbound=True)

    payload = b"\xff" * (size - 12)
    hdrs: list[list[Any]] = [
        [
            s,
            ("127.0.0.1", dp),
            random.getrandbits(32),
            random.getrandbits(16),
            random.getrandbits(32),
            stream(key),
        ]
        for s, dp, key in mine
    ]
    period = 1.0 / pps
    sent = late = tick = 0
    # SRTP endpoints encrypt their whole run before it starts, so that every tick sends its
    # burst as fast as in the plain runs (the DUT sees the same batching either way)
    ticks_total = int((stop_at - start_at) * pps) + 2
    ready: list[list[bytes] | None] = []
    for h in hdrs:
        s, dst, ssrc, seq, ts, srtp = h
        if srtp is None:
            ready.append(None)
            continue
        ready.append([
            srtp.rtp(
                struct.pack("!BBHII", 0x80, 0, (seq + k) & 0xFFFF, (ts + 160 * k) & 0xFFFFFFFF,
                            ssrc) + payload
            ) or b""
            for k in range(ticks_total)
        ])  # fmt: skip
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
        for h, pre in zip(hdrs, ready, strict=True):
            s, dst, ssrc, seq, ts, _ = h
            if pre is None:
                pkt = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
            else:
                pkt = pre[tick]
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
    calls: list[CALL], pid: int, pps: int, size: int, duration: float, senders: int,
    srtp_key: bytes | None = None,
) -> dict[str, Any]:  # fmt: skip
    socks: list[tuple[socket.socket, int, bytes | None]] = []
    for _cid, pa, pb, xa, xb in calls:
        for lp, dp, key in ((pa, xa, srtp_key), (pb, xb, None)):  # A encrypts with its key
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", lp))
            socks.append((s, dp, key))
    start_at = time.time() + (3.0 if srtp_key else 0.5)  # SRTP: time to encrypt ahead
    stop_at = start_at + duration
    rfd, wfd = os.pipe()
    rpid = os.fork()
    if rpid == 0:
        receiver([s for s, _, _ in socks], stop_at + 1.0, wfd)
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
    for s, _, _ in socks:
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
        "avg_size": rres["recv_bytes"] / max(1, recv),
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
        key = os.urandom(30) if a.srtp else None
        calls, _ = setup_hybridvoice(n, free_base(n, a.base_port), control, key)
        res = load(calls, proc.pid, a.pps, a.size, a.duration, a.senders, key)
        st = ctl_cmd(control, {"cmd": "stats"})
        res["dut_dropped"] = st["dropped"]
        res["dut_send_errors"] = st["send_errors"]
        res["dut_srtp_failures"] = st["srtp_failures"]
        res["dut_packets"] = st["packets"]
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
        key = os.urandom(30) if a.srtp else None
        calls, teardown = setup_rtpengine(n, free_base(n, a.base_port), key)
        res = load(calls, proc.pid, a.pps, a.size, a.duration, a.senders, key)
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
    ap.add_argument("--srtp", action="store_true", help="SRTP on leg A, RTP on leg B")
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

    def spread(n: int) -> str:
        """The lowest and highest ratio of the runs paired by repeat."""
        ours, theirs = results.get(("hybridvoice", n), []), results.get(("rtpengine", n), [])
        pairs = zip(ours, theirs, strict=False)
        ratios = [h["us_per_pkt"] / r["us_per_pkt"] for h, r in pairs if r["us_per_pkt"]]
        return f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"

    mode = "SRTP on leg A, RTP on leg B" if a.srtp else "RTP on both legs"
    print(
        f"\n{mode}\n{'calls':>6} {'DUT':<12} {'relayed pkt/s':>13} {'loss %':>8} {'CPU %':>7} "
        f"{'us/pkt':>8} {'bytes':>6} {'ratio':>7} {'spread':>10}"
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
                f"{us:>8.2f} {med(who, n, 'avg_size'):>6.1f} {ratio:>7} "
                f"{spread(n) if who == 'hybridvoice' else '':>10}"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
