"""Structured logs: one handler on the root logger, JSON lines or text for humans.

No RFC is implemented here. JSON lines (RFC 8259 objects, one per line) carry ``ts`` (ISO 8601
UTC with milliseconds, RFC 3339 §5.6: ``2026-11-24T02:22:07.123Z``), ``level`` (lower case),
``logger``, ``message``, every field given with ``extra=`` (``call_id``, ``gateway``...; a
field named like one of those four is written as ``extra_<name>``), and ``exc`` / ``stack``
when the record has them. The text format is the same on one line:
``2026-11-24T02:22:07.123Z INFO  hybridvoice.mediation: call refused call_id=abc``.

:func:`configure_logging` is idempotent: it replaces the handlers it installed before (marked as
its own), leaves every other handler alone and keeps no state beyond those handlers.

Call correlation: every line logged while a SIP message or a call is handled carries
``call_id`` (the Call-ID of the message's leg) and ``call`` (the call's correlation id, the
a-leg's Call-ID, which finds its call record), read from the context variables of
:mod:`hybridvoice.net.log_context` by :class:`CallContextFilter` (a field given with
``extra=`` wins).

Per-component levels: ``components={"mediation": "debug"}`` sets the level of the logger
``hybridvoice.mediation`` (and so of everything under it); the others follow ``level``.

Files: with ``directory``, every line (at the levels above) is also written as JSON to
``DIRECTORY/hybridvoice.log``, rotated at ``max_bytes`` into ``hybridvoice.log.1`` ...
``.N`` (``backups``), which ``hybridvoice logs search`` reads (:mod:`.log_search`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, Final, Literal, TextIO

from hybridvoice.net.log_context import CALL, leg_call_id
from hybridvoice.net.log_levels import (
    COMPONENTS,
    LEVELS,
    LoggingSetupError,
    parse_components,
    parse_level,
)
from hybridvoice.net.log_levels import check_component as _check_component

__all__ = [
    "COMPONENTS",
    "LEVELS",
    "LOG_FILE",
    "CallContextFilter",
    "JsonFormatter",
    "LogFormat",
    "LoggingSetupError",
    "TextFormatter",
    "configure_logging",
    "current_levels",
    "parse_components",
    "parse_level",
    "set_levels",
]

#: the file name in the log directory (rotated copies: ``.1`` ... ``.N``)
LOG_FILE: Final = "hybridvoice.log"
LogFormat = Literal["text", "json"]

#: attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_CORE: Final = ("ts", "level", "logger", "message")


class CallContextFilter(logging.Filter):
    """Adds ``call_id`` and ``call`` (see the module docstring) to records that lack them."""

    def filter(self, record: logging.LogRecord) -> bool:
        leg, call = leg_call_id(), CALL.get()
        if leg is not None and not hasattr(record, "call_id"):
            record.call_id = leg
        if call is not None and not hasattr(record, "call"):
            record.call = call
        return True


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
    """The root handler :func:`configure_logging` installs (and replaces on the next call);
    it remembers the component loggers it set, so that the next call can reset them."""

    components: tuple[str, ...] = ()


class _OwnedFile(RotatingFileHandler):
    """The log file :func:`configure_logging` installs (and replaces on the next call)."""


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "text",
    stream: TextIO | None = None,
    *,
    components: Mapping[str, str] | None = None,
    directory: Path | None = None,
    max_bytes: int = 10_000_000,
    backups: int = 5,
) -> None:
    """Log records at ``level`` and above (``debug``, ``info``, ``warning``, ``error``,
    ``critical``; any case) to ``stream`` (default: standard error) in ``fmt``; the loggers
    of ``components`` at their own levels; with ``directory``, also to its rotated JSON file.

    Raises :class:`LoggingSetupError` for an unknown level, format or component, or a log
    directory that cannot be written; nothing is changed then.
    """
    numeric = parse_level(level)
    levels = {name: parse_level(lvl, f"log component {name}")
              for name, lvl in (components or {}).items()}  # fmt: skip
    for name in levels:
        _check_component(name)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif fmt == "text":
        formatter = TextFormatter()
    else:
        raise LoggingSetupError(f"unknown log format {fmt!r}: use text or json")
    if max_bytes < 1000 or backups < 1:
        raise LoggingSetupError(
            f"log files: max_bytes must be at least 1000 and backups at least 1, "
            f"got {max_bytes} and {backups}"
        )
    file_handler: _OwnedFile | None = None
    if directory is not None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            file_handler = _OwnedFile(
                directory / LOG_FILE, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        except OSError as exc:
            raise LoggingSetupError(
                f"log directory {directory}: cannot write there ({exc.strerror or exc})"
            ) from exc
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OwnedHandler | _OwnedFile)]:
        root.removeHandler(old)
        if isinstance(old, _OwnedHandler):
            for name in old.components:
                logging.getLogger(f"hybridvoice.{name}").setLevel(logging.NOTSET)
        old.close()  # a StreamHandler never closes its stream
    handler = _OwnedHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    handler.addFilter(CallContextFilter())
    handler.components = tuple(levels)
    root.addHandler(handler)
    if file_handler is not None:
        file_handler.setFormatter(JsonFormatter())
        file_handler.addFilter(CallContextFilter())
        root.addHandler(file_handler)
    root.setLevel(numeric)
    for name, value in levels.items():
        logging.getLogger(f"hybridvoice.{name}").setLevel(value)


def current_levels() -> dict[str, Any]:
    """The root level and the component levels set now (for ``GET /v1/logging``)."""
    root = logging.getLogger()
    components = {}
    for handler in root.handlers:
        if isinstance(handler, _OwnedHandler):
            for name in handler.components:
                level = logging.getLogger(f"hybridvoice.{name}").level
                components[name] = logging.getLevelName(level).lower()
    return {"level": logging.getLevelName(root.level).lower(), "components": components}


def set_levels(level: str | None, components: Mapping[str, str | None]) -> None:
    """Change the root level and component levels at run time, keeping the handlers
    (the appliance API's ``PUT /v1/logging``); a component given ``None`` follows the root
    level again. Everything is checked before anything changes."""
    numeric = None if level is None else parse_level(level)
    levels = {
        name: None if lvl is None else parse_level(lvl, f"log component {name}")
        for name, lvl in components.items()
    }
    for name in levels:
        _check_component(name)
    root = logging.getLogger()
    if numeric is not None:
        root.setLevel(numeric)
    for name, value in levels.items():
        numeric_of = logging.NOTSET if value is None else value
        logging.getLogger(f"hybridvoice.{name}").setLevel(numeric_of)
    for handler in root.handlers:
        if isinstance(handler, _OwnedHandler):
            kept = [n for n in (*handler.components, *levels) if levels.get(n, 0) is not None]
            handler.components = tuple(dict.fromkeys(kept))
