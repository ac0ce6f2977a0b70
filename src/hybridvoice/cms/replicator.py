"""Keeps an appliance's replica current, and the appliance known to the online service.

:class:`Replicator` long-polls the online service's change feed (``GET /v1/changes?since=V&wait=S``,
HTTP/1.1, RFC 9110 §9.3.1) and applies what comes to a :class:`LocalStore`. The cloud holds a poll
open until a change lands or ``S`` seconds pass, so a change reaches every appliance in about one
round trip (the original CCE replicated on a schedule: up to 24 hours). When the cloud answers
410 Gone (RFC 9110 §15.5.11: the replica's version was compacted away, or is ahead of a restored
cloud) the replicator loads ``GET /v1/snapshot`` in its place, as it does first for an empty
replica rather than replaying the tenant's whole history. When the cloud is unreachable it
keeps the replica as it is (the appliance goes on routing calls on it), counts the error and
tries again after a capped exponential backoff with jitter; nothing raises out of its loop.

:class:`ApplianceLink` registers the appliance (``POST /v1/appliances``, the original's
Register-CcAppliance) and sends a heartbeat with its status every ``interval`` seconds
(``POST /v1/appliances/{name}/heartbeat``); a 404 means the cloud forgot the appliance, and it
registers again.

``base_url`` may be a list of online instances' URLs (several instances of one tenant on
etcd, docs/fleet.md): each failed request moves both to the next one; versions are the
store's revisions, the same on every instance, so the replica goes on from where it was.

Both present the appliance's bearer token (``token``: scope ``appliance``, see
:mod:`hybridvoice.cms.tokens`) on every request. Both run as tasks of the current event loop
(:meth:`start`, ``await stop()``), on an :class:`httpx.AsyncClient` given to them (kept open)
or made by them (closed on stop). Time comes from ``clock`` (monotonic seconds), randomness
from ``rng``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from hybridvoice.cms.changes import KINDS, Change
from hybridvoice.cms.replica import LocalStore, ReplicaError
from hybridvoice.cms.tokens import bearer

__all__ = [
    "CHANGES_PATH",
    "MAX_WAIT",
    "SNAPSHOT_PATH",
    "ApplianceLink",
    "Backoff",
    "FeedError",
    "Replicator",
]

_log = logging.getLogger(__name__)

CHANGES_PATH: Final = "/v1/changes"
SNAPSHOT_PATH: Final = "/v1/snapshot"
APPLIANCES_PATH: Final = "/v1/appliances"
MAX_WAIT: Final = 60.0
"""The longest long-poll the online service holds open."""
_MARGIN: Final = 10.0  # read timeout beyond the long-poll wait
_IDLE: Final = 0.05  # pause after an empty answer (the wait ran out), seconds


class FeedError(RuntimeError):
    """The online service answered something the replicator cannot use."""


class Backoff:
    """Capped exponential backoff with jitter: attempt n waits d/2..d, d = min(cap, base*2^n)."""

    __slots__ = ("_attempt", "_rng", "base", "cap")

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base, self.cap = base, cap
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the ceiling up to ``cap``."""
        ceiling: float = min(self.cap, self.base * 2.0 ** min(self._attempt, 32))
        self._attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._attempt = 0


def _payload(response: httpx.Response) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise FeedError(f"{response.request.url}: answer is not JSON") from exc
    if not isinstance(data, Mapping):
        raise FeedError(f"{response.request.url}: answer is not a JSON object")
    return data


def _changes(data: Mapping[str, Any]) -> tuple[int, list[Change]]:
    version, items = data.get("version"), data.get("changes")
    if not isinstance(version, int) or not isinstance(items, list):
        raise FeedError("feed answer needs an integer 'version' and a 'changes' list")
    try:
        return version, [Change.from_json(item) for item in items if _known(item)]
    except ValueError as exc:
        raise FeedError(f"feed answer holds a bad change: {exc}") from exc


def _known(item: Any) -> bool:
    """False for a change of a kind this version does not know: a newer online service's
    setting (an appliance not updated yet skips it rather than stalling its replica)."""
    return not isinstance(item, Mapping) or item.get("kind") in KINDS


def _error_text(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, FeedError):
        data = _payload(response)
        if isinstance(data.get("error"), str):
            return f"HTTP {response.status_code}: {data['error']}"
    return f"HTTP {response.status_code}"


