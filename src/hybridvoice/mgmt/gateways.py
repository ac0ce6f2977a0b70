"""Gateways changed at run time: validation, the appliance's saved gateway set, status rows.

``hybridvoice gateway add/set/enable/disable`` change the mediation role's gateways without a
restart (the appliance API's ``/v1/gateways`` routes). A change is validated as a whole new
settings document, with the same pydantic models and messages as the settings file (so a bad
value is refused as ``gw2.Port: must be 1-65535, got 70000``), then applied to the running
roles and saved in the appliance's state directory as ``gateways.toml``: ``[[Gateways]]``
tables with the settings file's keys, which replace the settings file's ``[GatewayN]``
sections at the next start (the appliance logs that it uses them). Delete the file to go back
to the settings file's gateways.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import tomlkit

from hybridvoice.cms.settings import (
    Gateway,
    Problem,
    Settings,
    SettingsError,
    ini_key,
    parse_settings,
)
from hybridvoice.mediation.trunks import GatewayStatus

__all__ = [
    "GATEWAYS_FILE",
    "GatewayChangeError",
    "changed_settings",
    "gateway_row",
    "load_gateways",
    "save_gateways",
]

#: the file in the appliance's state directory that holds gateways changed at run time
GATEWAYS_FILE = "gateways.toml"


class GatewayChangeError(ValueError):
    """A gateway change refused: ``status`` (404 unknown, 409 exists, 422 invalid), what is
    wrong, and for invalid values every problem with its settings key."""

    def __init__(self, status: int, error: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(error)
        self.status, self.error, self.problems = status, error, tuple(problems)


#: the settings keys of a gateway that hold booleans (strict in API bodies)
_FLAGS: Final = frozenset(
    ini_key(n) for n, f in Gateway.model_fields.items() if f.annotation in (bool, bool | None)
)


def _keys(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Field names (``port``) as settings keys (``Port``); settings keys stay as they are."""
    fields = Gateway.model_fields
    return {ini_key(k) if k in fields else k: v for k, v in changes.items()}


def changed_settings(
    settings: Settings, name: str, changes: Mapping[str, Any], *, create: bool
) -> Settings:
    """``settings`` with gateway ``name`` added (``create``) or changed by ``changes`` (the
    settings keys the admin gave, and only those); :class:`GatewayChangeError` otherwise."""
    names = [g.name for g in settings.gateways]
    given = _keys(changes)
    loose = [Problem(f"{name}.{k}", f"must be true or false, got {type(v).__name__}")
             for k, v in given.items()
             if k in _FLAGS and not isinstance(v, bool | None)]  # fmt: skip
    if loose:  # JSON's true/false only: "yes" or 1 are refused, never taken for true
        raise GatewayChangeError(422, f"gateway {name} refused", loose)
    if given.pop("Name", name) != name:
        raise GatewayChangeError(422, f"a gateway cannot be renamed ({name})")
    if create and name in names:
        raise GatewayChangeError(409, f"gateway {name} exists")
    if not create and name not in names:
        raise GatewayChangeError(404, f"there is no gateway {name}")
    data = settings.model_dump(by_alias=True, mode="json")
    rows: list[dict[str, Any]] = data["Gateways"]
    if create:
        rows.append({"Name": name, **given})
    else:
        index = names.index(name)
        rows[index] = {**_without_none(rows[index]), **given}
    try:
        return parse_settings(data)
    except SettingsError as exc:
        mine = [p for p in exc.problems if p.key == name or p.key.startswith(f"{name}.")]
        raise GatewayChangeError(422, f"gateway {name} refused", mine or exc.problems) from None


def _without_none(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


def save_gateways(path: Path, gateways: Sequence[Gateway]) -> None:
    """Write ``gateways`` as ``[[Gateways]]`` tables (settings keys; unset values left out),
    atomically: a crash leaves the old file or the new one."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Gateways changed at run time (hybridvoice gateway add/set); they"))
    doc.add(tomlkit.comment("replace the settings file's [GatewayN] sections at start."))
    doc.add(tomlkit.comment("Delete this file to use the settings file's gateways again."))
    tables = tomlkit.aot()
    for gateway in gateways:
        tables.append(tomlkit.item(_without_none(gateway.model_dump(by_alias=True, mode="json"))))
    doc.add("Gateways", tables)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(temporary, path)


def load_gateways(path: Path, settings: Settings) -> Settings:
    """``settings`` with the gateways saved in ``path``; SettingsError names the file and
    the keys when the file is unreadable or invalid."""
    try:
        with path.open("rb") as f:
            saved = tomllib.load(f).get("Gateways", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError([Problem(str(path), f"cannot read: {exc}")]) from None
    data = settings.model_dump(by_alias=True, mode="json")
    data["Gateways"] = saved
    try:
        return parse_settings(data)
    except SettingsError as exc:
        raise SettingsError([Problem(f"{path}: {p.key}", p.reason) for p in exc.problems]) from None


def gateway_row(g: GatewayStatus) -> dict[str, Any]:
    """One gateway as the appliance API shows it (``appliance status``, ``gateway list``)."""
    rtt = g.last_options_rtt_ms
    return {
        "name": g.name,
        "address": f"{g.protocol.lower()}:{g.host}:{g.port}",
        "transport": g.protocol,
        "enabled": g.enabled,
        "health": str(g.health.value),
        "active_calls": g.active_calls,
        "calls_total": g.calls_total,
        "calls_failed": g.calls_failed,
        "max_sessions": g.max_sessions,
        "last_options_status": g.last_options_status,
        "last_options_rtt_ms": None if rtt is None else round(rtt, 3),
        "last_options_error": g.last_options_error,
        "consecutive_failures": g.consecutive_failures,
    }
