"""The supervisor's adapter: appliance processes started, watched and signalled by PID on the
event loop (:class:`~.supervisor.Supervisor` decides).

Each child runs in its own session (``start_new_session``), so a Ctrl-C in the terminal
reaches only ``up``, which then stops every child by its PID: SIGTERM, SIGKILL after the
grace. Each child's output goes to its own log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .supervisor import Decision, Report, Signal, Supervisor

__all__ = ["ChildCommand", "ChildProcesses"]


@dataclass(frozen=True, slots=True)
class ChildCommand:
    """How to start one child: its argv, extra environment, and where its output goes."""

    args: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)


class ChildProcesses:
    """Start every command, report what happens to them (``report``), stop them all."""

    def __init__(
        self,
        commands: Mapping[str, ChildCommand],
        report: Callable[[Report], None],
        *,
        grace: float = 40.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.commands = dict(commands)
        self.report = report
        self.clock = clock
        self.supervisor = Supervisor(list(commands), grace=grace)
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    def pid(self, name: str) -> int | None:
        process = self.processes.get(name)
        return None if process is None else process.pid

    async def start(self) -> None:
        """Start every child (in the order given)."""
        for name, command in self.commands.items():
            await self.start_one(name, command)

    async def start_one(self, name: str, command: ChildCommand) -> None:
        command.log.parent.mkdir(parents=True, exist_ok=True)
        with command.log.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *command.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **command.env},
            )
        self.processes[name] = process
        self._execute(self.supervisor.started(name, process.pid, self.clock()))
        self._watchers.append(asyncio.create_task(self._watch(name, process)))

    async def _watch(self, name: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self._execute(self.supervisor.exited(name, code, self.clock()))
        self._changed.set()

    def _execute(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Signal):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(decision.pid, decision.signum)
            else:
                self.report(decision)

    def alive(self) -> list[str]:
        return [c.name for c in self.supervisor.running() if c.state == "running"]

    async def stop(self) -> None:
        """SIGTERM every running child, SIGKILL the ones still there after the grace; returns
        when every child has exited."""
        self._execute(self.supervisor.stop(self.clock()))
        while not self.supervisor.done:
            deadline = self.supervisor.next_deadline()
            wait = None if deadline is None else max(0.0, deadline - self.clock())
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
            self._execute(self.supervisor.timer(self.clock()))
        for task in self._watchers:
            await task
        self._watchers.clear()
