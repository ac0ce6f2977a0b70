"""Import a Cloud Connector Edition ``CloudConnector.ini`` into hybridvoice settings.

The file is read with :mod:`configparser` (keys keep their case, no interpolation, no inline
comments: a route regex may hold ``;`` or ``%``). Every key of ``[Common]``,
``[MediationServer]``, ``[GatewayN]``, ``[HybridVoiceRoutes]`` and ``[TrunkConfiguration]``
that hybridvoice has a setting for is mapped (key names compared without regard to case);
``[EdgeServer]`` too; everything else — the ``[Network]`` and ``[PrimaryCMS]`` VM plumbing, update
server keys, unknown keys — is returned as ``Section.Key`` so that the admin sees exactly
what was not carried over. Empty values count as unset. The result is validated like a TOML
settings file: :class:`~hybridvoice.cms.settings.SettingsError` lists every problem.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel

from .settings import (
    Common,
    EdgeServer,
    Gateway,
    MediationServer,
    Problem,
    Settings,
    SettingsError,
    TrunkConfiguration,
    ini_key,
    parse_settings,
)

__all__ = ["import_ini"]

_NO_DEFAULT: Final = "\x00no default section"


def _keys(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """lower-case key -> the settings key, for every field of ``model``."""
    keys = (ini_key(name) for name in model.model_fields if name not in skip)
    return {key.lower(): key for key in keys}


_SECTIONS: Final[Mapping[str, dict[str, str]]] = {
    "Common": _keys(Common),
    "MediationServer": _keys(MediationServer),
    "EdgeServer": _keys(EdgeServer),
    "TrunkConfiguration": _keys(TrunkConfiguration),
}
_GATEWAY_KEYS: Final = _keys(Gateway, skip=("name",))


def _section_name(name: str) -> str | None:
    """The settings section an ini section maps to (``gateway2`` -> ``Gateway2``), or None."""
    lowered = name.lower()
    for known in (*_SECTIONS, "HybridVoiceRoutes"):
        if lowered == known.lower():
            return known
    if lowered.startswith("gateway") and lowered[7:].isdigit():
        return f"Gateway{int(lowered[7:])}"
    return None


def import_ini(text: str) -> tuple[Settings, tuple[str, ...]]:
    """Parse CloudConnector.ini ``text``: the validated settings and the keys not mapped.

    Raises ``SettingsError`` when the file is not
    an ini file or the mapped values are invalid (keys named as in the ini file).
    """
    parser = configparser.ConfigParser(
        interpolation=None, default_section=_NO_DEFAULT, strict=True, delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep the keys' case
    try:
        parser.read_string(text, source="CloudConnector.ini")
    except configparser.Error as exc:
        raise SettingsError([Problem("CloudConnector.ini", f"not an ini file: {exc}")]) from None

    raw: dict[str, dict[str, Any]] = {}
    unmapped: list[str] = []
    for section in parser.sections():
        target = _section_name(section)
        values = parser[section]
        if target is None:
            unmapped += [f"{section}.{key}" for key in values]
            continue
        out = raw.setdefault(target, {})
        if target == "HybridVoiceRoutes":
            out.update({key: value for key, value in values.items() if value.strip()})
            continue
        known = _GATEWAY_KEYS if target.startswith("Gateway") else _SECTIONS[target]
        for key, value in values.items():
            mapped = known.get(key.lower())
            if mapped is None:
                unmapped.append(f"{section}.{key}")
            elif value.strip():
                out[mapped] = value.strip()
    return parse_settings(raw), tuple(unmapped)
