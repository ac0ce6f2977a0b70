"""SIP latency of the online service while its API refuses large requests, same process.

The online service (SIP registrar/proxy and the JSON API on one event loop, as in
``hybridvoice up``) runs in a child process on free loopback ports. This process measures the
round trip of SIP OPTIONS over UDP to it (a small blocking UDP client: one request in flight,
every 10 ms), first at rest, then while ``--attackers`` threads send it 60 MB JSON bodies
back to back (Content-Length announced, the body streamed as fast as the socket takes it,
until the server answers), and prints both with their ratio.

``--max-request-bytes`` sets the API's body limit (``[Management] MaxRequestBytes``);
``--with-token`` lets the attackers send the admin token. With both (``--max-request-bytes
134217728 --with-token``) the bodies are read and parsed as before the limit existed: the
figure the issue reported (2.6 ms -> 2.5 s).

    .venv/bin/python benchmarks/api_isolation.py [--samples 300] [--attackers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
BODY = 60 * 1024 * 1024
_OPEN, _CLOSE = b'{"media_bypass_enabled": "', b'"}'
#: a 60 MB JSON object whose one value is a 60 MB string (a bad boolean, as in the issue)
PAYLOAD = memoryview(_OPEN + b"A" * (BODY - len(_OPEN) - len(_CLOSE)) + _CLOSE)
CHUNK = 65536


# --- the server (child process) -------------------------------------------------------------


async def serve(max_body: int) -> None:
    from hybridvoice.online.service import OnlineOptions, OnlineService  # noqa: PLC0415

    service = OnlineService(
        OnlineOptions(sip=[("UDP", HOST, 0)], api_host=HOST, api_port=0, max_request_bytes=max_body)
    )
    service.store.add_domain("contoso.example")
    _, token = service.store.access.tokens.create("bench", "admin")
    await service.start()
    assert service.api is not None
    print(json.dumps({"sip": service.sip_address("UDP")[1], "api": service.api.port,
                      "token": token}), flush=True)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await service.stop()


# --- the SIP client -------------------------------------------------------------------------


def options(sock: socket.socket, port: int, n: int) -> float | None:
    """One OPTIONS, its round trip in ms (None: no answer within 5 s)."""
    local = sock.getsockname()[1]
    branch = secrets.token_hex(8)
    message = (
        f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:bench@{HOST}>;tag={branch}\r\n"
        f"To: <sip:{HOST}:{port}>\r\n"
        f"Call-ID: {branch}@bench\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    sock.sendto(message, (HOST, port))
    deadline = started + 5.0
    while True:
        sock.settimeout(max(0.001, deadline - time.perf_counter()))
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return None
        if branch.encode() in data and data.startswith(b"SIP/2.0 "):
            return (time.perf_counter() - started) * 1000


def measure(port: int, samples: int) -> tuple[list[float], int]:
    """``samples`` OPTIONS round trips (ms) and how many went unanswered."""
    rtts: list[float] = []
    lost = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        for n in range(1, samples + 1):
            rtt = options(sock, port, n)
            if rtt is None:
                lost += 1
            else:
                rtts.append(rtt)
            time.sleep(0.01)
    return rtts, lost


# --- the attackers --------------------------------------------------------------------------


class Attack:
    """Threads that each send 60 MB PUT bodies to the API until told to stop."""

    def __init__(self, port: int, token: str | None, threads: int) -> None:
        self.port, self.token = port, token
        self.stop = threading.Event()
        self.answers: dict[int, int] = {}
        self.sent = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Attack:
        for thread in self._threads:
            thread.start()
        time.sleep(0.2)  # let them get going
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        while not self.stop.is_set():
            status, sent = self._one()
            with self._lock:
                self.answers[status] = self.answers.get(status, 0) + 1
                self.sent += sent

    def _one(self) -> tuple[int, int]:
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        head = (f"PUT /v1/network-config HTTP/1.1\r\nHost: {HOST}\r\n{auth}"
                f"Content-Type: application/json\r\nContent-Length: {BODY}\r\n\r\n")  # fmt: skip
        sent = 0
        with socket.create_connection((HOST, self.port), timeout=30) as conn:
            conn.sendall(head.encode())
            conn.setblocking(False)
            answer = b""
            while sent < BODY and not self.stop.is_set():
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    answer += conn.recv(65536)
                if answer:
                    break
                try:
                    sent += conn.send(PAYLOAD[sent : sent + CHUNK])
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:  # closed by the server
                    break
            conn.setblocking(True)
            with contextlib.suppress(OSError):
                while b"\r\n" not in answer:
                    more = conn.recv(65536)
                    if not more:
                        break
                    answer += more
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
        return status, sent


# --- the run --------------------------------------------------------------------------------


def summary(rtts: list[float]) -> dict[str, float]:
    ordered = sorted(rtts)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3),
            "max": round(ordered[-1], 3), "mean": round(statistics.fmean(ordered), 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--attackers", type=int, default=2)
    parser.add_argument("--max-request-bytes", type=int, default=1 << 20)
    parser.add_argument("--with-token", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: PLC0415

            uvloop.install()
        asyncio.run(serve(args.max_request_bytes))
        return
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve",
         "--max-request-bytes", str(args.max_request_bytes)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        ports = json.loads(child.stdout.readline())
        measure(ports["sip"], 20)  # warm up
        rest, rest_lost = measure(ports["sip"], args.samples)
        token = ports["token"] if args.with_token else None
        with Attack(ports["api"], token, args.attackers) as attack:
            loaded, loaded_lost = measure(ports["sip"], args.samples)
        at_rest, under = summary(rest), summary(loaded)
        print(f"online service, one process: SIP OPTIONS over UDP, {args.samples} samples each; "
              f"API body limit {args.max_request_bytes} bytes, attackers: {args.attackers} x "
              f"60 MB PUT, {'admin token' if token else 'no token'}")  # fmt: skip
        print(f"{'':28} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'lost':>5}")
        print(f"{'at rest':28} {at_rest['p50']:9.3f} {at_rest['p99']:9.3f} "
              f"{at_rest['max']:9.3f} {rest_lost:5}")  # fmt: skip
        print(f"{'while refusing 60 MB bodies':28} {under['p50']:9.3f} {under['p99']:9.3f} "
              f"{under['max']:9.3f} {loaded_lost:5}")  # fmt: skip
        print(
            f"{'ratio (loaded / rest)':28} {under['p50'] / at_rest['p50']:9.2f} "
            f"{under['p99'] / at_rest['p99']:9.2f} {under['max'] / at_rest['max']:9.2f}"
        )
        print(
            f"API answers during the run: {dict(sorted(attack.answers.items()))}, "
            f"{attack.sent / 1e6:.1f} MB of body taken by the sockets (the kernel's buffers "
            "included)"
        )
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
