"""The log-level routes of the appliance's management API (the original's Start-CcLogging and
Stop-CcLogging: verbose logging turned on and off at run time, without a restart).

No RFC is implemented here. ``GET /v1/logging``: ``{"level": "warning", "components":
{"mediation": "debug"}}``, the levels in force. ``PUT /v1/logging`` with a body of the same
shape (each key optional) changes them at once for the whole process (console and log file);
a component not named keeps its level, ``"components": {"mediation": null}`` hands it back to
the process level. Bad input (an unknown level or component, a body that is not that shape) is
refused with 422 naming the key and the reason, and changes nothing. Changes need the
``admin`` scope and go to the audit log, like every change (:mod:`hybridvoice.cms.guard`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Request

from hybridvoice.cms.guard import audit_change

from .logs import LoggingSetupError, current_levels, set_levels

__all__ = ["add_logging_routes"]


def _refuse(key: str, reason: str) -> HTTPException:
    return HTTPException(
        422,
        detail={"error": f"{key}: {reason}",
                "hint": 'e.g. {"level": "info", "components": {"mediation": "debug"}}'},
    )  # fmt: skip


def _parse(body: Any) -> tuple[str | None, dict[str, str | None]]:
    if not isinstance(body, dict):
        raise _refuse("body", "must be a JSON object")
    unknown = sorted(set(body) - {"level", "components"})
    if unknown:
        raise _refuse(unknown[0], "unknown key; use level and components")
    level = body.get("level")
    if level is not None and not isinstance(level, str):
        raise _refuse("level", "must be a string (debug, info, warning, error, critical)")
    components = body.get("components") or {}
    if not isinstance(components, dict):
        raise _refuse("components", "must be an object of component: level")
    for name, value in components.items():
        if value is not None and not isinstance(value, str):
            raise _refuse(f"components.{name}", "must be a level name or null")
    return level, components


def add_logging_routes(app: FastAPI) -> None:
    """Mount ``GET`` and ``PUT /v1/logging`` on ``app``."""

    @app.get("/v1/logging")
    def get_logging() -> dict[str, Any]:
        return current_levels()

    @app.put("/v1/logging")
    def put_logging(request: Request, body: Annotated[Any, Body()]) -> dict[str, Any]:
        level, components = _parse(body)
        before = current_levels()
        try:
            set_levels(level, components)
        except LoggingSetupError as exc:
            key = "level" if str(exc).startswith("log level") else "components"
            raise _refuse(key, str(exc)) from exc
        after = current_levels()
        audit_change(request, "logging.set", "logging", before, after)
        return after
