"""Guard for every mediation test: no test may bind the bypass web service to a privileged
port (the CCE default is 80; tests and benchmarks pass ``BypassServicePort = 0``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from hybridvoice.mediation import role as role_module


@pytest.fixture(autouse=True)
def _no_privileged_bypass_port(monkeypatch: pytest.MonkeyPatch) -> None:
    real = getattr(role_module, "serve_bypass")  # noqa: B009 (imported there, not exported)

    async def guarded(app: Any, host: str, port: int, **kwargs: Any) -> Any:
        if 0 < port < role_module.PRIVILEGED_PORTS and not getattr(
            guarded, "allow_privileged", False
        ):
            pytest.fail(f"a test tried to bind the bypass web service to {host}:{port}")
        return await real(app, host, port, **kwargs)

    monkeypatch.setattr("hybridvoice.mediation.role.serve_bypass", guarded)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The call-guard test's shared step lists (``test_call_guard._steps``) are files named by
    the xdist run's id; every worker has collected before any finishes, so the first worker to
    finish removes them."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is not None:
        for path in Path(tempfile.gettempdir()).glob(f"hybridvoice-call-guard-{run_id}-*"):
            path.unlink(missing_ok=True)
