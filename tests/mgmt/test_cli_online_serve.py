"""``hybridvoice online serve`` as a process: bad input refused with the key or option and the
reason (exit 2, nothing started), an unreachable etcd named (exit 1), and an instance on
SQLite that prints where it listens, answers its API and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports
from ports import free_port

from hybridvoice.cms.template import render_settings

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("hybridvoice-up")]


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": str(tmp / "config")}
    env.pop("HYBRIDVOICE_TOKEN", None)
    return env


def _serve(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridvoice", "online", "serve", *args],
        check=False, capture_output=True, text=True, timeout=120, env=_env(tmp),
    )  # fmt: skip


def _config(tmp: Path, name: str = "s.toml", **online: object) -> Path:
    path = tmp / name
    path.write_text(render_settings(settings_on_free_ports(Online=dict(online))))
    return path


def test_bad_members_and_settings_are_refused_with_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path)
    bad = _serve(tmp_path, "--config", str(config), "--etcd", "nohost")
    assert bad.returncode == 2
    assert "--etcd 'nohost' is not host:port" in bad.stderr
    text = config.read_text().replace("[Online]\n", '[Online]\nStoreEtcd = "db1:99999"\n', 1)
    (tmp_path / "bad.toml").write_text(text)
    refused = _serve(tmp_path, "--config", str(tmp_path / "bad.toml"))
    assert refused.returncode == 2
    assert "Online.StoreEtcd: 'db1:99999': port 99999 is not between 1 and 65535" in (
        refused.stderr
    )
    unreachable = _serve(tmp_path, "--config", str(config), "--etcd", f"127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1
    assert "cannot start: etcd: no member answered" in unreachable.stderr


def test_an_instance_on_sqlite_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = _config(tmp_path)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hybridvoice", "online", "serve", "--config", str(config),
             "--state-dir", str(tmp_path / "state"), "--lab-users"],
            stdout=out, stderr=subprocess.STDOUT, env=_env(tmp_path), start_new_session=True,
        )  # fmt: skip
    try:
        give_up = time.monotonic() + 90
        while "ready" not in log.read_text():
            assert process.poll() is None and time.monotonic() < give_up, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert f"store: SQLite, {tmp_path / 'state'}" in text
        api = next(line.split(": ", 1)[1] for line in text.splitlines()
                   if line.startswith("online API: "))  # fmt: skip
        token = (tmp_path / "config" / "hybridvoice" / "token").read_text().strip()
        request = urllib.request.Request(
            f"{api}/v1/health", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["status"] == "ok"
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0
        assert (tmp_path / "state" / "online.db").exists()
        assert (tmp_path / "state" / "logs" / "hybridvoice.log").exists()  # for logs search
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
