"""Structured logs: one handler on the root logger, JSON lines or text for humans.

No RFC is implemented here. JSON lines (RFC 8259 objects, one per line) carry ``ts`` (ISO 8601
UTC with milliseconds, RFC 3339 §5.6: ``2026-11-24T02:22:07.123Z``), ``level`` (lower case),
``logger``, ``message``, every field given with ``extra=`` (``call_id``, ``gateway``...; a
field named like one of those four is written as ``extra_<name>``), and ``exc`` / ``stack``
when the record has them. The text format is the same on one line:
``2026-11-24T02:22:07.123Z INFO  hybridvoice.mediation: call refused call_id=abc``.

:func:`configure_logging` is idempotent: it replaces the handler it installed before (marked as
its own), leaves every other handler alone and keeps no state beyond that handler.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

__all__ = ["JsonFormatter", "LogFormat", "LoggingSetupError", "TextFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]

#: attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_CORE: Final = ("ts", "level", "logger", "message")


class LoggingSetupError(ValueError):
    """An unknown log level or format."""


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        (f"extra_{key}" if key in _CORE else key): value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: message key=value...`` and the traceback below, if any."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


class _OwnedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler :func:`configure_logging` installs (and replaces on the next call)."""


def configure_logging(
    level: str = "info", fmt: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Log records at ``level`` and above (``debug``, ``info``, ``warning``, ``error``,
    ``critical``; any case) to ``stream`` (default: standard error) in ``fmt``.

    Raises :class:`LoggingSetupError` for an unknown level or format.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise LoggingSetupError(
            f"unknown log level {level!r}: use debug, info, warning, error or critical"
        )
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif fmt == "text":
        formatter = TextFormatter()
    else:
        raise LoggingSetupError(f"unknown log format {fmt!r}: use text or json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OwnedHandler)]:
        root.removeHandler(old)
        old.close()  # a StreamHandler never closes its stream
    handler = _OwnedHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(numeric)
