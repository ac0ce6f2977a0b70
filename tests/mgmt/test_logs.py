"""Structured logs: JSON lines that parse and carry ``extra=`` fields, the text format, and
:func:`configure_logging` owning exactly one root handler however often it is called."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from hybridvoice.mgmt.logs import LoggingSetupError, configure_logging


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[logging.Logger]:
    """Leave the root logger as the test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_parse_and_carry_extras() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = logging.getLogger("hybridvoice.mediation.b2bua")
    log.info("call %s answered", "abc", extra={"call_id": "abc@host", "gateway": "gw1"})
    log.debug("not shown at info")
    (line,) = lines(out)
    assert line["level"] == "info"
    assert line["logger"] == "hybridvoice.mediation.b2bua"
    assert line["message"] == "call abc answered"
    assert (line["call_id"], line["gateway"]) == ("abc@host", "gw1")
    ts = str(line["ts"])
    assert ts.endswith("Z")
    assert datetime.fromisoformat(ts).utcoffset() is not None  # ISO 8601 with its UTC offset


def test_json_carries_the_exception_and_objects_as_text() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "json", out)
    try:
        raise KeyError("gw9")
    except KeyError:
        logging.getLogger("x").exception("routing failed", extra={"target": object()})
    (line,) = lines(out)
    assert line["level"] == "error"
    assert "KeyError: 'gw9'" in str(line["exc"])
    assert "object object" in str(line["target"])


def test_extras_named_like_core_fields_do_not_overwrite_them() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    logging.getLogger("y").warning("hello", extra={"level": "loud", "ts": 1})
    (line,) = lines(out)
    assert (line["level"], line["extra_level"], line["extra_ts"]) == ("warning", "loud", 1)


def test_calling_twice_keeps_one_handler_and_the_last_settings(
    root_logger: logging.Logger,
) -> None:
    first, second = io.StringIO(), io.StringIO()
    before = len(root_logger.handlers)
    configure_logging("info", "json", first)
    configure_logging("warning", "text", second)
    assert len(root_logger.handlers) == before + 1
    logging.getLogger("z").info("dropped")
    logging.getLogger("z").warning("kept", extra={"call_id": "c1"})
    assert first.getvalue() == ""
    (text,) = second.getvalue().splitlines()
    assert text.endswith("WARNING z: kept call_id=c1")
    assert text.split(" ", 1)[0].endswith("Z")


def test_other_handlers_are_left_alone(root_logger: logging.Logger) -> None:
    theirs = logging.StreamHandler(io.StringIO())
    root_logger.addHandler(theirs)
    configure_logging("info", "text", io.StringIO())
    configure_logging("info", "json", io.StringIO())
    assert theirs in root_logger.handlers


def test_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(LoggingSetupError, match="log level"):
        configure_logging("chatty", "json", io.StringIO())
    with pytest.raises(LoggingSetupError, match="log format"):
        configure_logging("info", "xml", io.StringIO())  # type: ignore[arg-type]
