"""A real call through the lab chain (online proxy, edge, mediation, lab gateway), logged at
debug to the rotated JSON files, found again by ``logs search`` with the Call-ID of either
leg: the online proxy's, the edge proxy's and the mediation role's lines about it, each
carrying the call (context variables set by the adapters, nothing passed by hand). And
``hybridvoice logs start|status|stop`` changing the levels of the running appliance."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_harness import DOMAIN, lab, proxy_of
from typer.testing import CliRunner
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER
from hybridvoice.cli import app as cli_app
from hybridvoice.mgmt.log_search import LogQuery, search
from hybridvoice.mgmt.logs import configure_logging
from hybridvoice.mgmt.testcall import place_test_call


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name in ("mediation", "edge", "online"):
        logging.getLogger(f"hybridvoice.{name}").setLevel(logging.NOTSET)


def test_either_legs_call_id_finds_the_call_in_every_role(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    levels = {"mediation": "debug", "edge": "debug", "online": "debug"}
    configure_logging("warning", "json", io.StringIO(), components=levels, directory=logs)
    legs: list[str] = []

    async def main() -> None:
        async with lab(tmp_path / "state") as up:
            assert up.appliance is not None and up.appliance.api is not None
            result = await place_test_call(
                user="alice", domain=DOMAIN, password=LAB_PASSWORD, number=LAB_PSTN_NUMBER,
                proxy=proxy_of(up), duration=0.4, appliance_url=up.appliance.api.url,
                timeout=10.0, api_token=up.admin_token,
            )  # fmt: skip
            assert result.ok, result
            mediation = up.appliance.mediation
            assert mediation is not None and mediation.records is not None
            mediation.records.flush()
            record = mediation.records.by_call_id(result.call_id)
            assert record is not None and record.b_call_id
            legs.extend([record.a_call_id, record.b_call_id])

    run(main(), timeout=60)
    a_leg, b_leg = legs
    found = search(logs, LogQuery(call_id=a_leg)).lines
    loggers = {line.logger for line in found}
    assert {"hybridvoice.online.proxy", "hybridvoice.edge.proxy"} <= loggers, loggers
    assert any(ln.logger.startswith("hybridvoice.mediation") for ln in found), loggers
    messages = [ln.message for ln in found]
    assert any(m.startswith("INVITE ") and "forwarded" in m for m in messages), messages
    assert any("answered" in m for m in messages) and any(" ended: " in m for m in messages)
    for line in found:
        assert a_leg in (line.fields.get("call"), line.fields.get("call_id"))
    by_b = search(logs, LogQuery(call_id=b_leg)).lines
    assert by_b, "lines handling the gateway leg name it"
    assert all(ln.fields.get("call") == a_leg for ln in by_b if "call" in ln.fields)
    assert search(logs, LogQuery(call_id=a_leg, component="edge")).lines


def test_logs_start_status_stop_change_a_running_appliance(tmp_path: Path) -> None:
    """The commands (Start/Stop-CcLogging) against the lab's appliance API: levels change at
    run time; a read token is refused with what to do."""
    configure_logging("warning", "text", io.StringIO())
    runner = CliRunner()
    outputs: dict[str, tuple[int, str]] = {}

    async def main() -> None:
        async with lab(tmp_path / "state") as up:
            assert up.appliance is not None and up.appliance.api is not None
            url = up.appliance.api.url
            admin = {"HYBRIDVOICE_TOKEN": up.admin_token or ""}
            _, read = up.appliance.access.tokens.create("noc", "read")
            for name, args, env in (
                ("start", ["logs", "start", "--component", "mediation=debug"], admin),
                ("status", ["logs", "status"], admin),
                ("stop", ["logs", "stop"], admin),
                ("read", ["logs", "start"], {"HYBRIDVOICE_TOKEN": read}),
                ("bad", ["logs", "start", "--level", "loud"], admin),
            ):
                result = await asyncio.to_thread(
                    runner.invoke, cli_app, [*args, "--appliance", url], env=env
                )
                outputs[name] = (result.exit_code, result.output)
                if name == "start":
                    assert logging.getLogger("hybridvoice.mediation").level == logging.DEBUG

    run(main(), timeout=60)
    assert outputs["start"] == (0, "log level info; mediation=debug\n"), outputs["start"]
    assert outputs["status"] == (0, "log level info; mediation=debug\n")
    assert outputs["stop"] == (0, "log level warning\n")
    assert logging.getLogger("hybridvoice.mediation").level == logging.NOTSET
    code, text = outputs["read"]
    assert code == 1 and "admin token" in text, text
    code, text = outputs["bad"]
    assert code == 1 and "level: log level: unknown level 'loud'" in text, text
