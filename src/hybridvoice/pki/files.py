"""Writing PKI files safely: atomically, with the mode decided before the data lands.

A reader (the TLS adapter building a context for the next handshake, another process) sees the
old file or the new one, never half of one: the data goes to a temporary file in the same
directory, is flushed to disk, and is renamed over the old name (``rename(2)`` is atomic within
a file system, POSIX.1-2017 §rename); the directory is then flushed so the rename survives a
crash. Secret files get mode 0600 before a byte is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["PUBLIC", "SECRET", "checked_name", "write_atomic"]

SECRET: Final = 0o600
PUBLIC: Final = 0o644
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def checked_name(name: str) -> str:
    """``name`` if it can name a file of the store (no separators, no leading dot)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a certificate: letters, digits, '.', '-', '_'")
    return name


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one step, the new file having ``mode``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
