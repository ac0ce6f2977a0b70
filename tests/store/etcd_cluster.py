"""A real etcd cluster for tests: members of Debian's ``etcd-server`` (binary ``etcd``) on
127.0.0.1 with free ports, data directories under the test's tmp_path, started and stopped by
PID (never by name). A missing binary skips the test, except in CI (``CI=true``): a failure.

Timers are generous for a loaded 2-core machine: heartbeat 250 ms, election timeout 2.5 s
(etcd's minimum lease TTL follows from it: about 4 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

__all__ = ["EtcdCluster", "etcd_binary", "running_cluster"]


def etcd_binary() -> str:
    path = shutil.which("etcd")
    if path is None:
        message = "etcd is not installed (Debian package etcd-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": required in CI", pytrace=False)
        pytest.skip(message)
    return path


class EtcdCluster:
    def __init__(self, tmp: Path, size: int = 3) -> None:
        self.binary = etcd_binary()
        self.tmp = tmp
        self.client_ports = [free_port() for _ in range(size)]
        self.peer_ports = [free_port() for _ in range(size)]
        self.token = f"hv-test-{os.getpid()}-{self.client_ports[0]}"
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.client_ports]

    def _args(self, i: int) -> list[str]:
        cluster = ",".join(
            f"m{j}=http://127.0.0.1:{port}" for j, port in enumerate(self.peer_ports)
        )
        client = f"http://127.0.0.1:{self.client_ports[i]}"
        peer = f"http://127.0.0.1:{self.peer_ports[i]}"
        return [
            self.binary, "--name", f"m{i}", "--data-dir", str(self.tmp / f"m{i}"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", "250", "--election-timeout", "2500",
            "--log-level", "warn", "--logger", "zap",
        ]  # fmt: skip

    def start(self, i: int | None = None) -> None:
        """Start every member (or member ``i``; its data directory rejoins it)."""
        for j in range(len(self.processes)) if i is None else [i]:
            assert self.processes[j] is None, f"member {j} is running"
            log = (self.tmp / f"m{j}.log").open("ab")
            self.processes[j] = subprocess.Popen(
                self._args(j),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def kill(self, i: int) -> None:
        """Stop member ``i`` at once (SIGKILL to its PID), as a crash would."""
        process = self.processes[i]
        assert process is not None, f"member {i} is not running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.processes[i] = None

    def healthy(self, i: int) -> bool:
        """Member ``i`` answers and has a leader (etcd's /health)."""
        url = f"http://127.0.0.1:{self.client_ports[i]}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return bool(json.loads(reply.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def wait_healthy(self, members: list[int] | None = None, limit: float = 90.0) -> None:
        members = list(range(len(self.processes))) if members is None else members
        give_up = time.monotonic() + limit
        while not all(self.healthy(i) for i in members):
            for i in members:
                process = self.processes[i]
                if process is not None and process.poll() is not None:
                    log = (self.tmp / f"m{i}.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"etcd member {i} exited:\n{log}")
            if time.monotonic() > give_up:
                raise AssertionError(f"etcd members {members} not healthy in {limit} s")
            time.sleep(0.2)

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
                self.processes[i] = None


@contextlib.contextmanager
def running_cluster(tmp: Path) -> Iterator[EtcdCluster]:
    """A healthy cluster under ``tmp`` for the ``with`` block, stopped by PID after it."""
    cluster = EtcdCluster(tmp)
    cluster.start()
    try:
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()
