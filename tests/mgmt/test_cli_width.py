"""The CLI's console follows ``COLUMNS`` when a test sets it, in every test process: under
pytest-xdist (how CI runs) a worker started with ``COLUMNS=80`` made the console, created at
import, keep 80 columns, and tables came out cut short (the root ``conftest.py`` drops it)."""

from __future__ import annotations

import pytest

from hybridvoice.mgmt import cli_admin


def test_the_console_width_follows_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert cli_admin.out.width == 250
    monkeypatch.setenv("COLUMNS", "100")
    assert cli_admin.out.width == 100
