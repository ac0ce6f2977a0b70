"""A site's rolling update, sans-IO: ``now`` and the last action's result in, the next action out.

One appliance at a time (the original's automatic updates, ``docs/updates.md``):

1. **check**: every appliance answers its status API, is online there and in the cloud, and runs
   a version that is installed (so that it can be rolled back); else nothing is touched.
   Appliances already on the new version are skipped.
2. **window**: the next appliance starts only when its whole update (drain + stop + start
   deadlines) fits in what is left of the site's update window; else the rollout waits for the
   next window (``windows=None``: no window, an admin's ``--now``).
3. **enter** maintenance (drain: new calls go to the site's other appliances), **drain** until
   its calls have ended or the drain deadline passes, **stop** the old version, **start** the new
   one, wait until it is **healthy** (its status API: the new version, online, registered with
   the cloud; the cloud: online at the new version) or the start deadline passes, **exit**
   maintenance, next appliance.
4. The new version not healthy in time (or its process exits, or does not start): **roll back**
   that appliance (stop the new, start the old, healthy again, exit maintenance) and stop the
   rollout: the appliances not reached stay on the old version. A rollback that fails too ends
   the rollout ``failed`` with the appliance named.

:class:`Rollout` is the core; the adapter (:mod:`.update_run`) carries out its actions (HTTP
to the appliance and online APIs, processes started and stopped) and feeds results back. Its
phases and moves are the table :data:`MOVES`. ``now`` is epoch seconds (update windows are
wall-clock times); tests drive it with a fake clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from hybridvoice.online.update_windows import TenantUpdateWindow, window_state

__all__ = [
    "MOVES",
    "Act",
    "ApplianceView",
    "Enter",
    "Exit",
    "Finish",
    "Phase",
    "ReadStatus",
    "Rollout",
    "RolloutTimers",
    "Sleep",
    "Start",
    "Stop",
]


# --- what the adapter reports --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplianceView:
    """One appliance as its status API and the online service see it now."""

    reachable: bool
    version: str | None = None
    state: str | None = None  # the appliance's: online, maintenance, offline
    calls_now: int = 0
    registered: bool = False  # its link to the cloud has registered
    cloud_status: str | None = None  # the online service's: online, maintenance, offline
    cloud_version: str | None = None
    #: the process the controller started has exited with this code
    exited: int | None = None
    detail: str = ""  # why it is not reachable or not healthy, in words

    def healthy(self, version: str | None = None) -> str | None:
        """None when it takes calls (at ``version``, when given); else why not."""
        if self.exited is not None:
            return f"its process exited with code {self.exited}"
        if not self.reachable:
            return f"its API does not answer ({self.detail or 'no answer'})"
        if version is not None and self.version != version:
            return f"it runs version {self.version}, not {version}"
        if self.state != "online":
            return f"it reports {self.state}" + (f" ({self.detail})" if self.detail else "")
        if not self.registered:
            return "it has not registered with the online service"
        if self.cloud_status != "online":
            return f"the online service has it {self.cloud_status or 'unregistered'}"
        if version is not None and self.cloud_version != version:
            return f"the online service has it at version {self.cloud_version}"
        return None


@dataclass(frozen=True, slots=True)
class Done:
    """The result of an action other than :class:`ReadStatus` and :class:`Sleep`."""

    ok: bool
    detail: str = ""


Result = ApplianceView | Done | None


# --- what the core asks for ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadStatus:
    appliance: str


@dataclass(frozen=True, slots=True)
class Enter:
    """Put the appliance in maintenance (drain)."""

    appliance: str


@dataclass(frozen=True, slots=True)
class Exit:
    """Take the appliance out of maintenance."""

    appliance: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the appliance's process running ``version`` (by PID)."""

    appliance: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    """Start the appliance on ``version`` (that version's installation)."""

    appliance: str
    version: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Come back at ``until`` (epoch seconds) with no result."""

    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The rollout ended: ``outcome`` is completed, rolled-back, refused or failed."""

    outcome: str
    summary: str


Act = ReadStatus | Enter | Exit | Stop | Start | Sleep | Finish


