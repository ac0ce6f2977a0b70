"""``[Logging]`` (hybridvoice): the log levels of components and the rotation of the log files
in the state directory (``docs/logs.md``).

``Components`` gives components their own level (``"mediation=debug,edge=info"``; the
command line's ``--log-component`` adds to them and wins for a component it names);
``MaxFileMegabytes`` is the size at which ``hybridvoice.log`` is rotated, ``Files`` how many
rotated files are kept. No RFC is implemented here. A bad value names its key and the reason
(``Logging.Components: log component 'mediaton': unknown; use one of ...``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from hybridvoice.net.log_levels import LoggingSetupError, parse_components

from .settings_values import _Section

__all__ = ["Logging"]


def _components(value: str) -> str:
    try:
        parse_components(value)
    except LoggingSetupError as exc:
        raise ValueError(str(exc)) from exc
    return value.strip()


class Logging(_Section):
    """``[Logging]``: see the module docstring."""

    components: Annotated[str, AfterValidator(_components)] = ""
    max_file_megabytes: int = Field(default=10, ge=1, le=1024)
    files: int = Field(default=5, ge=1, le=100)

    def component_levels(self) -> dict[str, str]:
        """``Components`` as ``{component: level}``."""
        return parse_components(self.components)

    @property
    def max_bytes(self) -> int:
        return self.max_file_megabytes * 1_000_000
