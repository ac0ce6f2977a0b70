"""Durable call records (CDRs) of the mediation role: one row per call, in SQLite.

This module is the store, :class:`CallRecordStore`: the live calls and the events that change
them. Its writer thread and the loop's waits for it are in :mod:`.records_writer` (the
adapter), its queries in :mod:`.records_query`, its errors in :mod:`.records_errors`. The
record itself (what it holds: times, direction, numbers, gateway, failover attempts, media
decision, RTP counters per leg (RFC 3550 §6.4), who hung up, the Call-IDs of both legs
(RFC 3261 §8.1.1.4)), the schema and its migrations, and the row encoding live in
:mod:`hybridvoice.mediation.records_model`; every public name there that callers used from here
is re-exported, so ``from hybridvoice.mediation.records import CallRecord`` keeps working.

Durability, and why these defaults:

- The journal is WAL by default (``journal_mode`` is configurable; a rollback journal is for
  file systems without shared memory). A committed transaction is in the WAL file, that is in
  the OS page cache, the moment ``COMMIT`` returns. Killing the process (``kill -9``, a crash)
  cannot take it back: the next open replays the WAL. So ``synchronous=NORMAL`` already meets
  "a killed process loses no finished call's record". What NORMAL does not survive is an OS
  crash or power loss, which may roll back the last commits (the database stays consistent);
  ``synchronous="FULL"`` fsyncs the WAL on every commit and survives those too, at an fsync
  per group commit. It is an option, not the default, because appliances are expected to run
  on journalled file systems with the process, not the host, as the usual failure.
- Writes never block the event loop: events go on a queue to one writer thread. When an
  event arrives it waits ``commit_window_s`` (10 ms by default), then takes whatever is queued
  (up to ``max_batch``) and commits it as one transaction (group commit); the newest snapshot
  of a record in a batch is the one written. One commit per window instead of one per event
  roughly halves what records cost per call at a few hundred calls/s (a commit is a WAL
  append, and the writer competes with the event loop for the interpreter lock each time it
  runs). The price: an event is durable up to one window after the call returns, not at once;
  a process killed within that window loses the events of those last milliseconds (a call
  that had started earlier keeps its row). ``commit_window_s=0`` commits as soon as the writer
  runs. Each write returns a :class:`concurrent.futures.Future` that
  resolves when the commit is done; a caller that must know (before it acknowledges, in tests)
  awaits it with ``asyncio.wrap_future``. A record is written when the call starts (state
  ``active``), at answer and at the end; ringing, routing, failover attempts and the media
  decision are kept in memory and written with the next of those.
- A crash mid-call leaves the row ``active``; opening the store marks every such row
  ``interrupted`` (``recovered`` says how many), so no call goes unrecorded. A store owns its
  file: two live processes must not share one.
- The schema is versioned: a ``schema_version`` table and the :data:`MIGRATIONS` list
  (in :mod:`~hybridvoice.mediation.records_model`), applied in order inside one transaction
  when the store opens.

Thread model: the event methods and :meth:`CallRecordStore.counters` are for the one thread
that runs the calls (the event loop) and touch only memory and the queue; the queries read
through their own connection under a lock and may be called from any thread (a status page can
use ``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hybridvoice.mediation.bypass import MediaMode
from hybridvoice.mediation.records_model import (
    COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    CallCounters,
    CallRecord,
    CallState,
    Direction,
    DisconnectSide,
    FailoverAttempt,
    MediaCounters,
    StoreOptions,
)

from .records_errors import (
    DuplicateCallError,
    RecordStoreError,
    SchemaVersionError,
    StoreClosedError,
    UnknownCallError,
)
from .records_observed import ObservedPaths
from .records_quality import MosTally, call_mos
from .records_query import RecordQueries
from .records_writer import _FLUSH, _PUT, _STOP, LoopWaits, WriteFuture, _Put, _Writer

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CallCounters",
    "CallRecord",
    "CallRecordStore",
    "CallState",
    "Direction",
    "DisconnectSide",
    "DuplicateCallError",
    "FailoverAttempt",
    "MediaCounters",
    "RecordStoreError",
    "SchemaVersionError",
    "StoreClosedError",
    "StoreOptions",
    "UnknownCallError",
]

log = logging.getLogger(__name__)

_INTERRUPTED_CAUSE = "interrupted: the process stopped before the call ended"


def _connect(
    path: Path, options: StoreOptions, *, check_same_thread: bool = True
) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {int(options.busy_timeout_ms)}")
    mode = conn.execute(f"PRAGMA journal_mode = {options.journal_mode.upper()}").fetchone()[0]
    if str(mode).upper() != options.journal_mode.upper():
        conn.close()
        raise RecordStoreError(f"{path}: journal_mode {options.journal_mode} refused ({mode})")
    conn.execute(f"PRAGMA synchronous = {options.synchronous.upper()}")
    return conn


def _migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found on disk."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        found = 0 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"call records schema version {found} is newer than this build's {SCHEMA_VERSION}"
            )
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


class _Live:
    """A call in progress: its fields (a plain dict, cheap to change), the frozen snapshot
    built from them when needed, and the monotonic marks for the durations."""

    __slots__ = ("_snapshot", "answered_at", "fields", "started_at")

    def __init__(self, record: CallRecord, started_at: float) -> None:
        self.fields: dict[str, Any] = {name: getattr(record, name) for name in COLUMNS}
        self._snapshot: CallRecord | None = record
        self.started_at = started_at
        self.answered_at: float | None = None

    def change(self, changes: dict[str, Any]) -> None:
        self.fields.update(changes)
        self._snapshot = None

    @property
    def record(self) -> CallRecord:
        if self._snapshot is None:
            self._snapshot = CallRecord(**self.fields)
        return self._snapshot


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class CallRecordStore(LoopWaits, RecordQueries):
    """Call records in one SQLite file, written by a background thread.

    ``CallRecordStore(path)`` applies migrations, marks rows a previous process left ``active``
    as ``interrupted`` (``recovered`` counts them) and starts the writer. :meth:`close` (or
    :meth:`aclose` on the event loop) writes live calls as interrupted and flushes the queue.
    Clocks and ids are injected for tests.
    """

    def __init__(
        self,
        path: str | Path,
        options: StoreOptions | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        utc_now: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = _new_id,
        mos_threshold: float = 3.6,
    ) -> None:
        self.path = Path(path)
        self.options = options or StoreOptions()
        self._monotonic, self._utc_now, self._new_id = monotonic, utc_now, new_id
        self._live: dict[str, _Live] = {}
        #: a call whose MOS estimate is below this is flagged ``mos_poor`` (``[Traces]``)
        self.mos_threshold = mos_threshold
        self.mos_tally = MosTally()
        self._closed = False
        writer = _connect(self.path, self.options, check_same_thread=False)
        try:
            self.schema_version_found = _migrate(writer)
            self.recovered = writer.execute(
                "UPDATE calls SET state = ?, cause = COALESCE(cause, ?) WHERE state = ?",
                (CallState.INTERRUPTED.value, _INTERRUPTED_CAUSE, CallState.ACTIVE.value),
            ).rowcount
            self._reader = _connect(self.path, self.options, check_same_thread=False)
        except BaseException:
            writer.close()
            raise
        self._reader.execute("PRAGMA query_only = ON")
        self._read_lock = threading.Lock()
        self._writer = _Writer(writer, self.options.max_batch, self.options.commit_window_s)

    # -- writing (the event loop's thread) ------------------------------------------------------

    def write(self, record: CallRecord) -> WriteFuture:
        """Queue an insert-or-replace of ``record`` (by ``record_id``); resolves once committed."""
        return self._submit(record)

    def _submit(self, item: _Put) -> WriteFuture:
        if self._closed:
            raise StoreClosedError(f"{self.path}: call record store is closed")
        return self._writer.submit(_PUT, item)

    def _get(self, a_call_id: str) -> _Live:
        try:
            return self._live[a_call_id]
        except KeyError:
            raise UnknownCallError(f"no live call with Call-ID {a_call_id!r}") from None

    def _change(self, a_call_id: str, **changes: Any) -> _Live:
        live = self._get(a_call_id)
        live.change(changes)
        return live

    def start(
        self,
        a_call_id: str,
        *,
        direction: Direction,
        caller: str,
        callee: str,
        caller_translated: str | None = None,
        callee_translated: str | None = None,
    ) -> CallRecord:
        """A new call arrived on the a-leg: record it as ``active`` (written at once)."""
        if a_call_id in self._live:
            raise DuplicateCallError(f"a live call already has Call-ID {a_call_id!r}")
        record = CallRecord(
            record_id=self._new_id(), a_call_id=a_call_id, direction=direction, caller=caller,
            callee=callee, start_utc=self._utc_now(), caller_translated=caller_translated,
            callee_translated=callee_translated,
        )  # fmt: skip
        self._live[a_call_id] = _Live(record, self._monotonic())  # first: ended() finds it
        self.write(record)
        return record

    def route(
        self,
        a_call_id: str,
        *,
        gateway: str | None = None,
        trunk: str | None = None,
        b_call_id: str | None = None,
        caller_translated: str | None = None,
        callee_translated: str | None = None,
    ) -> None:
        """Where the call went: b-leg Call-ID, gateway, trunk, translated numbers (given ones)."""
        given = {
            "gateway": gateway, "trunk": trunk, "b_call_id": b_call_id,
            "caller_translated": caller_translated, "callee_translated": callee_translated,
        }  # fmt: skip
        self._change(a_call_id, **{k: v for k, v in given.items() if v is not None})

    def attempt(self, a_call_id: str, gateway: str, outcome: str) -> None:
        """A gateway was tried: append (gateway, outcome) to the failover attempts."""
        live = self._get(a_call_id)
        live.change({"attempts": (*live.fields["attempts"], FailoverAttempt(gateway, outcome))})

    def media(self, a_call_id: str, mode: MediaMode, reason: str) -> None:
        """The media decision (``bypass.decide_bypass``): mode and reason."""
        self._change(a_call_id, media_mode=mode, media_reason=reason)

    def observed(self, a_call_id: str, paths: ObservedPaths) -> None:
        """The addresses the call's signalling and media used (:mod:`.records_observed`)."""
        self._change(a_call_id, observed=paths)

    def ringing(self, a_call_id: str) -> None:
        """The first 180/183 (later ones change nothing)."""
        live = self._get(a_call_id)
        if live.fields["ring_utc"] is None:
            after = self._monotonic() - live.started_at
            live.change({"ring_utc": self._utc_now(), "ring_after": after})

    def answered(self, a_call_id: str) -> WriteFuture:
        """The 200 OK to the INVITE: record the answer time (written at once)."""
        live = self._get(a_call_id)
        live.answered_at = self._monotonic()
        after = live.answered_at - live.started_at
        live.change({"answer_utc": self._utc_now(), "answer_after": after})
        return self._put(live)

    def ended(
        self,
        a_call_id: str,
        *,
        side: DisconnectSide,
        sip_status: int | None = None,
        cause: str | None = None,
        a_media: MediaCounters | None = None,
        b_media: MediaCounters | None = None,
    ) -> WriteFuture:
        """The call is over (BYE, CANCEL, final failure): write the final record (the RTCP
        loss/jitter columns come from the counters' ``reported_*`` values)."""
        live = self._get(a_call_id)
        now = self._monotonic()
        talk = None if live.answered_at is None else now - live.answered_at
        quality = call_mos(a_media, b_media, self.mos_threshold)
        if quality is not None:
            self.mos_tally.add(live.fields["gateway"], quality)
        live.change({
            "state": CallState.ENDED, "disconnect_side": side, "sip_status": sip_status,
            "cause": cause, "a_media": a_media, "b_media": b_media,
            "end_utc": self._utc_now(), "duration": now - live.started_at, "talk_time": talk,
            "a_reported_lost": None if a_media is None else a_media.reported_packets_lost,
            "a_reported_jitter_ms": None if a_media is None else a_media.reported_jitter_ms,
            "b_reported_lost": None if b_media is None else b_media.reported_packets_lost,
            "b_reported_jitter_ms": None if b_media is None else b_media.reported_jitter_ms,
            "mos": None if quality is None else quality.mos,
            "mos_poor": None if quality is None else quality.poor,
        })  # fmt: skip
        del self._live[a_call_id]
        return self._put(live)

    def _put(self, live: _Live) -> WriteFuture:
        """Queue the write of a live call's fields as they are now (no record is built)."""
        return self._submit(dict(live.fields))

    def live(self, a_call_id: str) -> CallRecord | None:
        """The in-memory snapshot of a call in progress."""
        found = self._live.get(a_call_id)
        return None if found is None else found.record

    def counters(self) -> CallCounters:
        """Calls now, per direction, bypass and anchored; from memory, never blocks."""
        calls = [live.fields for live in self._live.values()]
        return CallCounters(
            active=len(calls),
            inbound=sum(c["direction"] is Direction.INBOUND for c in calls),
            outbound=sum(c["direction"] is Direction.OUTBOUND for c in calls),
            bypass=sum(c["media_mode"] is MediaMode.BYPASS for c in calls),
            anchored=sum(c["media_mode"] is MediaMode.ANCHORED for c in calls),
            pending_writes=self._writer.pending(),
            write_errors=self._writer.errors,
        )

    def by_call_id(self, call_id: str) -> CallRecord | None:
        """The call with this Call-ID on either leg: the live snapshot, else the newest row."""
        for live in list(self._live.values()):  # one C-level copy: safe from other threads
            if call_id in (live.fields["a_call_id"], live.fields["b_call_id"]):
                return live.record
        where = "WHERE a_call_id = ? OR b_call_id = ? ORDER BY start_utc DESC LIMIT 1"
        found = self._records(where, (call_id, call_id))
        return found[0] if found else None

    # -- flushing and closing -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed (not on the event loop)."""
        if not self._closed:  # a closed store has flushed already
            self._writer.submit(_FLUSH).result(timeout)

    def _begin_close(self, interrupt_live: bool) -> WriteFuture | None:
        if self._closed:
            return None
        if interrupt_live:
            for a_call_id in list(self._live):
                live = self._change(
                    a_call_id, state=CallState.INTERRUPTED, cause=_INTERRUPTED_CAUSE
                )
                self.write(live.record)
        self._live.clear()
        with self._read_lock:
            self._closed = True
            self._reader.close()
        return self._writer.submit(_STOP)

    def close(self, *, interrupt_live: bool = True, timeout: float | None = 30.0) -> None:
        """Flush and stop the writer; live calls are written ``interrupted`` first."""
        stopped = self._begin_close(interrupt_live)
        if stopped is not None:
            stopped.result(timeout)
            self._writer.join(timeout)

    def __enter__(self) -> CallRecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
