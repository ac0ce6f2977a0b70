"""Structured logs for operations: the call context on every line (context variables the
adapters set), per-component levels, rotated JSON files, ``hybridvoice logs search`` over them
(time ranges, call ids, levels, components, rotated files, malformed lines skipped and
counted) and the appliance API's ``/v1/logging`` (Start/Stop-CcLogging)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_harness import client
from chain_harness import settings_on_free_ports
from typer.testing import CliRunner

from hybridvoice.cli import app as cli_app
from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.mgmt.appliance import Appliance, ApplianceOptions
from hybridvoice.mgmt.appliance_api import create_appliance_api
from hybridvoice.mgmt.log_search import LogQuery, LogSearchError, parse_when, search
from hybridvoice.mgmt.logs import (
    LOG_FILE,
    LoggingSetupError,
    configure_logging,
    current_levels,
    parse_components,
)
from hybridvoice.net.log_context import CALL, LEG_CALL_ID, call_context


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[logging.Logger]:
    """Leave the root logger (and the component loggers) as the test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name in ("mediation", "edge", "online"):
        logging.getLogger(f"hybridvoice.{name}").setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_carry_the_call_of_the_context_and_extra_wins() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = logging.getLogger("hybridvoice.mediation.b2bua")
    log.info("outside any call")
    token = LEG_CALL_ID.set("leg-b@gw")
    try:
        with call_context("leg-a@edge"):
            log.info("inside")
            log.info("explicit", extra={"call_id": "given"})
    finally:
        LEG_CALL_ID.reset(token)
    log.info("after")
    outside, inside, explicit, after = lines(out)
    assert "call_id" not in outside and "call" not in outside
    assert inside["call_id"] == "leg-b@gw" and inside["call"] == "leg-a@edge"
    assert explicit["call_id"] == "given" and explicit["call"] == "leg-a@edge"
    assert "call_id" not in after and CALL.get() is None


def test_the_call_is_seen_by_tasks_started_while_handling_it_and_by_no_other() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = logging.getLogger("hybridvoice.mediation")

    async def main() -> None:
        async def later() -> None:
            await asyncio.sleep(0)
            log.info("task of the call")

        with call_context("call-1"):
            task = asyncio.get_running_loop().create_task(later())
        log.info("between calls")
        await task

    asyncio.run(main())
    between, in_task = lines(out)
    assert "call" not in between and in_task["call"] == "call-1"


def test_component_levels_apply_and_are_reset_by_the_next_configuration() -> None:
    out = io.StringIO()
    configure_logging("warning", "json", out, components={"mediation": "debug"})
    logging.getLogger("hybridvoice.mediation.trunks").debug("shown")
    logging.getLogger("hybridvoice.edge.monitor").info("hidden")
    logging.getLogger("hybridvoice.edge.monitor").warning("shown too")
    assert [x["message"] for x in lines(out)] == ["shown", "shown too"]
    assert current_levels() == {"level": "warning", "components": {"mediation": "debug"}}
    configure_logging("warning", "json", io.StringIO())
    assert logging.getLogger("hybridvoice.mediation").level == logging.NOTSET


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("mediation=loud", "log component mediation: unknown level 'loud'"),
        ("mediaton=debug", "log component 'mediaton': unknown"),
        ("mediation", "log component 'mediation': write COMPONENT=LEVEL"),
    ],
)
def test_bad_component_levels_are_refused_by_name(text: str, named: str) -> None:
    with pytest.raises(LoggingSetupError) as caught:
        parse_components(text)
    assert named in str(caught.value)


def test_component_list_parses() -> None:
    assert parse_components("mediation=DEBUG, edge=info,") == {"mediation": "debug", "edge": "info"}


def test_files_are_json_and_rotate(tmp_path: Path) -> None:
    configure_logging("info", "text", io.StringIO(), directory=tmp_path, max_bytes=2000, backups=2)
    log = logging.getLogger("hybridvoice.edge")
    for n in range(100):
        log.info("line %d %s", n, "x" * 50)
    logging.getLogger().handlers[-1].flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]
    for path in tmp_path.iterdir():
        for raw in path.read_text().splitlines():
            assert json.loads(raw)["logger"] == "hybridvoice.edge"


