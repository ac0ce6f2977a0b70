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
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from ports import free_port

__all__ = ["SCENARIOS", "Program", "free_port", "need_binary", "running", "sipp_stats"]

SCENARIOS = Path(__file__).parent / "scenarios"


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
