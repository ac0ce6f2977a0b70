"""Settings for every test process of the suite (docs/dev/TESTING.md)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """pytest-xdist starts its workers with ``COLUMNS=80``; a rich console made at import
    (the CLI's) then keeps 80 columns for good, and tables that tests read with
    ``COLUMNS=250`` come out cut short. Without xdist there is no ``COLUMNS``: the same here."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        os.environ.pop("COLUMNS", None)
