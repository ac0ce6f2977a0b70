"""Helpers for interop tests: real programs on loopback with free ports, started here and
stopped by PID, every run bounded in time (CONVENTIONS.md). Imported by name (``from
interop_programs import ...``), never as ``conftest``: with several conftest.py files in one
run, ``conftest`` names whichever was imported last.

A missing binary skips the test with the reason, except in CI (``CI=true``), where it is a
failure: CI must not pass by not running the interop tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from ports import free_port

__all__ = [
    "BIND_TIMEOUT", "SCENARIOS", "Program", "bound", "free_port", "need_binary", "running",
    "sipp_stats", "wait_bound", "wait_bound_sync",
]  # fmt: skip

SCENARIOS = Path(__file__).parent / "scenarios"
#: how long a program started by a test may take to bind its port: generous (a loaded
#: 2-core machine starts a program in milliseconds, a starved one in seconds); the wait
#: ends as soon as the port is bound
BIND_TIMEOUT = 60.0
#: /proc/PID/net/tcp's state of a listening socket
_LISTEN = "0A"


def need_binary(name: str, package: str) -> str:
    """The path of ``name``; skip (fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": required in CI", pytrace=False)
        pytest.skip(message)
    return path


async def run_logged(args: Sequence[str], log: Path, timeout: float = 45) -> tuple[int, str]:
    """Run ``args`` to its end (killed after ``timeout`` seconds), stdout and stderr together;
    the command line and its output are written to ``log``. Returns (exit code, output)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    text = out.decode(errors="replace")
    log.write_text(" ".join(args) + "\n" + text)
    return process.returncode if process.returncode is not None else -1, text


class Program:
    """A program started by a test; stopped by its PID (never by name)."""

    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.args = list(args)
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM the PID, SIGKILL it after ``grace`` seconds; return the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        self._out.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running(args: Sequence[str], log: Path) -> Iterator[Program]:
    program = Program(args, log)
    try:
        yield program
    finally:
        program.stop()


def sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` CSV (``;``-separated), by column name."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        raise AssertionError(f"no statistics in {path}")
    names = lines[0].split(";")
    return dict(zip(names, lines[-1].split(";"), strict=False))


def bound(pid: int, port: int, kind: str = "udp") -> bool:
    """True when a socket of ``kind`` (``udp``; ``tcp``: listening) is bound to ``port`` in
    the network namespace of process ``pid`` (its ``/proc/PID/net`` tables, IPv4 and IPv6:
    a program started in a namespace of the test's is looked at there)."""
    for table in (kind, kind + "6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or int(fields[1].rsplit(":", 1)[1], 16) != port:
                continue
            if kind == "udp" or fields[3] == _LISTEN:
                return True
    return False


def _why_stop(program: Program, port: int, kind: str, timeout: float, deadline: float) -> str:
    """Why to stop waiting for ``program`` to bind ``port`` ("": keep waiting)."""
    if program.returncode is not None:
        return f"{program.args[0]} exited ({program.returncode}) before binding {kind} {port}"
    if time.monotonic() > deadline:
        return f"{program.args[0]} did not bind {kind} {port} in {timeout:g} s"
    return ""


async def wait_bound(
    program: Program, port: int, kind: str = "udp", timeout: float = BIND_TIMEOUT
) -> None:
    """Wait until ``program`` (just started) has bound ``port``: a request sent before it
    would be lost (UDP) or refused (TCP), and a fixed sleep assumes a speed. Fails with the
    program's output when it exits first or does not bind in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not bound(program.pid, port, kind):
        why = _why_stop(program, port, kind, timeout, deadline)
        if why:
            raise AssertionError(f"{why}:\n{program.output()[-2000:]}")
        await asyncio.sleep(0.02)


def wait_bound_sync(
    program: Program, port: int, kind: str = "udp", timeout: float = BIND_TIMEOUT
) -> None:
    """:func:`wait_bound` for a test without an event loop."""
    deadline = time.monotonic() + timeout
    while not bound(program.pid, port, kind):
        why = _why_stop(program, port, kind, timeout, deadline)
        if why:
            raise AssertionError(f"{why}:\n{program.output()[-2000:]}")
        time.sleep(0.02)
