"""Where the CLI finds its bearer token for the management APIs.

In order: ``--token``, the environment variable ``HYBRIDVOICE_TOKEN``, then the token file
that ``hybridvoice up`` writes: ``token`` in the user's config directory (platformdirs:
``$XDG_CONFIG_HOME/hybridvoice`` or ``~/.config/hybridvoice`` on Linux), mode 0600 in a 0700
directory, as an SSH key would be kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import click
import platformdirs

__all__ = ["TOKEN_ENV", "current_token", "save_token", "token_file"]

TOKEN_ENV: Final = "HYBRIDVOICE_TOKEN"


def token_file() -> Path:
    """The token file: ``token`` in the user's hybridvoice config directory."""
    return platformdirs.user_config_path("hybridvoice") / "token"


def save_token(token: str) -> Path:
    """Write ``token`` to :func:`token_file` (mode 0600, the directory 0700); its path."""
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have been made with other bits
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    return path


def _given_token() -> object:
    """``--token`` of the command being run, from click's context or from that of the click
    copy a newer typer carries (``typer._click``, with its own context stack)."""
    context = click.get_current_context(silent=True)
    if context is not None:
        return context.find_root().params.get("token")
    try:
        from typer._click.globals import (  # noqa: PLC0415
            get_current_context as typer_context,
        )
    except ImportError:
        return None
    vendored = typer_context(silent=True)
    return vendored.find_root().params.get("token") if vendored is not None else None


def current_token() -> str | None:
    """``--token``, else ``$HYBRIDVOICE_TOKEN``, else the token file's, else None.

    ``--token`` is an option of the root command: read from the command line being run
    (click's current context), so no module keeps it."""
    given = _given_token()
    if isinstance(given, str) and given:
        return given
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    try:
        return token_file().read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
