"""``hybridvoice.pki`` stays a core (CONVENTIONS.md): no event loop, sockets or ``ssl``, and
nothing of ours above it or beside it; only the standard library and ``cryptography``."""

from __future__ import annotations

import ast
from pathlib import Path

import hybridvoice.pki

PKI = Path(hybridvoice.pki.__file__).parent
FORBIDDEN = {"asyncio", "socket", "ssl", "selectors", "uvloop", "threading"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_pki_imports_no_io_and_nothing_of_ours() -> None:
    offenders = {
        path.name: sorted(
            name
            for name in _imports(path)
            if name.split(".")[0] in FORBIDDEN or name.startswith("hybridvoice")
        )
        for path in sorted(PKI.glob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
