"""``hybridvoice appliance status``: the health monitor's line (``mgmt.self_health_io``)."""

from __future__ import annotations

from typing import Any

__all__ = ["health_line"]


def health_line(health: dict[str, Any]) -> str:
    """``online, last check 2.1 s ago, next in 7.9 s`` or ``OFFLINE (listeners: ...), 3
    failures in a row, next retry in 20 s``."""
    ago = health.get("last_check_seconds_ago")
    last = "not checked yet" if ago is None else f"last check {ago:g} s ago"
    nxt = health.get("next_check_in_seconds")
    if health.get("state") != "offline":
        return f"{health.get('state')}, {last}, next in {nxt:g} s"
    failing = "; ".join(f"{f['check']}: {f['detail']}" for f in health.get("failing", ()))
    runs = health.get("failures_in_a_row")
    return f"OFFLINE ({failing}), {last}, {runs} failures in a row, next retry in {nxt:g} s"
