"""The adapter of rolling updates: carries out :class:`~.update_plan.Rollout`'s actions.

Status reads are ``GET /v1/status`` on the appliance's API plus ``GET /v1/appliances/{name}``
on the online service (registered, online, at which version); maintenance is ``POST
/v1/maintenance/enter|exit``; processes are started and stopped by the
:class:`~.update_procs.ProcessController`. After every step the rollout's status is written
(atomically) to the site's state file, which ``hybridvoice update status`` reads; ``events``
gets each new line of the rollout's log as it happens. No decisions here: they are the core's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from .update_plan import (
    Act,
    ApplianceView,
    Done,
    Enter,
    Exit,
    Finish,
    ReadStatus,
    Result,
    Rollout,
    Sleep,
    Start,
    Stop,
)
from .update_procs import ProcessController
from .update_site import UpdateSite

__all__ = [
    "RolloutBusyError",
    "RolloutDriver",
    "read_views",
    "rollout_lock",
    "rollout_owner",
    "save_json",
]

#: a long wait (for a window) is slept in pieces of this many seconds, the state file kept fresh
MAX_SLEEP = 60.0


async def read_view(
    http: httpx.AsyncClient, api: str, online: str, name: str, headers: Mapping[str, str]
) -> tuple[ApplianceView, int | None]:
    """The appliance as its API and the online service see it, and its PID (when it answers)."""
    try:
        response = await http.get(f"{api}/v1/status", headers=headers)
        response.raise_for_status()
        status: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return ApplianceView(False, detail=str(exc) or type(exc).__name__), None
    cloud: dict[str, Any] = {}
    try:
        answer = await http.get(f"{online}/v1/appliances/{name}", headers=headers)
        if answer.status_code == 200:
            cloud = answer.json()
    except (httpx.HTTPError, ValueError):
        cloud = {}
    health = status.get("health") or {}
    failing = "; ".join(f"{f.get('check')}: {f.get('detail')}" for f in health.get("failing", ()))
    view = ApplianceView(
        reachable=True,
        version=status.get("version"),
        state=status.get("state"),
        calls_now=int(status.get("calls_now") or 0),
        registered=bool((status.get("online") or {}).get("registered")),
        cloud_status=cloud.get("status"),
        cloud_version=cloud.get("version"),
        detail=failing,
    )
    pid = status.get("pid")
    return view, pid if isinstance(pid, int) else None


async def read_views(
    site: UpdateSite,
    online: str,
    headers: Mapping[str, str],
    timeout: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, ApplianceView]:
    """Every appliance of ``site`` now (for ``hybridvoice update plan``)."""
    async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
        found = await asyncio.gather(
            *(read_view(http, a.api, online, a.name, headers) for a in site.appliances)
        )
    return {a.name: view for a, (view, _) in zip(site.appliances, found, strict=True)}


class RolloutBusyError(RuntimeError):
    """Another rollout of the site runs (its PID in :attr:`pid`)."""

    def __init__(self, pid: int | None) -> None:
        who = pid if pid is not None and pid > 0 else "unknown"
        super().__init__(f"another rollout of this site runs (pid {who})")
        self.pid = pid


def _lock_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".lock")


@contextlib.contextmanager
def rollout_lock(state_file: Path) -> Iterator[None]:
    """One rollout per site at a time: an exclusive lock beside the state file, holding this
    process's PID; :class:`RolloutBusyError` while another process holds it. The kernel
    releases it when the process ends, however it ends."""
    path = _lock_path(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RolloutBusyError(rollout_owner(state_file)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def rollout_owner(state_file: Path) -> int | None:
    """The PID of the process running a rollout of the site now, else None."""
    path = _lock_path(state_file)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def save_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=1))
    os.replace(temp, path)


class RolloutDriver:
    """Runs one rollout to its end."""

    def __init__(
        self,
        rollout: Rollout,
        site: UpdateSite,
        *,
        online: str,
        headers: Mapping[str, str],
        procs: ProcessController | None = None,
        clock: Callable[[], float] = time.time,
        events: Callable[[str], None] | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.rollout, self.site, self.online = rollout, site, online.rstrip("/")
        self.headers = dict(headers)
        self.procs = procs or ProcessController(site.state_file.parent)
        self.clock = clock
        self.events = events
        self.timeout = timeout
        self.transport = transport  # tests: a fake site
        #: the last PID each appliance's API reported
        self.pids: dict[str, int] = {}
        self._told = 0

    async def run(self) -> Finish:
        """Step the rollout until it finishes; its :class:`~.update_plan.Finish`."""
        result: Result = None
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as http:
            while True:
                act = self.rollout.step(self.clock(), result)
                self._report()
                if isinstance(act, Finish):
                    return act
                result = await self._do(http, act)

    def _report(self) -> None:
        status = self.rollout.status()
        status["site"] = self.site.site
        status["updated_at"] = self.clock()
        status["pids"] = {**self.pids, **{
            name: proc.pid for name, proc in self.procs.started.items() if proc.poll() is None
        }}  # fmt: skip
        save_json(self.site.state_file, status)
        for event in status["events"][self._told :]:
            if self.events is not None:
                self.events(event["text"])
        self._told = len(status["events"])

    async def _do(self, http: httpx.AsyncClient, act: Act) -> Result:
        if isinstance(act, Sleep):
            await asyncio.sleep(max(0.0, min(act.until - self.clock(), MAX_SLEEP)))
            return None
        assert not isinstance(act, Finish)
        appliance = self.site.appliance(act.appliance)
        if isinstance(act, ReadStatus):
            view, pid = await read_view(http, appliance.api, self.online, act.appliance,
                                        self.headers)  # fmt: skip
            if pid is not None:
                self.pids[act.appliance] = pid
            code = self.procs.exit_code(act.appliance)
            if code is not None and not view.reachable:
                view = ApplianceView(False, exited=code, detail=f"exit code {code}")
            return view
        if isinstance(act, Enter | Exit):
            word = "enter" if isinstance(act, Enter) else "exit"
            try:
                answer = await http.post(f"{appliance.api}/v1/maintenance/{word}",
                                         headers=self.headers)  # fmt: skip
            except httpx.HTTPError as exc:
                return Done(False, str(exc) or type(exc).__name__)
            ok = answer.status_code < 300
            return Done(ok, "" if ok else f"HTTP {answer.status_code}: {answer.text[:200]}")
        if isinstance(act, Stop):
            return await self._stop(act.appliance)
        return self._start(act)

    def _start(self, act: Start) -> Done:
        appliance = self.site.appliance(act.appliance)
        install = self.site.installations().get(act.version)
        if install is None:
            return Done(False, f"version {act.version} is not installed in "
                        f"{self.site.versions_dir}")  # fmt: skip
        try:
            pid = self.procs.start(appliance, install)
        except OSError as exc:
            return Done(False, f"{install.python}: {exc.strerror or exc}")
        self.pids[act.appliance] = pid
        return Done(True, f"pid {pid}")

    async def _stop(self, name: str) -> Done:
        pid = self.procs.pid_of(name) or self.pids.get(name)
        if pid is None:
            code = self.procs.exit_code(name)
            if code is not None:
                return Done(True, f"it had exited (code {code})")
            return Done(False, "its PID is not known (its API never answered)")
        try:
            config = self.site.appliance(name).config
            what = await self.procs.stop(pid, self.rollout.timers.stop, config)
        except ValueError as exc:
            if self.procs.exit_code(name) is not None:
                return Done(True, "it had exited")
            return Done(False, str(exc))
        self.pids.pop(name, None)
        return Done(True, what)
