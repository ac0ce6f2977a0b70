"""The dashboard in a real browser: headless Chromium (Debian ``chromium`` and
``chromium-driver``, driven by Selenium; nothing downloaded) on a ``hybridvoice up`` process.

It logs in with the admin token ``up`` saved, sees the appliance's roles healthy, watches a
``hybridvoice test-call`` (held for some seconds) appear in the live calls without a reload
(the page's server-sent events), then finds it in the history and opens its SIP ladder.
Screenshots go to the test's tmp directory and, when ``HV_ARTIFACTS`` names a directory,
are copied there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports

from hybridvoice.cms.template import render_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.live,
    pytest.mark.xdist_group("hybridvoice-up"),
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian chromium and chromium-driver",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

HV = [sys.executable, "-m", "hybridvoice"]
HOLD_SECONDS = 15  # the test call's media time: long enough to be seen live


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _up(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, list[str], str]]:
    """``hybridvoice up`` as a process; yields the dashboard URL it printed, the test-call
    options and the log's path."""
    settings = settings_on_free_ports()
    config = tmp_path / "hybridvoice.toml"
    config.write_text(render_settings(settings))
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*HV, "up", "--config", str(config), "--state-dir", str(tmp_path / "state"),
             "--lab-users", "--lab-gateway"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            url = None
            while url is None and time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()
                found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", log_path.read_text())
                token = Path(env["XDG_CONFIG_HOME"]) / "hybridvoice" / "token"
                url = found.group(1) if found and token.exists() else None
                time.sleep(0.2)
            assert url is not None, "no dashboard line:\n" + log_path.read_text()
            online = settings.online
            options = ["--proxy", f"udp:{online.sip_addresses[0]}:{online.sip_port}",
                       "--url", online.service_url,
                       "--appliance", f"http://127.0.0.1:{settings.management.port}"]  # fmt: skip
            yield url, options, str(log_path)
        finally:
            _stop(proc)


def _browser(tmp_path: Path) -> WebDriver:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(arg)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log"))
    return webdriver.Chrome(options=options, service=service)


def _shot(driver: WebDriver, shots: Path, name: str) -> None:
    shots.mkdir(exist_ok=True)
    driver.save_screenshot(str(shots / f"{name}.png"))


def test_a_browser_sees_the_appliance_healthy_and_a_test_call_live_then_in_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "COLUMNS": "200",
           "SE_OFFLINE": "true"}  # fmt: skip
    env.pop("HYBRIDVOICE_TOKEN", None)
    shots = tmp_path / "screenshots"
    call: subprocess.Popen[bytes] | None = None
    try:
        with _up(tmp_path, env) as (url, options, log):
            token = (tmp_path / "config" / "hybridvoice" / "token").read_text().strip()
            driver = _browser(tmp_path)
            wait = WebDriverWait(driver, 60)
            try:
                driver.get(url)
                assert "Log in" in driver.page_source  # no token yet: the login form
                driver.find_element(By.ID, "token").send_keys(token)
                driver.find_element(By.ID, "login").click()
                wait.until(lambda d: d.find_elements(By.ID, "roles"))
                roles = driver.find_element(By.ID, "roles").text
                assert re.search(r"mediation\s+● OK running", roles), roles
                assert re.search(r"edge\s+● OK running", roles), roles
                assert "online" in driver.find_element(By.ID, "appliance-state").text
                _shot(driver, shots, "1-overview")

                driver.get(url + "ui/calls")
                wait.until(lambda d: "no calls in progress" in d.page_source)
                call_log = (tmp_path / "test-call.log").open("wb")
                call = subprocess.Popen(
                    [*HV, "test-call", "--from", "alice", "--to", "+15550199",
                     "--duration", str(HOLD_SECONDS), *options],
                    stdout=call_log, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
                # the page was loaded before the call: only the live stream can show it
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live-rows tr[data-call]"))
                row = driver.find_element(By.CSS_SELECTOR, "#live-rows tr[data-call]").text
                assert "+15550100" in row and "+15550199" in row, row  # alice's line
                _shot(driver, shots, "2-live-call")

                assert call.wait(HOLD_SECONDS + 90) == 0, (tmp_path / "test-call.log").read_text()
                call_log.close()
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live-rows tr.none"))
                driver.get(url + "ui/history")
                history = driver.find_element(By.ID, "history").text
                assert "+15550199" in history and "answered" in history, history
                _shot(driver, shots, "3-history")
                driver.find_element(By.CSS_SELECTOR, "#history a.ladder-link").click()
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ladder svg"))
                ladder = driver.find_element(By.ID, "ladder").text
                assert "INVITE" in ladder and "200 OK" in ladder and "BYE" in ladder, ladder
                _shot(driver, shots, "4-ladder")

                driver.get(url + "ui/plots")
                _shot(driver, shots, "5-plots")
                driver.set_window_size(420, 900)  # a narrow screen
                driver.get(url)
                _shot(driver, shots, "6-overview-narrow")
            finally:
                driver.quit()
            assert "Traceback" not in Path(log).read_text()
    finally:
        if call is not None:
            _stop(call)
        target = os.environ.get("HV_ARTIFACTS")
        if target and shots.exists():
            shutil.copytree(shots, Path(target) / "dashboard", dirs_exist_ok=True)
