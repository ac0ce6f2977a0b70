"""The update file of a site: its appliances on this host and where each version is installed.

``hybridvoice update plan|start|status --site-file SITE.toml`` (``docs/updates.md``)::

    Site = "Amsterdam"
    VersionsDirectory = "/opt/hybridvoice"   # one installation per version: <dir>/<version>/
    # StateFile = "/var/lib/hybridvoice/rollout-Amsterdam.json"  (default: beside this file)

    [[Appliances]]
    Config = "/etc/hybridvoice/ams1.toml"      # its settings file (name, API address)
    StateDirectory = "/var/lib/hybridvoice/ams1"
    # Name = "ams1"; API = "http://127.0.0.1:8472"; Arguments = ["--drain-deadline", "60"]
    # Environment = { HYBRIDVOICE_ONLINE_TOKEN = "..." }

Versions side by side: ``<VersionsDirectory>/<version>`` is a virtual environment (its
``bin/python`` runs ``-m hybridvoice``) or a source tree (``src/hybridvoice`` or
``hybridvoice`` on ``PYTHONPATH``, run by this Python). An appliance runs as
``<python> -m hybridvoice appliance serve --config C --state-dir S [Arguments]``.

Errors name the key and the reason (:class:`UpdateSiteError`), never a traceback.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hybridvoice.cms.edge_names import appliance_name
from hybridvoice.cms.settings import SettingsError, load_settings

__all__ = ["Installation", "SiteAppliance", "UpdateSite", "UpdateSiteError", "load_update_site"]


class UpdateSiteError(ValueError):
    """The site file is unusable; the message names the key and the reason."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    Config: Path
    StateDirectory: Path
    Name: str | None = None
    API: str | None = Field(default=None, pattern=r"^https?://\S+$")
    Arguments: tuple[str, ...] = ()
    Environment: dict[str, str] = Field(default_factory=dict)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    Site: str = Field(min_length=1)
    VersionsDirectory: Path
    StateFile: Path | None = None
    Appliances: tuple[_Entry, ...] = Field(min_length=1)

    @field_validator("Appliances")
    @classmethod
    def _distinct(cls, value: tuple[_Entry, ...]) -> tuple[_Entry, ...]:
        dirs = [str(e.StateDirectory) for e in value]
        twice = sorted({d for d in dirs if dirs.count(d) > 1})
        if twice:
            raise ValueError(f"StateDirectory {twice[0]} is given to two appliances")
        return value


@dataclass(frozen=True, slots=True)
class SiteAppliance:
    """One appliance of the site as this host runs it."""

    name: str
    config: Path
    state_dir: Path
    api: str
    arguments: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Installation:
    """One version's installation: the Python that runs it and what it adds to PYTHONPATH."""

    version: str
    path: Path
    python: str
    pythonpath: str | None


@dataclass(frozen=True, slots=True)
class UpdateSite:
    site: str
    versions_dir: Path
    state_file: Path
    appliances: tuple[SiteAppliance, ...]

    def installations(self) -> dict[str, Installation]:
        """Every version installed under :attr:`versions_dir`, by version."""
        found: dict[str, Installation] = {}
        if not self.versions_dir.is_dir():
            return found
        for path in sorted(self.versions_dir.iterdir()):
            install = installation(path)
            if install is not None:
                found[install.version] = install
        return found

    def appliance(self, name: str) -> SiteAppliance:
        for a in self.appliances:
            if a.name == name:
                return a
        raise KeyError(name)


def installation(path: Path) -> Installation | None:
    """``path`` as an installation of the version it is named after, or None."""
    if (path / "bin" / "python").exists():
        return Installation(path.name, path, str(path / "bin" / "python"), None)
    for root in (path / "src", path):
        if (root / "hybridvoice" / "__init__.py").exists():
            return Installation(path.name, path, sys.executable, str(root))
    return None


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(file)"
    return f"{key}: {str(first['msg']).removeprefix('Value error, ')}"


def load_update_site(path: Path) -> UpdateSite:
    """Read and check the site file; :class:`UpdateSiteError` names what is wrong."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UpdateSiteError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UpdateSiteError(f"{path}: not TOML: {exc}") from exc
    try:
        data = _File.model_validate(raw)
    except ValidationError as exc:
        raise UpdateSiteError(f"{path}: {_problem(exc)}") from exc
    base = path.parent
    appliances = []
    for n, entry in enumerate(data.Appliances):
        config = entry.Config if entry.Config.is_absolute() else base / entry.Config
        try:
            settings = load_settings(config)
        except SettingsError as exc:
            problems = "; ".join(map(str, exc.problems))
            raise UpdateSiteError(f"{path}: Appliances.{n}.Config: {problems}") from exc
        except OSError as exc:
            raise UpdateSiteError(f"{path}: Appliances.{n}.Config: cannot read {config}: "
                                  f"{exc.strerror or exc}") from exc  # fmt: skip
        if settings.common.site_name != data.Site:
            other = settings.common.site_name
            raise UpdateSiteError(f"{path}: Appliances.{n}.Config: {config} is an appliance of "
                                  f"site {other!r}, not {data.Site!r}")  # fmt: skip
        mg = settings.management
        state = entry.StateDirectory
        appliances.append(SiteAppliance(
            name=entry.Name or appliance_name(settings), config=config,
            state_dir=state if state.is_absolute() else base / state,
            api=entry.API or f"http://{mg.ip}:{mg.port}",
            arguments=entry.Arguments, environment=tuple(sorted(entry.Environment.items())),
        ))  # fmt: skip
    names = [a.name for a in appliances]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UpdateSiteError(f"{path}: Appliances: two appliances are named {twice!r}")
    versions = data.VersionsDirectory
    state_file = data.StateFile or path.with_name(f"rollout-{data.Site}.json")
    return UpdateSite(
        site=data.Site,
        versions_dir=versions if versions.is_absolute() else base / versions,
        state_file=state_file if state_file.is_absolute() else base / state_file,
        appliances=tuple(appliances),
    )
