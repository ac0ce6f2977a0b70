"""Log levels and components: what ``--log-level``, ``--log-component`` and the settings'
``[Logging]`` accept, checked in one place (:mod:`hybridvoice.mgmt.logs` applies them).

No RFC is implemented here. A component is ``hybridvoice.<name>`` and everything under it.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = [
    "COMPONENTS",
    "LEVELS",
    "LoggingSetupError",
    "check_component",
    "parse_components",
    "parse_level",
]

#: components a level can be given for: ``hybridvoice.<name>`` and what is under it
COMPONENTS: Final = frozenset(
    {"app", "cms", "edge", "fleet", "lab", "media", "mediation", "mgmt", "net", "online",
     "pki", "planning", "sip", "store", "trace"}
)  # fmt: skip
LEVELS: Final = ("debug", "info", "warning", "error", "critical")


class LoggingSetupError(ValueError):
    """An unknown log level, format or component."""


def parse_level(level: str, what: str = "log level") -> int:
    """The numeric level of ``level`` (any case); :class:`LoggingSetupError` naming ``what``."""
    numeric = logging.getLevelNamesMapping().get(level.strip().upper())
    if numeric is None or level.strip().lower() not in LEVELS:
        raise LoggingSetupError(
            f"{what}: unknown level {level!r}: use debug, info, warning, error or critical"
        )
    return numeric


def parse_components(text: str) -> dict[str, str]:
    """``mediation=debug,edge=info`` as ``{"mediation": "debug", "edge": "info"}``, every
    component and level checked (the error names the one refused and why)."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, eq, level = item.partition("=")
        name = name.strip().lower()
        if not eq or not name:
            raise LoggingSetupError(f"log component {item!r}: write COMPONENT=LEVEL")
        check_component(name)
        parse_level(level, f"log component {name}")
        out[name] = level.strip().lower()
    return out


def check_component(name: str) -> None:
    """:class:`LoggingSetupError` unless ``name`` is one of :data:`COMPONENTS`."""
    if name not in COMPONENTS:
        raise LoggingSetupError(
            f"log component {name!r}: unknown; use one of {', '.join(sorted(COMPONENTS))}"
        )
