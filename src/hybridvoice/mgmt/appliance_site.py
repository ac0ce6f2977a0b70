"""Gateways as site records: what an appliance of a site on etcd writes for a gateway change,
and the settings it runs with from its site replica (``gateway`` records: the settings file's
``[[Gateways]]`` keys of one gateway, unset values left out).

A gateway record that does not validate (written by a newer version, or by hand) is refused
with a :class:`~hybridvoice.cms.settings.SettingsError` naming the record and the key; the
appliance logs it and keeps the gateway it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.settings import Problem, Settings, SettingsError, parse_settings

__all__ = ["gateway_keys", "gateways_from_replica", "with_gateway"]


def gateway_keys(settings: Settings, name: str) -> dict[str, Any]:
    """Gateway ``name`` of ``settings`` as a record: its settings keys, unset ones left out."""
    row = settings.gateway(name).model_dump(by_alias=True, mode="json")
    return {k: v for k, v in row.items() if v is not None}


def _parse(data: dict[str, Any], where: str) -> Settings:
    try:
        return parse_settings(data)
    except SettingsError as exc:
        raise SettingsError(
            [Problem(f"{where}: {p.key}", p.reason) for p in exc.problems]
        ) from None


def with_gateway(settings: Settings, name: str, keys: Mapping[str, Any]) -> Settings:
    """``settings`` with gateway ``name`` set to exactly ``keys`` (added when new)."""
    data = settings.model_dump(by_alias=True, mode="json")
    rows: list[dict[str, Any]] = data["Gateways"]
    row = {**keys, "Name": name}
    names = [r.get("Name") for r in rows]
    if name in names:
        rows[names.index(name)] = row
    else:
        rows.append(row)
    return _parse(data, f"site record gateway/{name}")


def gateways_from_replica(settings: Settings, replica: LocalStore) -> Settings:
    """``settings`` with the site replica's gateways (by name) in place of the settings file's,
    when the replica holds any; else ``settings`` as they are."""
    records = replica.all("gateway")
    if not records:
        return settings
    data = settings.model_dump(by_alias=True, mode="json")
    data["Gateways"] = [{**dict(v), "Name": k} for k, v in sorted(records.items())]
    return _parse(data, "site replica gateways")
