"""Bearer tokens for the management APIs (RFC 6750): made, listed, revoked, verified.

A token is ``hv_<id>_<secret>``: ``id`` is 8 hex digits that admins see in listings and the
audit log to tell tokens apart, ``secret`` 32 random bytes (``secrets.token_urlsafe``). Only
the SHA-256 of the whole token is stored: a random 256-bit secret needs no slow, salted hash
(nobody can guess it, so there is nothing for a dictionary to find), and the token is shown
once, when it is made. :meth:`TokenStore.verify` finds the row by the id and compares the
hashes with :func:`hmac.compare_digest`, so the time taken says nothing about the secret.

Scopes: ``read`` reads, ``admin`` reads and writes, ``appliance`` reads and does what an
appliance does on the online API (register itself, send heartbeats; until appliances move to
mutual TLS). The rows live in a table of a SQLite database that the owner opens (the online
service's tenant store, the appliance's management store) and guards with its lock; reads
come from a cache loaded at open, so verifying a request costs no SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

__all__ = ["SCOPES", "Scope", "Token", "TokenError", "TokenStore", "bearer", "scope_allows"]

Scope = Literal["read", "admin", "appliance"]
SCOPES: Final[tuple[str, ...]] = get_args(Scope)
#: what each scope may do beyond reading (see the module docstring)
_WRITES: Final[dict[str, frozenset[str]]] = {
    "read": frozenset(),
    "admin": frozenset({"admin", "appliance"}),
    "appliance": frozenset({"appliance"}),
}
_FORMAT: Final = re.compile(r"hv_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL, sha256 TEXT NOT NULL,
    created_at REAL NOT NULL, revoked_at REAL
);
"""


class TokenError(ValueError):
    """A token request that cannot be done (unknown id, bad name or scope)."""


def bearer(token: str | None) -> dict[str, str]:
    """The ``Authorization`` header a client sends with ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def scope_allows(scope: str, need: str) -> bool:
    """Whether a token of ``scope`` may do what needs ``need`` (``read``, ``appliance`` or
    ``admin``)."""
    return need == "read" or need in _WRITES.get(scope, frozenset())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Token:
    """A token's row: everything but the secret."""

    id: str
    name: str
    scope: str
    created_at: float
    revoked_at: float | None = None
    sha256: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, object]:
        """What listings and the audit log show (never the hash)."""
        return {"id": self.id, "name": self.name, "scope": self.scope,
                "created_at": self.created_at, "revoked_at": self.revoked_at}  # fmt: skip


class TokenStore:
    """The tokens of one API, in the ``tokens`` table of ``db`` (created when missing)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        lock: threading.RLock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db, self._lock, self._clock = db, lock, clock
        with lock:
            db.executescript(_SCHEMA)
            rows = db.execute(
                "SELECT id, name, scope, created_at, revoked_at, sha256 FROM tokens"
            ).fetchall()
        self._tokens: dict[str, Token] = {row[0]: Token(*row) for row in rows}

    def create(self, name: str, scope: str) -> tuple[Token, str]:
        """A new token: its row and the token itself (shown once, stored only hashed)."""
        while True:
            token_id = secrets.token_hex(4)
            if token_id not in self._tokens:
                break
        token = f"hv_{token_id}_{secrets.token_urlsafe(32)}"
        return self.adopt(token, name, scope), token

    def adopt(self, token: str, name: str, scope: str) -> Token:
        """Store a token made elsewhere (``hybridvoice up`` gives one lab token to both APIs)."""
        match = _FORMAT.fullmatch(token)
        if match is None:
            raise TokenError("not a hybridvoice token (hv_<8 hex>_<43 base64url characters>)")
        if scope not in SCOPES:
            raise TokenError(f"scope {scope!r} must be one of {', '.join(SCOPES)}")
        name = name.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise TokenError("name the token: 1-64 printable characters")
        row = Token(match.group(1), name, scope, self._clock(), None, _digest(token))
        with self._lock:
            if row.id in self._tokens:
                raise TokenError(f"token id {row.id} exists")
            self._db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                (row.id, row.name, row.scope, row.sha256, row.created_at, None),
            )
            self._tokens[row.id] = row
        return row

    def tokens(self) -> list[Token]:
        """Every token, revoked ones too, oldest first."""
        return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def get(self, token_id: str) -> Token | None:
        return self._tokens.get(token_id)

    def revoke(self, token_id: str) -> Token:
        """Revoke a token (kept, marked, for the audit log's sake); TokenError when unknown."""
        with self._lock:
            old = self._tokens.get(token_id)
            if old is None:
                raise TokenError(f"no token {token_id!r}")
            if not old.active:
                return old
            new = replace(old, revoked_at=self._clock())
            self._db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ?", (new.revoked_at, token_id)
            )
            self._tokens[token_id] = new
            return new

    def revoke_named(self, name: str) -> list[Token]:
        """Revoke every active token called ``name`` (a lab token made again at each start)."""
        return [self.revoke(t.id) for t in self.tokens() if t.name == name and t.active]

    def verify(self, token: str) -> Token | None:
        """The active token ``token`` is, or None (malformed, unknown, revoked)."""
        match = _FORMAT.fullmatch(token)
        if match is None:
            return None
        row = self._tokens.get(match.group(1))
        if row is None or not hmac.compare_digest(row.sha256, _digest(token)):
            return None
        return row if row.active else None
