"""Shared helpers for SIP benchmarks: SIPp load runs, CPU from /proc, processes by PID.

CPU is utime+stime from ``/proc/PID/stat`` of the DUT and its descendants (all threads),
as in ``../shared/peers/README.md``; never the system-wide counters. Every program is started
here, on 127.0.0.1, and stopped by its PID; every run is bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

TCK = os.sysconf("SC_CLK_TCK")
BUFF = 4194304


def ticks(pid: int) -> int:
    """utime + stime of ``pid`` (all threads), in clock ticks; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return 0
    rest = s[s.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_ticks(pids: Sequence[int]) -> int:
    return sum(ticks(p) for p in pids)


def udp_rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Proc:
    """A program started here; stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )  # fmt: skip
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, grace: float = 8.0) -> int:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()
        return self.popen.returncode

    def wait_for_text(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return True
            if not self.alive():
                return False
            time.sleep(0.05)
        return False


@contextlib.contextmanager
def started(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Proc]:
    proc = Proc(args, log, env)
    try:
        yield proc
    finally:
        proc.stop()


def sipp_last_row(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


@dataclass
class LoadResult:
    """One SIPp load run through a DUT."""

    label: str
    rate: int
    calls: int
    success: int
    failed: int
    uac_retrans: int
    uas_retrans: int
    uas_failed: int
    achieved_cps: float
    dut_cpu_ms_per_call: float | None
    dut_cpu_pct: float | None
    udp_rcvbuf_errors: int
    wall_s: float

    @property
    def clean(self) -> bool:
        return (
            self.success == self.calls and self.failed == 0
            and self.uac_retrans == 0 and self.uas_retrans == 0
        )  # fmt: skip

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "clean": self.clean}


def sipp_load(
    *,
    label: str,
    target: str,
    rate: int,
    seconds: float,
    uas_port: int,
    workdir: Path,
    uac_sf: Path,
    uas_sf: Path | None = None,
    dut_pid: int | None = None,
    service: str = "+31201234567",
    max_wall: float = 65.0,
    extra_uac: Sequence[str] = (),
) -> LoadResult:
    """SIPp uas on ``uas_port`` <- DUT at ``target`` <- SIPp uac at ``rate`` for ``seconds``.

    The uas is started first and stopped with SIGUSR1 (graceful); the uac is bounded by
    ``-timeout``. DUT CPU is sampled over the steady window (first 1.5 s and last 1 s cut).
    ``extra_uac`` is appended to the uac's arguments (e.g. ``-auth_uri``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    calls = int(rate * seconds)
    uas_cmd = [
        "sipp", *(["-sf", str(uas_sf)] if uas_sf else ["-sn", "uas"]), "-i", "127.0.0.1",
        "-p", str(uas_port), "-nostdin", "-buff_size", str(BUFF),
        "-trace_stat", "-stf", str(workdir / "uas.csv"), "-fd", "1",
    ]  # fmt: skip
    uac_cmd = [
        "sipp", "-sf", str(uac_sf), target, "-s", service, "-i", "127.0.0.1",
        "-p", str(free_port()), "-nostdin", "-r", str(rate), "-m", str(calls),
        "-buff_size", str(BUFF), "-timeout", f"{int(max_wall - 5)}s",
        "-trace_stat", "-stf", str(workdir / "uac.csv"), "-fd", "1", *extra_uac,
    ]  # fmt: skip
    (workdir / "cmd.txt").write_text(" ".join(uas_cmd) + "\n" + " ".join(uac_cmd) + "\n")
    uas = Proc(uas_cmd, workdir / "uas.out")
    try:
        time.sleep(0.5)
        pids = descendants(dut_pid) if dut_pid else []
        udp0 = udp_rcvbuf_errors()
        t0 = time.monotonic()
        uac = Proc(uac_cmd, workdir / "uac.out")
        samples: list[tuple[float, int]] = []
        while True:
            samples.append((time.monotonic() - t0, tree_ticks(pids)))
            if not uac.alive():
                break
            if time.monotonic() - t0 > max_wall + 5:
                uac.stop(signal.SIGKILL)
                break
            time.sleep(0.5)
        uac.stop()
        wall = time.monotonic() - t0
        time.sleep(0.5)
    finally:
        uas.stop(signal.SIGUSR1, grace=8.0)
    window = [s for s in samples if 1.5 <= s[0] <= samples[-1][0] - 1.0]
    if len(window) < 2:
        window = samples
    dt = (window[-1][0] - window[0][0]) or 1e-9
    uac_row = sipp_last_row(workdir / "uac.csv")
    uas_row = sipp_last_row(workdir / "uas.csv")
    success = int(uac_row.get("SuccessfulCall(C)", 0) or 0)
    total_s = (samples[-1][1] - samples[0][1]) / TCK
    return LoadResult(
        label=label, rate=rate, calls=calls, success=success,
        failed=int(uac_row.get("FailedCall(C)", 0) or 0),
        uac_retrans=int(uac_row.get("Retransmissions(C)", 0) or 0),
        uas_retrans=int(uas_row.get("Retransmissions(C)", 0) or 0),
        uas_failed=int(uas_row.get("FailedCall(C)", 0) or 0),
        achieved_cps=float(uac_row.get("CallRate(C)", 0) or 0),
        dut_cpu_ms_per_call=round(1000 * total_s / success, 3) if dut_pid and success else None,
        dut_cpu_pct=(
            round(100 * (window[-1][1] - window[0][1]) / TCK / dt, 1) if dut_pid else None
        ),
        udp_rcvbuf_errors=udp_rcvbuf_errors() - udp0, wall_s=round(wall, 1),
    )  # fmt: skip
