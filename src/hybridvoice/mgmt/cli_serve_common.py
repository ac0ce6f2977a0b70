"""What the long-running commands share (``up``, ``appliance serve``, ``online serve``,
``mediation serve``): their logging options, logging set up or refused with exit code 2, and a
settings file loaded or refused with every problem named (exit code 2). Light to import: the
settings and logging modules are loaded when used (the CLI's start stays fast)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console

if TYPE_CHECKING:
    from hybridvoice.cms.settings import Settings

__all__ = ["LogComponents", "LogFormatOption", "LogLevel", "settings_or_exit", "start_logging"]

LogLevel = Annotated[
    str, typer.Option(help="Log this level and above: debug, info, warning, error, critical")
]
LogFormatOption = Annotated[
    str, typer.Option(help="Logs to stderr as text (for humans) or json (one object a line)")
]
LogComponents = Annotated[
    str, typer.Option(help="Levels of components: mediation=debug,edge=info (docs/logs.md)")
]


def start_logging(
    err: Console,
    level: str,
    log_format: str = "text",
    components: str = "",
    *,
    settings: Settings | None = None,
    directory: Path | None = None,
) -> None:
    """Logs to stderr and, with ``directory``, to rotated files there (``logs search``); the
    settings' ``[Logging]`` component levels and file sizes apply, the command line's
    components over them. A bad option: its problem printed, exit code 2."""
    from .logs import LogFormat, LoggingSetupError, configure_logging, parse_components  # noqa: PLC0415

    try:
        given = parse_components(components)
        if settings is None:
            configure_logging(level, cast(LogFormat, log_format), sys.stderr, components=given,
                              directory=directory)  # fmt: skip
            return
        logging = settings.logging
        configure_logging(level, cast(LogFormat, log_format), sys.stderr,
                          components={**logging.component_levels(), **given},
                          directory=directory, max_bytes=logging.max_bytes,
                          backups=logging.files)  # fmt: skip
    except LoggingSetupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def settings_or_exit(err: Console, config: Path, *, hint: str | None = None) -> Settings:
    """The settings file, or every problem named and exit code 2 (``hint``: what to do when
    the file cannot be read)."""
    from hybridvoice.cms.settings import SettingsError, load_settings  # noqa: PLC0415

    try:
        return load_settings(config)
    except SettingsError as exc:
        err.print(f"[red]{config}: settings refused[/red]", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False)
        raise typer.Exit(2) from exc
    except OSError as exc:
        err.print(f"[red]cannot read {config}:[/red] {exc.strerror or exc}", highlight=False)
        if hint:
            err.print(hint)
        raise typer.Exit(2) from exc
