"""Settings with no gateway at all: a warning at start naming the setting to add, and every
outbound call refused 503 with a Warning (RFC 3261 §20.43) saying so, not a 404 that blames
the dialled number."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports
from lab_harness import WAIT, lab, run, settle
from test_call_guard import raw_invite

from hybridvoice.cms.settings import parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import render_settings
from hybridvoice.mediation.routing import NO_GATEWAY_CONFIGURED

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def test_calls_get_503_with_a_warning_and_the_start_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        with caplog.at_level(logging.WARNING, logger="hybridvoice.mediation.role"):
            async with lab(tmp_path, n_gateways=0) as lab_:
                assert NO_GATEWAY_CONFIGURED in caplog.text
                response = await raw_invite(lab_, "no-gateway@test", None)
                assert response.status == 503
                warning = response.headers.get("Warning") or ""
                assert warning.startswith("399 ") and "no gateway is configured" in warning
                assert "[Gateway1]" in warning
                await settle(lab_)

    run(main())


def test_up_with_settings_but_no_gateway_warns_on_the_console(tmp_path: Path) -> None:
    raw = settings_raw(settings_on_free_ports())
    raw["Gateways"] = []
    config = tmp_path / "hybridvoice.toml"
    config.write_text(render_settings(parse_settings(raw)))
    out = tmp_path / "up.log"
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hybridvoice", "up", "--config", str(config),
             "--state-dir", str(tmp_path / "state")],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "250"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + WAIT * 6
            while time.monotonic() < deadline and "stop with Ctrl-C" not in out.read_text():
                assert proc.poll() is None, out.read_text()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    text = out.read_text()
    assert "stop with Ctrl-C" in text, text
    assert "warning:" in text and "no gateway is configured" in text
    assert "[Gateway1]" in text
