"""The call record store's queries: committed rows, read through their own connection.

The reading half of :class:`~hybridvoice.mediation.records.CallRecordStore`; any thread may
call these (a status page can use a worker thread). The record is the one of
:mod:`hybridvoice.mediation.records_model` (Call-IDs of both legs, RFC 3261 §8.1.1.4).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .records_errors import StoreClosedError
from .records_model import SELECT_SQL, CallRecord, from_row, iso_utc

__all__ = ["RecordQueries"]


class RecordQueries:
    """Queries of committed records (mixed into the store)."""

    path: Path
    _closed: bool
    _reader: sqlite3.Connection
    _read_lock: threading.Lock

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._read_lock:
            if self._closed:
                raise StoreClosedError(f"{self.path}: call record store is closed")
            return self._reader.execute(sql, params).fetchall()

    def _records(self, where: str, params: Sequence[Any]) -> list[CallRecord]:
        return [from_row(row) for row in self._query(f"{SELECT_SQL} {where}", params)]

    def recent(self, limit: int = 50) -> list[CallRecord]:
        """The newest ``limit`` committed records, newest first."""
        return self._records("ORDER BY start_utc DESC, rowid DESC LIMIT ?", (limit,))

    def by_record_id(self, record_id: str) -> CallRecord | None:
        """The committed row with this record id."""
        found = self._records("WHERE record_id = ?", (record_id,))
        return found[0] if found else None

    def between(self, start: datetime, end: datetime) -> list[CallRecord]:
        """Committed calls that started in ``[start, end)``, oldest first (aware datetimes)."""
        where = "WHERE start_utc >= ? AND start_utc < ? ORDER BY start_utc, rowid"
        return self._records(where, (iso_utc(start), iso_utc(end)))

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        return int(self._query("SELECT version FROM schema_version", ())[0][0])
