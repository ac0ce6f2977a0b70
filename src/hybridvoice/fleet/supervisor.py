"""The fleet supervisor's core (sans-IO): what happens to the appliance processes.

Events in (each with ``now``, monotonic seconds): a child started (its PID), a child exited
(its code), a stop asked for (Ctrl-C, SIGTERM), a deadline passed. Decisions out: reports for
the admin and signals to send by PID. A child that dies while the fleet runs is reported
(name, PID, exit code or signal) and left down: the online service stops sending it calls
after its detection window, the site's other appliances take them. On a stop every running
child gets SIGTERM (it drains: no new calls, calls in progress finish up to its deadline),
and SIGKILL when it is still there ``grace`` seconds later. The state table is :data:`MOVES`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

__all__ = ["MOVES", "Child", "Report", "Signal", "Supervisor", "describe_exit"]

State = Literal["new", "running", "stopping", "exited"]
Event = Literal["started", "exited", "stop"]

#: (state, event) -> next state; a pair not listed is ignored (an exit reported twice, a
#: stop of a child that never started)
MOVES: Final = MappingProxyType(
    {
        ("new", "started"): "running",
        ("new", "stop"): "exited",
        ("running", "exited"): "exited",
        ("running", "stop"): "stopping",
        ("stopping", "exited"): "exited",
    }
)


@dataclass(frozen=True, slots=True)
class Report:
    """Something the admin should read; ``problem``: printed as a warning."""

    child: str
    text: str
    problem: bool = False


@dataclass(frozen=True, slots=True)
class Signal:
    """Send ``signum`` to ``pid``."""

    child: str
    pid: int
    signum: int


Decision = Report | Signal


@dataclass(slots=True)
class Child:
    """One appliance process as the supervisor sees it."""

    name: str
    state: State = "new"
    pid: int | None = None
    code: int | None = None
    started_at: float | None = None
    kill_at: float | None = None


def describe_exit(code: int) -> str:
    """``exited with code 1``, ``killed by SIGKILL`` (a negative code is a signal, as
    :mod:`subprocess` reports it)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """The children's states; ``grace``: seconds between SIGTERM and SIGKILL on a stop."""

    def __init__(self, names: list[str], *, grace: float = 40.0) -> None:
        if grace <= 0:
            raise ValueError(f"grace must be > 0 seconds, got {grace}")
        self.grace = grace
        self.children = {name: Child(name) for name in names}
        self.stopping = False

    def _move(self, child: Child, event: Event) -> bool:
        new = MOVES.get((child.state, event))
        if new is None:
            return False
        child.state = new  # type: ignore[assignment]
        return True

    def started(self, name: str, pid: int, now: float) -> list[Decision]:
        child = self.children[name]
        if not self._move(child, "started"):
            return []
        child.pid, child.started_at = pid, now
        if self.stopping:  # started while a stop was under way: stop it too
            return self._terminate(child, now)
        return [Report(name, f"{name} started (pid {pid})")]

    def exited(self, name: str, code: int, now: float) -> list[Decision]:
        child = self.children[name]
        was = child.state
        if not self._move(child, "exited"):
            return []
        child.code, child.kill_at = code, None
        how = describe_exit(code)
        if was == "stopping":
            return [Report(name, f"{name} (pid {child.pid}) stopped: {how}")]
        return [
            Report(
                name,
                f"{name} (pid {child.pid}) died: {how}; its site's other appliances take "
                "its calls once the online service sees it offline (HeartbeatTimeoutSeconds)",
                problem=True,
            )
        ]

    def stop(self, now: float) -> list[Decision]:
        """Stop every child: SIGTERM now, SIGKILL after :attr:`grace`."""
        self.stopping = True
        out: list[Decision] = []
        for child in self.children.values():
            if child.state == "new":
                self._move(child, "stop")
            elif child.state == "running":
                out += self._terminate(child, now)
        return out

    def _terminate(self, child: Child, now: float) -> list[Decision]:
        self._move(child, "stop")
        assert child.pid is not None
        child.kill_at = now + self.grace
        return [Signal(child.name, child.pid, signal.SIGTERM)]

    def next_deadline(self) -> float | None:
        deadlines = [c.kill_at for c in self.children.values() if c.kill_at is not None]
        return min(deadlines) if deadlines else None

    def timer(self, now: float) -> list[Decision]:
        """The deadlines due at ``now``: SIGKILL for a child that outlived its grace."""
        out: list[Decision] = []
        for child in self.children.values():
            if child.kill_at is not None and now >= child.kill_at and child.state == "stopping":
                assert child.pid is not None
                child.kill_at = None
                late = f"{child.name} (pid {child.pid}) did not stop within {self.grace:g} s"
                out.append(Report(child.name, f"{late}: SIGKILL", problem=True))
                out.append(Signal(child.name, child.pid, signal.SIGKILL))
        return out

    @property
    def done(self) -> bool:
        """Every child has exited (or never started)."""
        return all(c.state == "exited" for c in self.children.values())

    def running(self) -> list[Child]:
        return [c for c in self.children.values() if c.state in ("running", "stopping")]
