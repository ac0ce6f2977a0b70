"""The interop tests' fixtures; their helpers are in :mod:`interop_programs`."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _short_gc_pauses() -> Iterator[None]:
    """Interop tests run real-time SIP against peers that retransmit after 500 ms (T1): keep
    the pytest process's own heap (every earlier test's objects) out of the collector, as
    the product does with ``tune_gc``, so a full collection cannot stall the loop that long
    (a stall made SIPp retransmit a 200 and count the correct second ACK as unexpected)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
