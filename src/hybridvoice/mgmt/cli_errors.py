"""What an API refusal says, for the commands that talk to the APIs with their own client.

Both APIs answer every error as ``{"error", "field", "hint"}`` (docs/api.md);
:func:`refusal` takes the error and the hint from that (or from FastAPI's older
``{"detail": {...}}`` wrapping), falling back to the HTTP reason only when the body has none.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["refusal"]


def refusal(response: httpx.Response) -> tuple[str, str | None]:
    """(what went wrong, what to do next) from an error answer."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if not isinstance(detail, dict):
        detail = {"error": str(detail)}
    hint = detail.get("hint")
    error = detail.get("error") or response.reason_phrase
    return str(error), None if hint is None else str(hint)
