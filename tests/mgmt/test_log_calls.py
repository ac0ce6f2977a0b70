"""A real call through the lab chain (online proxy, edge, mediation, lab gateway), logged at
debug to the rotated JSON files, found again by ``logs search`` with the Call-ID of either
leg: the online proxy's, the edge proxy's and the mediation role's lines about it, each
carrying the call (context variables set by the adapters, nothing passed by hand)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_harness import DOMAIN, lab, proxy_of
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER
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
