"""RFC 4028 session timers for ``session``: the Session-Expires and Min-SE headers and the
rules that turn them into an interval, a refresher and deadlines, as pure functions.

RFC 4028 §4 (Session-Expires, Min-SE grammar), §7.4 and §8 (422 and Min-SE), §9 (the
UAS's choice of interval and refresher, Require: timer for a UAC refresher), §10 (the
refresh at half the interval, the BYE at the interval minus min(32 s, interval/3)).
The session keeps the negotiated state and its timers; this module only computes.
"""

from __future__ import annotations

from ._abnf import param_get, parse_params
from .message import Message, Request

__all__ = [
    "expiry_deadline",
    "min_se",
    "refresh_deadline",
    "request_headers",
    "response_headers",
    "session_expires",
]


def session_expires(message: Message) -> tuple[int, str | None] | None:
    """Session-Expires = delta-seconds *(;se-params) (RFC 4028 §4): interval, refresher."""
    value = message.headers.get("Session-Expires")
    number = (value or "").partition(";")[0]
    if value is None or not number.strip().isdigit():
        return None
    try:
        refresher = (param_get(parse_params(value, len(number)), "refresher") or "").lower()
    except ValueError:
        refresher = ""
    return int(number), refresher if refresher in ("uac", "uas") else None


def min_se(message: Message) -> int | None:
    """Min-SE = delta-seconds *(;generic-param) (RFC 4028 §5)."""
    value = (message.headers.get("Min-SE") or "").partition(";")[0].strip()
    return int(value) if value.isdigit() else None


def refresh_deadline(interval: int, now: float) -> float:
    """When the refresher refreshes: at half the interval (RFC 4028 §10)."""
    return now + interval / 2


def expiry_deadline(interval: int, now: float) -> float:
    """When either side sends BYE without a refresh (RFC 4028 §10)."""
    return now + interval - min(32, interval / 3)


def response_headers(
    request: Request, wanted: int | None, imposed: int | None
) -> list[tuple[str, object]]:
    """A 2xx's Session-Expires (with Require: timer for a UAC refresher), RFC 4028 §9.
    ``wanted`` caps the request's interval, never below its Min-SE. When the request has
    none, ``imposed`` (if any) is the interval we add, and we are the refresher."""
    se = session_expires(request)
    refresher: str | None
    if se is None:
        if imposed is None:
            return []
        interval, refresher = imposed, "uas"
    else:  # we may lower the interval, not below the request's Min-SE (§9)
        interval, refresher = se
        interval = min(interval, wanted or interval)
        interval = max(interval, min_se(request) or 90)
    if refresher is None:
        supported = (v.lower() for v in request.headers.values("Supported"))
        refresher = "uac" if "timer" in supported else "uas"
    require = [("Require", "timer")] if refresher == "uac" else []
    return [("Session-Expires", f"{interval};refresher={refresher}"), *require]


def request_headers(
    interval: int | None, we_refresh: bool, our_min_se: int
) -> list[tuple[str, object]]:
    """A refresh or re-offer's Session-Expires and Min-SE once a timer runs (RFC 4028 §7)."""
    if interval is None:
        return []
    refresher = "uac" if we_refresh else "uas"
    return [("Session-Expires", f"{interval};refresher={refresher}"), ("Min-SE", our_min_se)]