class _Worker:
    """A loop task on an HTTP client, with start/stop and error bookkeeping."""

    __slots__ = (
        "_at", "_client", "_clock", "_headers", "_own_client", "_task", "errors", "last_error",
        "urls",
    )  # fmt: skip

    def __init__(
        self,
        base_url: str | Sequence[str],
        client: httpx.AsyncClient | None,
        clock: Callable[[], float],
        token: str | None,
    ) -> None:
        given = [base_url] if isinstance(base_url, str) else list(base_url)
        if not given:
            raise ValueError("give at least one online service URL")
        #: the online instances to use, in order; a failed request moves on to the next
        self.urls = tuple(url.rstrip("/") for url in given)
        self._at = 0
        self._headers = bearer(token)
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.errors = 0
        """How many requests failed (unreachable, timed out, bad answer) since start."""
        self.last_error: str | None = None

    @property
    def base_url(self) -> str:
        """The online instance in use."""
        return self.urls[self._at]

    def start(self) -> None:
        """Start the loop as a task of the running event loop (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=repr(self))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the loop (a request in flight is abandoned) and close an own client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_client:
            await self._client.aclose()

    def _failed(self, what: str, exc: BaseException | str) -> None:
        self.errors += 1
        self.last_error = f"{what}: {exc}"
        _log.info("%r %s", self, self.last_error)
        self._at = (self._at + 1) % len(self.urls)  # the next instance, if there are several

    async def _run(self) -> None:
        raise NotImplementedError


class Replicator(_Worker):
    """Long-polls the online service's change feed into a :class:`LocalStore`."""

    __slots__ = (
        "_backoff", "_empty", "_polling", "_progress", "_skipped_to", "_started_at", "connected",
        "last_sync", "snapshots", "store", "wait",
    )  # fmt: skip

    def __init__(
        self,
        store: LocalStore,
        base_url: str | Sequence[str],
        *,
        client: httpx.AsyncClient | None = None,
        wait: float = 25.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
    ) -> None:
        if not 0 <= wait <= MAX_WAIT:
            raise ValueError(f"wait must be 0-{MAX_WAIT:g} seconds, got {wait}")
        super().__init__(base_url, client, clock, token)
        self.store = store
        self.wait = wait
        self._backoff = backoff or Backoff()
        self._progress = asyncio.Event()
        self._polling = False
        self._empty = False
        #: the feed version read past changes of kinds this version skips (:func:`_known`)
        self._skipped_to = 0
        self._started_at: float | None = None
        self.connected = False
        """Whether the last request to the online service got a usable answer."""
        self.last_sync: float | None = None
        """Monotonic time of the last poll that came back with a usable answer."""
        self.snapshots = 0
        """How many times the replica was reloaded from a snapshot."""

    def __repr__(self) -> str:
        return f"Replicator({self.base_url!r}, version={self.store.version})"

    @property
    def lag(self) -> float:
        """Seconds the replica may be behind: 0 while a poll is open on a healthy connection,
        else the time since the last successful poll (since start when there was none)."""
        if self.connected and self._polling:
            return 0.0
        since = self.last_sync if self.last_sync is not None else self._started_at
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def start(self) -> None:
        if self._started_at is None:
            self._started_at = self._clock()
        super().start()

    async def synced(self, version: int, timeout: float) -> bool:
        """Wait until the replica has applied ``version``; False after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.store.version < version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return True

    def _advanced(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def poll_once(self, wait: float = 0.0) -> int:
        """One poll, or a snapshot on 410 and for an empty replica; returns the replica's version.

        Raises :class:`httpx.HTTPError` when the cloud is unreachable, :class:`FeedError` or
        :class:`ReplicaError` on an answer it cannot use.
        """
        self._empty = False
        if self.store.version == 0 and self.snapshots == 0:  # a fresh replica: skip the history
            return await self._load_snapshot()
        since = max(self.store.version, self._skipped_to)
        params = {"since": str(since), "wait": f"{wait:g}"}
        timeout = httpx.Timeout(5.0, read=wait + _MARGIN)
        response = await self._client.get(
            f"{self.base_url}{CHANGES_PATH}", params=params, timeout=timeout, headers=self._headers
        )
        if response.status_code == 410:
            return await self._load_snapshot()
        if response.status_code != 200:
            raise FeedError(f"change feed: {_error_text(response)}")
        read_to, changes = _changes(_payload(response))
        self._empty = not changes
        version = self.store.apply(changes)
        if read_to > version:  # the answer ended with skipped changes: ask from after them
            self._skipped_to = read_to
        self._advanced()
        return version

    async def _load_snapshot(self) -> int:
        response = await self._client.get(
            f"{self.base_url}{SNAPSHOT_PATH}", timeout=30.0, headers=self._headers
        )
        if response.status_code != 200:
            raise FeedError(f"snapshot: {_error_text(response)}")
        version, changes = _changes(_payload(response))
        self.store.load_snapshot(version, changes)
        self.snapshots += 1
        _log.info("%r reloaded from a snapshot", self)
        self._advanced()
        return version

    async def _run(self) -> None:
        while True:
            self._polling = True
            try:
                await self.poll_once(self.wait)
            except (httpx.HTTPError, FeedError, ReplicaError) as exc:
                self._lost(exc)
                delay = self._backoff.next()
            except Exception as exc:  # a bug must not end replication: log it and go on
                _log.exception("%r: unexpected error", self)
                self._lost(exc)
                delay = self._backoff.next()
            else:
                self.connected = True
                self.last_sync = self._clock()
                self._backoff.reset()
                if not self._empty:
                    continue  # at once: more may be waiting, and the next poll parks anyway
                delay = _IDLE  # an empty answer: do not spin on a cloud that does not hold polls
            finally:
                self._polling = False
            await asyncio.sleep(delay)

    def _lost(self, exc: BaseException) -> None:
        self.connected = False
        self._failed("change feed", exc if str(exc) else type(exc).__name__)


class ApplianceLink(_Worker):
    """Registers the appliance with the online service and sends its heartbeats."""

    __slots__ = (
        "_status", "_wake", "appliance", "heartbeats", "interval", "last_heartbeat",
        "registered", "registrations", "summary",
    )  # fmt: skip

    def __init__(
        self,
        base_url: str | Sequence[str],
        appliance: Mapping[str, Any],
        *,
        interval: float,
        status: Callable[[], str],
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval}")
        if not isinstance(appliance.get("name"), str):
            raise ValueError("the appliance needs a 'name'")
        super().__init__(base_url, client, clock, token)
        self.appliance = dict(appliance)
        self.interval = interval
        self._status = status
        self._wake = asyncio.Event()
        self.registered = False
        """Whether the online service acknowledged the registration and the last heartbeat."""
        self.registrations = 0
        self.heartbeats = 0
        self.last_heartbeat: float | None = None
        """Monotonic time of the last heartbeat the online service accepted."""
        self.summary: Callable[[], dict[str, Any]] | None = None
        """What each heartbeat tells of the appliance at a glance (the dashboard's overview,
        ``online/heartbeat_summary.py``); dropped when the online service refuses it."""

    def __repr__(self) -> str:
        return f"ApplianceLink({self.base_url!r}, {self.appliance['name']!r})"

    @property
    def name(self) -> str:
        return str(self.appliance["name"])

    async def register(self) -> None:
        """``POST /v1/appliances``; :class:`FeedError` when refused."""
        response = await self._client.post(
            f"{self.base_url}{APPLIANCES_PATH}", json=self.appliance, timeout=10.0,
            headers=self._headers,
        )  # fmt: skip
        if response.status_code not in (200, 201):
            self.registered = False
            raise FeedError(f"registration: {_error_text(response)}")
        self.registered = True
        self.registrations += 1

    async def heartbeat(self) -> None:
        """One heartbeat; registers first (or again, after a 404) when needed."""
        if not self.registered:
            await self.register()
        body: dict[str, Any] = {"status": self._current_status()}
        if isinstance(self.appliance.get("version"), str):
            body["version"] = self.appliance["version"]
        if self.summary is not None:
            body["summary"] = self.summary()
        url = f"{self.base_url}{APPLIANCES_PATH}/{quote(self.name, safe='')}/heartbeat"
        response = await self._client.post(url, json=body, timeout=10.0, headers=self._headers)
        if response.status_code == 422 and body.pop("summary", None) is not None:
            self.summary = None  # an online service older than summaries: beat without
            response = await self._client.post(url, json=body, timeout=10.0, headers=self._headers)
        if response.status_code == 404:  # the cloud forgot us: register, then beat again
            self.registered = False
            await self.register()
            response = await self._client.post(url, json=body, timeout=10.0, headers=self._headers)
        if response.status_code != 200:
            raise FeedError(f"heartbeat: {_error_text(response)}")
        self.heartbeats += 1
        self.last_heartbeat = self._clock()

    def beat_now(self) -> None:
        """Send the next heartbeat at once instead of after the interval: the appliance's
        status changed (maintenance entered or left), and the cloud spreads new calls by it."""
        self._wake.set()

    def _current_status(self) -> str:
        try:
            return self._status()
        except Exception:  # the status probe is the host's code: report, do not stop
            _log.exception("%r: status callback failed", self)
            return "online"

    async def _run(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except (httpx.HTTPError, FeedError) as exc:
                self._failed("heartbeat", exc if str(exc) else type(exc).__name__)
            except Exception as exc:  # a bug must not end the heartbeats
                _log.exception("%r: unexpected error", self)
                self._failed("heartbeat", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
