"""Appliances as processes (``hybridvoice appliance serve``) for tests: settings of several
appliances of one site on free loopback ports, start one, wait for it, stop it by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from chain_harness import settings_on_free_ports
from ports import free_port

from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import render_settings

HV = [sys.executable, "-m", "hybridvoice"]


def site_settings(count: int, **sections: dict[str, Any]) -> list[Settings]:
    """``count`` appliances of the lab site ``Lab``: one online service and lab gateway, each
    appliance its own ports and ``ServerName`` (``appliance1``, ``appliance2``...)."""
    first = settings_on_free_ports(**sections)
    raw = settings_raw(first)
    out = [first]
    for n in range(2, count + 1):
        other = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
        other["Common"]["ServerName"] = f"appliance{n}"
        other["EdgeServer"].update(InternalPort=free_port(), ExternalSIPPort=free_port())
        other["MediationServer"].update(
            TCPPort=free_port(), UDPPort=free_port(), InternalPort=free_port(),
            BypassServicePort=free_port(), TLSPort=False,
        )  # fmt: skip
        other["Management"].update(Port=free_port())
        out.append(parse_settings(other))
    return out


class ApplianceProcess:
    """One ``hybridvoice appliance serve`` process; :meth:`stop` ends it by PID."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.settings = settings
        self.directory = directory
        self.log_path = directory / "serve.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.settings.management.port}"

    @property
    def name(self) -> str:
        return self.settings.common.server_name or ""

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    def write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "appliance.toml"
        config.write_text(render_settings(self.settings))
        return config

    async def start(self, *args: str, env: dict[str, str] | None = None) -> None:
        config = self.write_config()
        log = self.log_path.open("wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *HV, "appliance", "serve", "--config", str(config),
                "--state-dir", str(self.state_dir), *args,
                stdout=log, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "200", **(env or {})},
            )  # fmt: skip
        finally:
            log.close()

    async def ready(self, timeout: float = 90.0) -> None:
        """Until its READY line (a generous bound: it only ends a broken start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"appliance exited:\n{self.log()}")
            if "READY " in self.log():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"appliance not ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def request(self, method: str, path: str, token: str, **kw: Any) -> Any:
        async with httpx.AsyncClient(timeout=20) as client:
            response = await client.request(
                method, self.api + path, headers={"Authorization": f"Bearer {token}"}, **kw
            )
        assert response.status_code < 300, response.text
        return response.json()

    async def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, wait; SIGKILL after ``timeout``. The exit code (None: not started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        return proc.returncode