@dataclass(frozen=True, slots=True)
class RolloutTimers:
    """Deadlines of one appliance's update, in seconds."""

    drain: float = 300.0  # calls in progress may last this long; then it is stopped anyway
    stop: float = 30.0  # the old process ends within this (the adapter kills it after)
    start: float = 120.0  # the new version is healthy within this, or it is rolled back
    poll: float = 2.0  # status reads while draining and starting

    def __post_init__(self) -> None:
        for name in ("drain", "stop", "start", "poll"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")

    @property
    def per_appliance(self) -> float:
        """The longest one appliance's update may take: what must fit in a window."""
        return self.drain + self.stop + self.start + 2 * self.poll


# --- the table -----------------------------------------------------------------------------------


class Phase(StrEnum):
    CHECK = "check"
    WINDOW = "window"
    ENTER = "enter"
    DRAIN = "drain"
    STOP = "stop"
    START = "start"
    HEALTH = "health"
    EXIT = "exit"
    BACK_STOP = "rollback-stop"
    BACK_START = "rollback-start"
    BACK_HEALTH = "rollback-health"
    BACK_EXIT = "rollback-exit"
    ABORT_EXIT = "abort-exit"
    NEXT = "next"
    DONE = "done"


#: (phase, True: it went well / False: it did not) -> the next phase
MOVES: Final = MappingProxyType(
    {
        (Phase.ENTER, True): Phase.DRAIN,
        (Phase.ENTER, False): Phase.DONE,
        (Phase.DRAIN, True): Phase.STOP,
        (Phase.STOP, True): Phase.START,
        (Phase.STOP, False): Phase.ABORT_EXIT,
        (Phase.START, True): Phase.HEALTH,
        (Phase.START, False): Phase.BACK_STOP,
        (Phase.HEALTH, True): Phase.EXIT,
        (Phase.HEALTH, False): Phase.BACK_STOP,
        (Phase.EXIT, True): Phase.NEXT,
        (Phase.EXIT, False): Phase.DONE,
        (Phase.BACK_STOP, True): Phase.BACK_START,
        (Phase.BACK_STOP, False): Phase.DONE,
        (Phase.BACK_START, True): Phase.BACK_HEALTH,
        (Phase.BACK_START, False): Phase.DONE,
        (Phase.BACK_HEALTH, True): Phase.BACK_EXIT,
        (Phase.BACK_HEALTH, False): Phase.DONE,
        (Phase.BACK_EXIT, True): Phase.DONE,
        (Phase.BACK_EXIT, False): Phase.DONE,
        (Phase.ABORT_EXIT, True): Phase.DONE,
        (Phase.ABORT_EXIT, False): Phase.DONE,
    }
)
_POLLED: Final = frozenset({Phase.DRAIN, Phase.HEALTH, Phase.BACK_HEALTH})


@dataclass(slots=True)
class _Row:
    name: str
    old: str | None = None
    state: str = "pending"  # pending, skipped, updating, updated, rolled-back, failed
    detail: str = ""


@dataclass(slots=True)
class _Progress:
    phase: Phase = Phase.CHECK
    index: int = 0  # the appliance being checked or updated
    deadline: float = 0.0
    polling: bool = False  # a Sleep is out: the next action reads the status again
    waiting_until: float | None = None
    outcome: str | None = None
    summary: str = ""
    events: list[tuple[float, str]] = field(default_factory=list)


class Rollout:
    """A rolling update of ``appliances`` (in this order) to ``version``; :meth:`step` drives it."""

    def __init__(
        self,
        appliances: Sequence[str],
        version: str,
        *,
        installed: frozenset[str] | set[str],
        windows: Sequence[TenantUpdateWindow] | None = None,
        timers: RolloutTimers | None = None,
    ) -> None:
        if not appliances:
            raise ValueError("a rollout needs at least one appliance")
        if len(set(appliances)) != len(appliances):
            raise ValueError(f"appliances named twice: {list(appliances)}")
        self.version = version
        self.installed = frozenset(installed)
        self.windows = None if windows is None else tuple(windows)
        self.timers = timers or RolloutTimers()
        self.rows = [_Row(name) for name in appliances]
        self.p = _Progress()
        self._pending: Act | None = None

    # --- the driver's side ------------------------------------------------------------------------

    def step(self, now: float, result: Result = None) -> Act:
        """The next action, given the result of the last one (None for the first call and
        after a :class:`Sleep`)."""
        pending, self._pending = self._pending, None
        if pending is not None and not isinstance(pending, Finish):
            moved = self._judge(pending, result, now)
            if moved is not None:
                self._move(moved, now)
        act = self._act(now)
        self._pending = act
        return act

    @property
    def done(self) -> bool:
        return self.p.phase is Phase.DONE

    def status(self) -> dict[str, Any]:
        """Where the rollout stands, for ``hybridvoice update status``."""
        current = self.rows[self.p.index].name if self.p.index < len(self.rows) else None
        return {
            "version": self.version,
            "phase": str(self.p.phase),
            "appliance": None if self.done else current,
            "outcome": self.p.outcome,
            "summary": self.p.summary,
            "waiting_until": self.p.waiting_until,
            "appliances": [
                {
                    "name": r.name,
                    "from": r.old,
                    "to": self.version,
                    "state": r.state,
                    "detail": r.detail,
                }
                for r in self.rows
            ],
            "events": [{"at": at, "text": text} for at, text in self.p.events],
        }

    # --- internals --------------------------------------------------------------------------------

    @property
    def _row(self) -> _Row:
        return self.rows[self.p.index]

    def _log(self, now: float, text: str) -> None:
        self.p.events.append((now, text))

    def _finish(self, now: float, outcome: str, summary: str) -> None:
        self.p.phase, self.p.outcome, self.p.summary = Phase.DONE, outcome, summary
        self.p.waiting_until = None
        self._log(now, f"{outcome}: {summary}")

    def _act(self, now: float) -> Act:
        """The action of the phase the rollout is in (entering it when new)."""
        p, row = self.p, (self._row if self.p.index < len(self.rows) else None)
        if p.phase is Phase.DONE:
            return Finish(p.outcome or "failed", p.summary)
        if p.phase is Phase.CHECK:
            assert row is not None
            return ReadStatus(row.name)
        if p.phase is Phase.WINDOW:
            return self._window(now)
        assert row is not None
        if p.phase in _POLLED:
            if p.polling:
                until = min(now + self.timers.poll, p.deadline)
                return Sleep(until, f"{p.phase} of {row.name}")
            return ReadStatus(row.name)
        old = row.old or ""
        acts: dict[Phase, Act] = {
            Phase.ENTER: Enter(row.name),
            Phase.STOP: Stop(row.name, old),
            Phase.START: Start(row.name, self.version),
            Phase.EXIT: Exit(row.name),
            Phase.BACK_STOP: Stop(row.name, self.version),
            Phase.BACK_START: Start(row.name, old),
            Phase.BACK_EXIT: Exit(row.name),
            Phase.ABORT_EXIT: Exit(row.name),
        }
        return acts[p.phase]

    def _window(self, now: float) -> Act:
        """Start the next appliance's update now, or sleep until it fits in a window."""
        if self.windows is None:
            self._move(Phase.ENTER, now)
            return self._act(now)
        need = self.timers.per_appliance
        if not self.windows:
            self._finish(now, "refused", "the site has no update windows: assign one "
                         "(site set-updates --windows) or update --now")  # fmt: skip
            return self._act(now)
        longest = max(w.duration_minutes for w in self.windows) * 60
        if longest < need:
            self._finish(now, "refused", f"one appliance's update may take {need:g} s (drain + "
                         f"stop + start deadlines) but the longest update window lasts "
                         f"{longest} s: lengthen a window or shorten the deadlines")  # fmt: skip
            return self._act(now)
        state = window_state(self.windows, dt.datetime.fromtimestamp(now, dt.UTC))
        if state.inside and state.remaining().total_seconds() >= need:
            self.p.waiting_until = None
            self._log(now, f"inside window {', '.join(state.inside)} until "
                      f"{state.ends:%Y-%m-%d %H:%M} UTC")  # fmt: skip
            self._move(Phase.ENTER, now)
            return self._act(now)
        if state.inside and state.ends is not None:  # too little left: wait for its end
            until, why = state.ends.timestamp(), "the window closes before an update would end"
        else:
            assert state.next_start is not None
            until, why = state.next_start.timestamp(), f"window {state.next_window} opens"
        if self.p.waiting_until != until:
            when = dt.datetime.fromtimestamp(until, dt.UTC)
            self._log(now, f"waiting: {why} at {when:%Y-%m-%d %H:%M} UTC")
        self.p.waiting_until = until
        return Sleep(until, why)

    def _move(self, phase: Phase, now: float) -> None:
        p = self.p
        p.phase, p.polling = phase, False
        if phase is Phase.DRAIN:
            p.deadline = now + self.timers.drain
        elif phase in (Phase.HEALTH, Phase.BACK_HEALTH):
            p.deadline = now + self.timers.start
        elif phase is Phase.NEXT:
            self._row.state = "updated"
            self._log(now, f"{self._row.name}: updated to {self.version}")
            self._next(now)

    def _next(self, now: float) -> None:
        """The next appliance to update, or the end."""
        p = self.p
        p.index += 1
        while p.index < len(self.rows) and self._row.state == "skipped":
            p.index += 1
        if p.index >= len(self.rows):
            done = sum(r.state == "updated" for r in self.rows)
            self._finish(now, "completed", f"{done} appliance(s) updated to {self.version}")
            return
        p.phase = Phase.WINDOW

    def _judge(self, pending: Act, result: Result, now: float) -> Phase | None:
        """The phase ``result`` of ``pending`` leads to (None: stay, the phase acts again)."""
        p, row = self.p, self._row
        if isinstance(pending, Sleep):
            p.polling = False
            return None
        if p.phase is Phase.CHECK:
            self._check(result, now)
            return None
        if p.phase in _POLLED:
            return self._polled(result, now)
        ok = isinstance(result, Done) and result.ok
        detail = result.detail if isinstance(result, Done) else "no result"
        what = {Phase.ENTER: "enter maintenance", Phase.STOP: f"stop version {row.old}",
                Phase.START: f"start version {self.version}", Phase.EXIT: "exit maintenance",
                Phase.BACK_STOP: f"stop version {self.version}",
                Phase.BACK_START: f"start version {row.old}",
                Phase.BACK_EXIT: "exit maintenance", Phase.ABORT_EXIT: "exit maintenance",
                }[p.phase]  # fmt: skip
        done = f"done ({detail})" if detail else "done"
        self._log(now, f"{row.name}: {what}: " + (done if ok else f"FAILED ({detail})"))
        nxt = MOVES[(p.phase, ok)]
        if nxt is Phase.DONE:
            self._ended(ok, detail, now)
        elif p.phase is Phase.ENTER:
            row.state = "updating"
        elif p.phase is Phase.START and not ok:
            row.detail = f"version {self.version} did not start: {detail}"
        elif p.phase is Phase.STOP and not ok:
            row.detail = f"version {row.old} did not stop: {detail}"
        return None if p.phase is Phase.DONE else nxt

    def _ended(self, ok: bool, detail: str, now: float) -> None:
        """The moves into DONE from the appliance steps: what to report."""
        row, phase, v = self._row, self.p.phase, self.version
        rest = "; the appliances not reached stay on their version"
        if phase is Phase.ENTER:
            self._finish(now, "failed", f"{row.name} did not enter maintenance ({detail}); "
                         "nothing changed on it" + rest)  # fmt: skip
        elif phase is Phase.EXIT:
            row.state, row.detail = "failed", f"runs {v} but stays in maintenance: {detail}"
            self._finish(now, "failed", f"{row.name} runs {v} but did not exit maintenance "
                         f"({detail}): `appliance maintenance exit` on it" + rest)  # fmt: skip
        elif phase in (Phase.BACK_EXIT,):
            row.state = "rolled-back"
            note = "" if ok else f"; it did not exit maintenance ({detail}): exit it by hand"
            self._finish(now, "rolled-back", f"{row.name}: {row.detail}; rolled back to "
                         f"{row.old}{note}" + rest)  # fmt: skip
        elif phase is Phase.ABORT_EXIT:
            row.state = "failed"
            note = "" if ok else f"; it did not exit maintenance ({detail}): exit it by hand"
            self._finish(now, "failed", f"{row.name}: {row.detail}; it still runs "
                         f"{row.old}{note}" + rest)  # fmt: skip
        else:  # a rollback step failed: the appliance is down
            row.state = "failed"
            row.detail = f"{row.detail}; rollback to {row.old} failed: {detail}"
            self._finish(now, "failed", f"{row.name} is DOWN: {row.detail}" + rest)

    def _check(self, result: Result, now: float) -> None:
        """One appliance's status before the rollout; refuse when it is not fit."""
        row = self._row
        view = result if isinstance(result, ApplianceView) else ApplianceView(False)
        problem = view.healthy()
        if problem is None and view.version not in self.installed and view.version != self.version:
            problem = f"its version {view.version} is not installed, so it could not be rolled back"
        if problem is not None:
            self._finish(now, "refused", f"{row.name} is not ready for an update: {problem}; "
                         "nothing was changed")  # fmt: skip
            return
        row.old = view.version
        if view.version == self.version:
            row.state, row.detail = "skipped", f"already on {self.version}"
        if self.version not in self.installed:
            self._finish(now, "refused", f"version {self.version} is not installed")
            return
        self.p.index += 1
        if self.p.index < len(self.rows):
            return
        self.p.index = -1
        self._next(now)  # the first appliance that is not skipped
        if self.p.phase is Phase.DONE:
            self.p.summary = f"every appliance already runs {self.version}"
            self.p.events[-1] = (now, f"completed: {self.p.summary}")

    def _polled(self, result: Result, now: float) -> Phase | None:
        """Draining and health checks: done, failed, or read again after a pause."""
        p, row = self.p, self._row
        view = result if isinstance(result, ApplianceView) else ApplianceView(False)
        if p.phase is Phase.DRAIN:
            if view.reachable and view.calls_now == 0:
                self._log(now, f"{row.name}: drained")
                return Phase.STOP
            if not view.reachable or now >= p.deadline:
                why = "its API does not answer" if not view.reachable else (
                    f"drain deadline passed with {view.calls_now} call(s) left")  # fmt: skip
                self._log(now, f"{row.name}: stopping: {why}")
                return Phase.STOP
            p.polling = True
            return None
        target = self.version if p.phase is Phase.HEALTH else row.old
        problem = view.healthy(target)
        if problem is None:
            self._log(now, f"{row.name}: healthy on {target}")
            return MOVES[(p.phase, True)]
        if view.exited is not None or now >= p.deadline:
            why = problem if view.exited is not None else (
                f"not healthy within {self.timers.start:g} s: {problem}")  # fmt: skip
            self._log(now, f"{row.name}: version {target} {why}")
            if p.phase is Phase.HEALTH:
                row.detail = f"version {target} failed its health check: {why}"
            else:
                row.detail = f"{row.detail}; version {target} failed too: {why}"
                row.state = "failed"
                self._finish(now, "failed", f"{row.name} is DOWN: {row.detail}; the appliances "
                             "not reached stay on their version")  # fmt: skip
                return None
            return MOVES[(p.phase, False)]
        p.polling = True
        return None


def plan_rows(
    names: Sequence[str], views: Mapping[str, ApplianceView], version: str
) -> list[dict[str, Any]]:
    """What ``hybridvoice update plan`` shows: each appliance, its version now, what happens."""
    rows = []
    for order, name in enumerate(names, 1):
        view = views.get(name, ApplianceView(False))
        problem = view.healthy()
        action = ("skip: already on " + version if view.version == version else
                  f"update {view.version} -> {version}")  # fmt: skip
        rows.append({"order": order, "appliance": name, "version": view.version,
                     "state": view.state, "calls_now": view.calls_now,
                     "ready": problem is None, "action": action if problem is None else
                     f"blocks the rollout: {problem}"})  # fmt: skip
    return rows
