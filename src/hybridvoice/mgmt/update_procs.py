"""Rolling updates' process controller: start an appliance on a given version, stop one by PID.

An adapter (:mod:`.update_run` drives it): ``start`` runs ``<that version's python> -m
hybridvoice appliance serve --config C --state-dir S [arguments]`` in a session of its own (it
outlives ``hybridvoice update start``), its output appended to ``<name>-<version>.log`` beside
the rollout's state file; ``stop`` sends SIGTERM to a PID (only to a ``hybridvoice appliance
serve`` process: the PID is checked against ``/proc/PID/cmdline`` first) and SIGKILL when it
has not ended within the grace time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .update_site import Installation, SiteAppliance

__all__ = ["ProcessController", "is_appliance_process"]


def is_appliance_process(pid: int, config: Path | None = None) -> bool:
    """Is ``pid`` a running ``hybridvoice appliance serve`` (with the settings file ``config``,
    when given)? Linux ``/proc``; elsewhere: is it running."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        words = cmdline.read_bytes().split(b"\0")
    except FileNotFoundError:
        return _alive(pid) and not Path("/proc/self").exists()
    except OSError:
        return False
    if not (b"hybridvoice" in words and b"serve" in words and b"appliance" in words):
        return False
    if config is None:
        return True
    given = [os.fsdecode(w.split(b"=", 1)[1]) for w in words if w.startswith(b"--config=")]
    given += [os.fsdecode(words[i + 1]) for i, w in enumerate(words[:-1]) if w == b"--config"]
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return any((cwd / g).resolve() == config.resolve() for g in given)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessController:
    """Starts and stops appliance processes; remembers the ones it started."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        #: appliance name -> the process this controller started for it
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def command(
        self, appliance: SiteAppliance, install: Installation
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of ``appliance`` on ``install``."""
        argv = [install.python, "-m", "hybridvoice", "appliance", "serve",
                "--config", str(appliance.config), "--state-dir", str(appliance.state_dir),
                *appliance.arguments]  # fmt: skip
        env = {**os.environ, **dict(appliance.environment)}
        env.pop("PYTHONPATH", None)  # never the caller's installation
        if install.pythonpath is not None:
            env["PYTHONPATH"] = install.pythonpath
        return argv, env

    def start(self, appliance: SiteAppliance, install: Installation) -> int:
        """Start it; the PID. OSError when the program cannot be run."""
        argv, env = self.command(appliance, install)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{appliance.name}-{install.version}.log").open("ab")
        try:
            proc = subprocess.Popen(  # our own program, no shell
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self.started[appliance.name] = proc
        return proc.pid

    def exit_code(self, name: str) -> int | None:
        """The exit code of the process started for ``name`` once it has ended, else None."""
        proc = self.started.get(name)
        return None if proc is None else proc.poll()

    def pid_of(self, name: str) -> int | None:
        """The PID of the running process started for ``name``, else None."""
        proc = self.started.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    async def stop(self, pid: int, grace: float, config: Path | None = None) -> str:
        """SIGTERM ``pid``; SIGKILL when it still runs after ``grace`` seconds. What happened,
        in words. ValueError when ``pid`` is not an appliance process (of ``config``, when
        given: a PID reported by another host's API is never one of ours)."""
        own = next((p for p in self.started.values() if p.pid == pid), None)
        if own is not None and own.poll() is not None:
            return f"pid {pid} had already exited"
        if own is None and not is_appliance_process(pid, config):
            which = "" if config is None else f" --config {config}"
            raise ValueError(f"pid {pid} is not a running `hybridvoice appliance serve{which}` "
                             "on this host")  # fmt: skip
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if await self._ended(pid, own, grace):
            return f"pid {pid} stopped"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await self._ended(pid, own, grace)
        return f"pid {pid} killed after {grace:g} s"

    async def _ended(self, pid: int, own: subprocess.Popen[bytes] | None, wait: float) -> bool:
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if (own.poll() is not None) if own is not None else not is_appliance_process(pid):
                return True
            await asyncio.sleep(0.1)
        return (own.poll() is not None) if own is not None else not is_appliance_process(pid)
