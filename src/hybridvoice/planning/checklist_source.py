"""What the checklist is built from: the appliances of a deployment, by site (pure, text in).

Three kinds of file describe a deployment, and :func:`deployment_from_text` tells them apart
by their content (the file name only breaks a tie: ``.ini`` is always a CloudConnector.ini):

- a fleet description (TOML with ``[Fleet]`` or ``[[Site]]``, :mod:`hybridvoice.cms.fleet_plan`):
  several sites, each appliance's settings as ``hybridvoice up`` plans them;
- one appliance's settings (any other TOML, :mod:`hybridvoice.cms.settings`);
- a Cloud Connector Edition ``CloudConnector.ini`` (not TOML, with a ``[Common]`` section),
  imported as ``hybridvoice init --ini`` does (:mod:`hybridvoice.cms.ini`).

:func:`merge_deployments` joins several files into one deployment, one appliance each (the
production layout: a settings file per appliance, sites told apart by ``[Common] SiteName``).
:func:`defaults_deployment` is what ``hybridvoice up`` runs without ``--config``
(:func:`hybridvoice.cms.template.lab_settings`). A file that is none of these raises
:class:`ChecklistSourceError` naming the file and why; a file of the right kind with bad values
raises the loaders' own :class:`~hybridvoice.cms.settings.SettingsError` (every key named).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Literal

from hybridvoice.cms.edge_names import appliance_name
from hybridvoice.cms.fleet_plan import plan_fleet
from hybridvoice.cms.ini import import_ini
from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_fleet import is_fleet_document, parse_fleet
from hybridvoice.cms.template import lab_settings

__all__ = [
    "ApplianceInput",
    "ChecklistSourceError",
    "Deployment",
    "SourceKind",
    "defaults_deployment",
    "deployment_from_settings",
    "deployment_from_text",
    "merge_deployments",
]

SourceKind = Literal["defaults", "settings", "ini", "fleet"]
_INI_SECTION = re.compile(r"^\s*\[\s*common\s*\]\s*$", re.IGNORECASE | re.MULTILINE)


class ChecklistSourceError(ValueError):
    """The file is no deployment description the checklist can read: ``name`` and ``reason``."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True, slots=True)
class ApplianceInput:
    """One appliance: its name, its site and its settings (ports and addresses filled in)."""

    name: str
    site: str
    settings: Settings


@dataclass(frozen=True, slots=True)
class Deployment:
    """The appliances a checklist covers, site by site in the order of the source."""

    kind: SourceKind
    source: str  # what it was read from, for the report's heading
    appliances: tuple[ApplianceInput, ...]
    #: the key an admin changes to widen the mediation media range
    media_range_key: str = "MediationServer.MediaPortEnd"
    #: what the CloudConnector.ini import changed to run on one host (``ImportNote`` lines)
    notes: tuple[str, ...] = ()

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.site for a in self.appliances))

    def of_site(self, site: str) -> tuple[ApplianceInput, ...]:
        return tuple(a for a in self.appliances if a.site == site)


def deployment_from_settings(
    settings: Settings, *, kind: SourceKind = "settings", source: str = "settings",
    notes: tuple[str, ...] = (),
) -> Deployment:  # fmt: skip
    """One appliance, its site the settings' ``[Common] SiteName``."""
    one = ApplianceInput(appliance_name(settings), settings.common.site_name, settings)
    return Deployment(kind=kind, source=source, appliances=(one,), notes=notes)


def defaults_deployment() -> Deployment:
    """The settings ``hybridvoice up`` runs without ``--config`` (the one-machine lab)."""
    return deployment_from_settings(
        lab_settings(), kind="defaults", source="the embedded defaults of hybridvoice up"
    )


def deployment_from_text(name: str, text: str) -> Deployment:
    """The deployment a file describes, told apart by content (``.ini``: always an ini)."""
    if name.lower().endswith(".ini"):
        return _from_ini(name, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if _INI_SECTION.search(text):
            return _from_ini(name, text)
        raise ChecklistSourceError(
            name,
            "neither TOML (a settings or fleet file) nor a CloudConnector.ini (no [Common] "
            f"section): {exc}",
        ) from None
    if not raw:
        raise ChecklistSourceError(name, "empty: no settings, fleet or CloudConnector.ini keys")
    if is_fleet_document(raw):
        plan = plan_fleet(parse_fleet(raw))
        appliances = tuple(ApplianceInput(a.name, a.site, a.settings) for a in plan.appliances)
        return Deployment(
            kind="fleet",
            source=f"fleet {name}",
            appliances=appliances,
            media_range_key="Fleet.MediaPortsPerAppliance",
        )
    if "Common" not in raw:
        raise ChecklistSourceError(
            name,
            "TOML without [Common] (a settings file), [Fleet] or [[Site]] (a fleet file): "
            f"found {', '.join(sorted(raw)) or 'nothing'}",
        )
    return deployment_from_settings(parse_settings(raw), source=f"settings {name}")


def _from_ini(name: str, text: str) -> Deployment:
    if not _INI_SECTION.search(text):
        raise ChecklistSourceError(name, "not a CloudConnector.ini: it has no [Common] section")
    imported = import_ini(text)
    return deployment_from_settings(
        imported.settings,
        kind="ini",
        source=f"CloudConnector.ini {name} (as hybridvoice init --ini imports it)",
        notes=tuple(str(n) for n in imported.notes),
    )


def merge_deployments(parts: list[tuple[str, Deployment]]) -> Deployment:
    """One deployment of several files (``(file name, deployment)``), each one appliance's
    settings or CloudConnector.ini; a fleet file describes a whole deployment, so it comes
    alone. Two appliances of one name are refused."""
    if len(parts) == 1:
        return parts[0][1]
    seen: dict[str, str] = {}
    for name, part in parts:
        if part.kind == "fleet":
            raise ChecklistSourceError(
                name, "a fleet file describes the whole deployment: give it alone"
            )
        for a in part.appliances:
            other = seen.setdefault(a.name, name)
            if other != name:
                raise ChecklistSourceError(
                    name,
                    f"appliance {a.name!r} is {other}'s too: give each appliance its own "
                    "[Common] ServerName (or [Online] ApplianceName)",
                )
    return Deployment(
        kind="settings",
        source=f"{len(parts)} files ({', '.join(name for name, _ in parts)})",
        appliances=tuple(a for _, part in parts for a in part.appliances),
        notes=tuple(f"{name}: {n}" for name, part in parts for n in part.notes),
    )
