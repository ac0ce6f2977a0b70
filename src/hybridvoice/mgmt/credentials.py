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


def current_token() -> str | None:
    """``--token`` (the root command puts it in ``$HYBRIDVOICE_TOKEN`` for the command it
    runs), else ``$HYBRIDVOICE_TOKEN``, else the token file's, else None."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    try:
        return token_file().read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
