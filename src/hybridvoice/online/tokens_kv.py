"""The API's bearer tokens shared by the online instances of one tenant (docs/fleet.md).

:class:`SharedTokens` is the API's :class:`~hybridvoice.cms.tokens.TokenStore` (same methods,
tokens stored hashed) whose rows are also written to ``hv/t/<tenant>/token/<id>`` and read
from there: a token made or revoked on one instance is valid (or refused) on every instance as
soon as its watch brings the change, in milliseconds. The instance's own SQLite file keeps a
copy of the rows; the audit log stays per instance.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from hybridvoice.cms.tokens import Token, TokenStore
from hybridvoice.store.keys import parse_key, tenant_key
from hybridvoice.store.kv import Event, EventKind, StoreError

from .store_kv import KvTenantStore

__all__ = ["SharedTokens", "share_tokens"]

_log = logging.getLogger(__name__)


class SharedTokens(TokenStore):
    """A token store whose rows live in the tenant's store too (see the module docstring)."""

    _store: KvTenantStore

    def adopt(self, token: str, name: str, scope: str) -> Token:
        row = super().adopt(token, name, scope)
        self._publish(row)
        return row

    def revoke(self, token_id: str) -> Token:
        row = super().revoke(token_id)
        self._publish(row)
        return row

    def _publish(self, row: Token) -> None:
        key = tenant_key(self._store.tenant, "token", row.id)
        data = json.dumps(asdict(row)).encode()
        bridge = self._store.bridge
        bridge.call(lambda: bridge.kv.put(key, data))

    def heard(self, event: Event) -> None:
        """A watched token row (made or revoked on any instance)."""
        try:
            token_id = parse_key(event.key).name
        except StoreError:
            return
        if event.kind is EventKind.DELETE:
            self._tokens.pop(token_id, None)
            return
        try:
            row = Token(**json.loads(event.value))
        except (ValueError, TypeError) as exc:
            _log.warning("token %s is not a token row (%s): ignored", event.key, exc)
            return
        old = self._tokens.get(row.id)
        if old is not None and old.revoked_at is not None and row.revoked_at is None:
            return  # a revocation is never undone by an older row
        self._tokens[row.id] = row


def share_tokens(store: KvTenantStore) -> SharedTokens:
    """Replace the store's API tokens by shared ones; rows of the instance's own file that the
    tenant's store lacks (made before it ran on etcd) are published."""
    local = store.access.tokens
    shared = SharedTokens(local._db, local._lock, local._clock)
    shared._store = store
    own = {t.id: t for t in local.tokens()}
    shared._tokens.clear()
    store.listen("token", shared.heard)
    known = set(shared._tokens)
    for token_id, row in own.items():
        if token_id not in known:
            shared._tokens[token_id] = row
            shared._publish(row)
    store.access.tokens = shared
    return shared
