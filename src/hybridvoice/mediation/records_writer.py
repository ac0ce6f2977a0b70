"""The call record store's writer thread and the event loop's way to wait for it.

The I/O half of :class:`~hybridvoice.mediation.records.CallRecordStore`: :class:`_Writer` is
the one thread that writes (group commit of whatever is queued, futures resolved after), and
:class:`LoopWaits` gives the store :meth:`~LoopWaits.aflush` and :meth:`~LoopWaits.aclose`,
which await the writer without blocking the loop. A named adapter of the import rules.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from .records_model import UPSERT_SQL, CallRecord, row_of, to_row

__all__ = ["LoopWaits", "WriteFuture"]

log = logging.getLogger("hybridvoice.mediation.records")

WriteFuture = concurrent.futures.Future[None]

_STOP, _FLUSH, _PUT = "stop", "flush", "put"
#: what is written: a record, or a live call's fields (a copy; the writer makes the row)
_Put = CallRecord | dict[str, Any]
_Item = tuple[str, _Put | None, WriteFuture]


class _Writer:
    """The one thread that writes: group commit of whatever is queued, futures resolved after."""

    __slots__ = ("_conn", "_max_batch", "_queue", "_thread", "_window", "commits", "errors")

    def __init__(self, conn: sqlite3.Connection, max_batch: int, window: float) -> None:
        self._conn = conn  # opened by the caller so open errors surface there; used only here
        self._max_batch = max_batch
        self._window = window
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.errors = 0
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="call-records", daemon=True)
        self._thread.start()

    def submit(self, kind: str, record: _Put | None = None) -> WriteFuture:
        future: WriteFuture = concurrent.futures.Future()
        self._queue.put((kind, record, future))
        return future

    def pending(self) -> int:
        return self._queue.qsize()

    def join(self, timeout: float | None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                if self._window and batch[0][0] == _PUT:
                    time.sleep(self._window)  # let the batch grow: one commit per window
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._write(batch)
        finally:
            self._conn.close()

    def _write(self, batch: list[_Item]) -> bool:
        rows: dict[str, tuple[Any, ...]] = {}
        failed: dict[int, Exception] = {}
        for index, (kind, record, _) in enumerate(batch):
            if kind == _PUT and record is not None:
                try:
                    if type(record) is dict:  # the newest snapshot of a record wins
                        rows[record["record_id"]] = row_of(record)
                    else:
                        assert isinstance(record, CallRecord)
                        rows[record.record_id] = to_row(record)
                except (ValueError, TypeError) as exc:
                    failed[index] = exc
        try:
            if rows:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(UPSERT_SQL, rows.values())
                self._conn.execute("COMMIT")
                self.commits += 1
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            failed.update((i, exc) for i, (kind, _, _) in enumerate(batch) if kind == _PUT)
        if failed:
            self.errors += len(failed)
            log.error(
                "call records: %d write(s) failed: %s", len(failed), next(iter(failed.values()))
            )
        for index, (_, _, future) in enumerate(batch):
            if index in failed:
                future.set_exception(failed[index])
            else:
                future.set_result(None)
        return any(kind == _STOP for kind, _, _ in batch)


class LoopWaits:
    """:meth:`aflush` and :meth:`aclose` of the store, for the event loop."""

    _closed: bool
    _writer: _Writer

    if TYPE_CHECKING:  # the class this is mixed into defines it

        def _begin_close(self, interrupt_live: bool) -> WriteFuture | None: ...

    async def aflush(self) -> None:
        """:meth:`flush` for the event loop: waits without blocking it."""
        if not self._closed:
            await asyncio.wrap_future(self._writer.submit(_FLUSH))

    async def aclose(self, *, interrupt_live: bool = True) -> None:
        """:meth:`close` for the event loop."""
        stopped = self._begin_close(interrupt_live)
        if stopped is not None:
            await asyncio.wrap_future(stopped)
            await asyncio.to_thread(self._writer.join, 30.0)
