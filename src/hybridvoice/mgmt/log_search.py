"""Search the rotated JSON log files of :mod:`.logs` (the original's ``Search-CcLog``).

No RFC is implemented here. The files are ``hybridvoice.log`` and its rotated copies
``hybridvoice.log.1`` ... ``.N`` in a log directory; each line is one JSON object (RFC 8259)
with ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``message`` and fields such as
``call_id`` and ``call``. :func:`search` reads them oldest first and keeps the lines that
match every filter given: a time range (``since`` inclusive, ``until`` exclusive), a Call-ID
(matched against ``call_id`` and ``call``: either leg's Call-ID finds the whole call), a
minimum level, a component (the logger ``hybridvoice.<component>`` and what is under it).
A line that is not a JSON object with a readable ``ts`` is skipped and counted, never fatal.

:func:`parse_when` reads the command line's times: ``1h``, ``30m``, ``2d`` (that long ago)
or an ISO 8601 moment (UTC when no offset is given).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from .logs import COMPONENTS, LEVELS, LOG_FILE

__all__ = ["LogLine", "LogQuery", "LogSearchError", "SearchResult", "parse_when", "search"]

_AGO: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RANK: Final = {name: rank for rank, name in enumerate(LEVELS)}


class LogSearchError(ValueError):
    """A time, level or directory the search cannot use (the message names it)."""


@dataclass(frozen=True, slots=True)
class LogQuery:
    """What to keep; ``None``: no filter on that."""

    since: datetime | None = None
    until: datetime | None = None
    call_id: str | None = None
    level: str | None = None
    component: str | None = None

    def __post_init__(self) -> None:
        if self.level is not None and self.level.lower() not in _RANK:
            raise LogSearchError(f"--level: unknown level {self.level!r}: use {', '.join(LEVELS)}")
        if self.component is not None and self.component not in COMPONENTS:
            raise LogSearchError(
                f"--component: unknown component {self.component!r}: use one of "
                f"{', '.join(sorted(COMPONENTS))}"
            )
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise LogSearchError("--until must be after --since: the range is empty")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One matching line: its time, level, logger, message and every field."""

    ts: datetime
    level: str
    logger: str
    message: str
    fields: dict[str, Any]
    source: str  # the file it came from

    @property
    def component(self) -> str:
        parts = self.logger.split(".")
        return parts[1] if len(parts) > 1 and parts[0] == "hybridvoice" else self.logger


@dataclass(slots=True)
class SearchResult:
    """The lines found (oldest first), the files read and the lines skipped as malformed."""

    lines: list[LogLine] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    malformed: int = 0


def parse_when(text: str, now: datetime, option: str = "--since") -> datetime:
    """``1h`` / ``30m`` / ``2d`` / ``90s`` / ``1w`` before ``now``, or an ISO 8601 time."""
    match = _AGO.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise LogSearchError(
            f"{option}: cannot read {text!r}: give a duration ago (30m, 1h, 2d) or a time "
            "(2026-12-07T02:00 or 2026-12-07T02:00:00Z)"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def log_files(directory: Path) -> list[Path]:
    """The log file and its rotated copies, oldest first (``.5`` ... ``.1``, then the file)."""
    if not directory.is_dir():
        raise LogSearchError(f"no log directory at {directory}: nothing has been logged there")
    rotated = []
    for path in directory.glob(f"{LOG_FILE}.*"):
        suffix = path.name[len(LOG_FILE) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    files = [path for _, path in sorted(rotated, reverse=True)]
    current = directory / LOG_FILE
    if current.exists():
        files.append(current)
    return files


def _parse(raw: str, source: str) -> LogLine | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    try:
        ts = datetime.fromisoformat(str(obj["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return LogLine(
        ts=ts,
        level=str(obj.get("level", "info")).lower(),
        logger=str(obj.get("logger", "")),
        message=str(obj.get("message", "")),
        fields={k: v for k, v in obj.items() if k not in ("ts", "level", "logger", "message")},
        source=source,
    )


def _matches(line: LogLine, query: LogQuery) -> bool:
    if query.since is not None and line.ts < query.since:
        return False
    if query.until is not None and line.ts >= query.until:
        return False
    if query.level is not None and _RANK.get(line.level, 0) < _RANK[query.level.lower()]:
        return False
    if query.component is not None:
        prefix = f"hybridvoice.{query.component}"
        if line.logger != prefix and not line.logger.startswith(prefix + "."):
            return False
    if query.call_id is not None:
        wanted = query.call_id
        if wanted not in (line.fields.get("call_id"), line.fields.get("call")):
            return False
    return True


def iter_lines(files: list[Path], result: SearchResult) -> Iterator[LogLine]:
    """Every well-formed line of ``files`` in order; the malformed ones counted in ``result``."""
    for path in files:
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:  # rotated away while we read
            continue
        result.files.append(str(path))
        with handle:
            for raw in handle:
                if not raw.strip():
                    continue
                line = _parse(raw, path.name)
                if line is None:
                    result.malformed += 1
                else:
                    yield line


def search(directory: Path, query: LogQuery, limit: int | None = None) -> SearchResult:
    """The lines of ``directory``'s log files matching ``query``, oldest first; with
    ``limit``, the newest ``limit`` of them."""
    result = SearchResult()
    found = [ln for ln in iter_lines(log_files(directory), result) if _matches(ln, query)]
    found.sort(key=lambda ln: ln.ts)  # stable: lines of one moment keep their order
    result.lines = found[-limit:] if limit else found
    return result