def test_an_unwritable_log_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LoggingSetupError, match=r"log directory .*file/logs: cannot write"):
        configure_logging("info", "text", io.StringIO(), directory=blocker / "logs")


T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _line(minute: int, level: str, logger: str, message: str, **fields: object) -> str:
    ts = (T0 + timedelta(minutes=minute)).isoformat(timespec="milliseconds")
    obj = {"ts": ts.replace("+00:00", "Z"), "level": level, "logger": logger,
           "message": message, **fields}  # fmt: skip
    return json.dumps(obj)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Three files: .2 oldest, .1, the current one; two malformed lines among them."""
    (tmp_path / f"{LOG_FILE}.2").write_text(
        _line(0, "info", "hybridvoice.edge.proxy", "invite in", call_id="A@edge") + "\n"
        + "not json at all\n"
        + _line(5, "warning", "hybridvoice.mediation.trunks", "gateway gw1 is down") + "\n"
    )  # fmt: skip
    (tmp_path / f"{LOG_FILE}.1").write_text(
        _line(10, "debug", "hybridvoice.mediation.b2bua", "b-leg placed",
              call_id="B@gw", call="A@edge") + "\n"
        + '{"level": "info", "message": "no time"}\n'
    )  # fmt: skip
    (tmp_path / LOG_FILE).write_text(
        _line(20, "error", "hybridvoice.mediation.b2bua", "call failed", call="A@edge") + "\n"
        + _line(30, "info", "hybridvoice.online.proxy", "other call", call_id="C@x") + "\n"
        + "\n"
    )  # fmt: skip
    (tmp_path / "unrelated.txt").write_text("ignored\n")
    return tmp_path


def test_search_reads_rotated_files_oldest_first_and_counts_malformed(log_dir: Path) -> None:
    result = search(log_dir, LogQuery())
    assert [ln.message for ln in result.lines] == [
        "invite in", "gateway gw1 is down", "b-leg placed", "call failed", "other call",
    ]  # fmt: skip
    assert result.malformed == 2 and len(result.files) == 3


def test_search_by_call_finds_every_leg(log_dir: Path) -> None:
    by_a = search(log_dir, LogQuery(call_id="A@edge")).lines
    assert [ln.message for ln in by_a] == ["invite in", "b-leg placed", "call failed"]
    by_b = search(log_dir, LogQuery(call_id="B@gw")).lines
    assert [ln.message for ln in by_b] == ["b-leg placed"]


def test_search_by_time_level_and_component(log_dir: Path) -> None:
    window = LogQuery(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=20))
    assert [ln.message for ln in search(log_dir, window).lines] == [
        "gateway gw1 is down", "b-leg placed",
    ]  # fmt: skip
    warnings = search(log_dir, LogQuery(level="warning")).lines
    assert [ln.level for ln in warnings] == ["warning", "error"]
    mediation = search(log_dir, LogQuery(component="mediation", level="info")).lines
    assert [ln.message for ln in mediation] == ["gateway gw1 is down", "call failed"]
    assert search(log_dir, LogQuery(), limit=2).lines[-1].message == "other call"


def test_times_parse_and_bad_ones_are_named() -> None:
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert parse_when("1h", now) == now - timedelta(hours=1)
    assert parse_when("90s", now) == now - timedelta(seconds=90)
    assert parse_when("2026-12-07T02:30", now) == datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
    assert parse_when("2026-12-07T02:30:00Z", now) == datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
    with pytest.raises(LogSearchError, match="--until: cannot read 'yesterday'"):
        parse_when("yesterday", now, "--until")
    with pytest.raises(LogSearchError, match="--level: unknown level 'loud'"):
        LogQuery(level="loud")
    with pytest.raises(LogSearchError, match="--component: unknown component 'mediaton'"):
        LogQuery(component="mediaton")
    with pytest.raises(LogSearchError, match="--until must be after --since"):
        LogQuery(since=now, until=now - timedelta(hours=1))


def test_cli_search_table_json_and_errors(log_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(cli_app, ["logs", "search", "--dir", str(log_dir), "--call-id",
                                    "A@edge", "--since", "2026-12-07T02:00Z"])  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "b-leg placed" in table.output and "other call" not in table.output
    assert "3 lines from 3 files" in table.output and "2 malformed lines skipped" in table.output
    as_json = runner.invoke(cli_app, ["logs", "search", "--dir", str(log_dir), "--json",
                                      "--level", "error"])  # fmt: skip
    (row,) = [json.loads(x) for x in as_json.stdout.splitlines() if x.startswith("{")]
    assert row["message"] == "call failed" and row["call"] == "A@edge"
    missing = runner.invoke(cli_app, ["logs", "search", "--dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no log directory at" in missing.output
    bad = runner.invoke(cli_app, ["logs", "search", "--dir", str(log_dir), "--since", "soon"])
    assert bad.exit_code == 2 and "--since: cannot read 'soon'" in bad.output


def test_the_api_changes_levels_at_run_time_and_refuses_bad_input(tmp_path: Path) -> None:
    configure_logging("warning", "text", io.StringIO())
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path)})
    appliance = Appliance(settings, ApplianceOptions(serve_api=False))
    app = create_appliance_api(appliance)
    _, admin = appliance.access.tokens.create("ops", "admin")

    async def main() -> None:
        async with client(app, admin) as http:
            started = await http.put(
                "/v1/logging", json={"level": "info", "components": {"mediation": "debug"}}
            )
            assert started.json() == {"level": "info", "components": {"mediation": "debug"}}
            assert logging.getLogger("hybridvoice.mediation.b2bua").isEnabledFor(logging.DEBUG)
            for body, named in (
                ({"level": "loud"}, "level"),
                ({"components": {"mediaton": "debug"}}, "components"),
                ({"components": {"edge": 3}}, "components.edge"),
                ({"colour": "red"}, "colour"),
                ([1], "body"),
            ):
                refused = await http.put("/v1/logging", json=body)
                assert refused.status_code == 422, body
                assert refused.json()["error"].startswith(f"{named}: "), refused.json()
            assert (await http.get("/v1/logging")).json()["components"] == {"mediation": "debug"}
            stopped = await http.put(
                "/v1/logging", json={"level": "warning", "components": {"mediation": None}}
            )
            assert stopped.json() == {"level": "warning", "components": {}}
            audit = (await http.get("/v1/audit", params={"operation": "logging"})).json()
            assert audit, "the change is audited"

    try:
        asyncio.run(main())
    finally:
        appliance.close()
    assert not logging.getLogger("hybridvoice.mediation").isEnabledFor(logging.INFO)


def test_the_logging_section_is_read_and_bad_keys_are_named() -> None:
    common = {"SIPDomains": "contoso.com", "SiteName": "Logs"}
    keys = {"Components": "mediation=debug, edge=info", "MaxFileMegabytes": 2, "Files": 3}
    settings = parse_settings({"Common": common, "Logging": keys})
    assert settings.logging.component_levels() == {"mediation": "debug", "edge": "info"}
    assert (settings.logging.max_bytes, settings.logging.files) == (2_000_000, 3)
    assert parse_settings({"Common": common}).logging.component_levels() == {}
    with pytest.raises(SettingsError) as caught:
        parse_settings({"Common": common, "Logging": {"Components": "mediaton=debug",
                                                      "Files": 0, "Colour": "red"}})  # fmt: skip
    problems = {p.key: p.reason for p in caught.value.problems}
    assert "log component 'mediaton': unknown" in problems["Logging.Components"]
    assert "greater than or equal to 1" in problems["Logging.Files"]
    assert "Logging.Colour" in problems
