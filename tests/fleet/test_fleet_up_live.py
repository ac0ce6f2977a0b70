"""``hybridvoice up --config FLEET.toml`` as an admin runs it: a process that starts the
online service and every appliance as its own process, prints the table of where everything
listens, takes calls (``hybridvoice test-call`` from another process), reports an appliance
that dies, and on Ctrl-C stops every appliance by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ports import free_port, free_port_block

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("hybridvoice-up")]

HV = [sys.executable, "-m", "hybridvoice"]

FLEET = """\
[Fleet]
SIPDomains = "contoso.example"
BasePort = {base}
MediaPortStart = {media}
MediaPortsPerAppliance = 40
HeartbeatTimeoutSeconds = 4

[Online]
ServiceURL = "http://127.0.0.1:{api}"
SIPPort = {sip}

[[Site]]
Name = "Amsterdam"
Appliances = 2
CountryCode = "31"
[[Site.Gateway]]
Name = "ams-gw"
IP = "127.0.0.1"
Port = {ams}
Protocol = "UDP"
Lab = true
[[Site.User]]
Name = "alice"
Number = "+31205550100"

[[Site]]
Name = "Seattle"
Appliances = 1
[[Site.Gateway]]
Name = "sea-gw"
IP = "127.0.0.2"
Port = {sea}
Protocol = "UDP"
Lab = true
[[Site.User]]
Name = "bob"
Number = "+12065550101"
"""


def wait_for(path: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {timeout} s:\n{path.read_text(errors='replace')}")


def test_up_runs_a_fleet_of_processes_and_stops_them_all(tmp_path: Path) -> None:
    api, sip = free_port(), free_port()
    config = tmp_path / "fleet.toml"
    config.write_text(FLEET.format(
        base=free_port_block(30), media=free_port_block(120), api=api, sip=sip,
        ams=free_port(), sea=free_port("127.0.0.2"),
    ))  # fmt: skip
    env = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}  # fmt: skip
    env.pop("HYBRIDVOICE_TOKEN", None)
    log = tmp_path / "up.out"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [*HV, "up", "--config", str(config), "--state-dir", str(tmp_path / "state")],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        text = wait_for(log, r"stop with Ctrl-C", up, 150)
        assert re.search(r"2 sites, 3 appliance processes, ready in", text), text
        pids = {m[0]: int(m[1]) for m in re.findall(r"(\w+-\d) started \(pid (\d+)\)", text)}
        assert sorted(pids) == ["amsterdam-1", "amsterdam-2", "seattle-1"]
        assert "Amsterdam: ams-gw trunk to" in text and "Seattle: sea-gw trunk to" in text
        for user, number in (("alice", "+31205550199"), ("bob", "+12065550199")):
            call = subprocess.run(
                [*HV, "test-call", "--from", user, "--to", number, "--proxy",
                 f"udp:127.0.0.1:{sip}", "--url", f"http://127.0.0.1:{api}", "--duration", "0.4"],
                capture_output=True, text=True, timeout=60, env=env, check=False,
            )  # fmt: skip
            assert call.returncode == 0, call.stdout + call.stderr
            assert "PASSED" in call.stdout
        os.kill(pids["amsterdam-2"], signal.SIGKILL)
        wait_for(log, r"amsterdam-2 \(pid \d+\) died: killed by SIGKILL", up, 30)
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    text = log.read_text(errors="replace")
    for name in ("amsterdam-1", "seattle-1"):
        assert re.search(rf"{name} \(pid \d+\) stopped: exited with code 0", text), text
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ctrl_c_while_the_fleet_starts_stops_what_was_started(tmp_path: Path) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(FLEET.format(
        base=free_port_block(30), media=free_port_block(120), api=free_port(), sip=free_port(),
        ams=free_port(), sea=free_port("127.0.0.2"),
    ))  # fmt: skip
    env = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}  # fmt: skip
    log = tmp_path / "up.out"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [*HV, "up", "--config", str(config), "--state-dir", ":memory:"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        text = wait_for(log, r"seattle-1 started \(pid \d+\)", up, 120)
        up.send_signal(signal.SIGINT)  # most likely before every appliance registered
        assert up.wait(90) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    text = log.read_text(errors="replace")
    pids = [int(p) for p in re.findall(r"started \(pid (\d+)\)", text)]
    assert len(pids) == 3, text
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "Traceback" not in text, text
