"""The audit log of the management APIs: who changed what, when, from what to what.

Every write request that carried a valid token leaves one row (``audit`` table of the SQLite
database its API keeps, next to the tokens): when, the token's id and name, the source address,
the operation (``user.set``, ``maintenance.enter``...), its target, the HTTP status, and the
changed object before and after as JSON. Secrets never reach the log: values of keys that name
one (password, secret, token, HA1...) are replaced by ``***`` at any depth.

Rows are kept until :data:`MAX_ROWS` are reached; then the oldest go, so a busy API cannot fill
the disk with its log.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

__all__ = ["MASK", "MAX_ROWS", "AuditEntry", "AuditLog", "masked"]

MASK: Final = "***"
MAX_ROWS: Final = 100_000
_SECRET_KEY: Final = re.compile(r"password|secret|token|ha1|credential|private", re.IGNORECASE)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, token_id TEXT NOT NULL,
    token_name TEXT NOT NULL, source TEXT NOT NULL, operation TEXT NOT NULL, target TEXT NOT NULL,
    status INTEGER NOT NULL, before TEXT, after TEXT
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
"""


def masked(value: Any) -> Any:
    """``value`` with the values of secret-looking keys replaced by :data:`MASK`, at any depth."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if _SECRET_KEY.search(str(k)) and _secret_value(v) else masked(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def _secret_value(value: Any) -> bool:
    """A value that can hold a secret (``has_password: true`` is no secret)."""
    return value is not None and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: float
    token_id: str
    token_name: str
    source: str
    operation: str
    target: str
    status: int
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    """The ``audit`` table of ``db`` (created when missing), written under ``lock``."""

    def __init__(
        self,
        db: sqlite3.Connection,
        lock: threading.RLock,
        clock: Callable[[], float] = time.time,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self._db, self._lock, self._clock, self._max_rows = db, lock, clock, max_rows
        with lock:
            db.executescript(_SCHEMA)

    def record(
        self,
        *,
        token_id: str,
        token_name: str,
        source: str,
        operation: str,
        target: str,
        status: int,
        before: Any = None,
        after: Any = None,
    ) -> AuditEntry:
        """Append one row (secrets masked) and return it."""
        before, after = masked(before), masked(after)
        at = self._clock()
        values = (at, token_id, token_name, source, operation, target, status,
                  _json(before), _json(after))  # fmt: skip
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO audit (at, token_id, token_name, source, operation, target, status, "
                "before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            row_id = int(cursor.lastrowid or 0)
            if row_id > self._max_rows and row_id % 1000 == 0:  # prune now and then, not per row
                self._db.execute("DELETE FROM audit WHERE id <= ?", (row_id - self._max_rows,))
        return AuditEntry(row_id, at, token_id, token_name, source, operation, target, status,
                          before, after)  # fmt: skip

    def entries(
        self,
        *,
        since: float | None = None,
        limit: int = 100,
        operation: str | None = None,
        target: str | None = None,
        token: str | None = None,
    ) -> list[AuditEntry]:
        """The newest ``limit`` rows at or after ``since`` (epoch seconds), newest first;
        ``operation`` matches a prefix (``user`` matches ``user.set``), ``token`` the id or
        the name, ``target`` exactly."""
        where: list[str] = ["1 = 1"]
        args: list[float | str] = []
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if operation:
            where.append("operation LIKE ? ESCAPE '\\'")
            args.append(_like_prefix(operation))
        if target:
            where.append("target = ?")
            args.append(target)
        if token:
            where.append("(token_id = ? OR token_name = ?)")
            args += [token, token]
        sql = (f"SELECT * FROM audit WHERE {' AND '.join(where)} "
               "ORDER BY id DESC LIMIT ?")  # fmt: skip
        with self._lock:
            rows = self._db.execute(sql, (*args, max(1, limit))).fetchall()
        return [_entry(row) for row in rows]


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    row_id, at, token_id, token_name, source, operation, target, status, before, after = row
    return AuditEntry(row_id, at, token_id, token_name, source, operation, target, status,
                      _loads(before), _loads(after))  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
