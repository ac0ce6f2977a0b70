"""Token and audit stores on their own: what survives a reopen, what verifies, what is masked,
what the filters find, and that the log stays bounded."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from hybridvoice.cms.audit import MASK, AuditLog, masked
from hybridvoice.cms.guard import Access
from hybridvoice.cms.tokens import TokenError, TokenStore, scope_allows


def test_tokens_survive_a_reopen_hashed_and_revocations_too(tmp_path: Path) -> None:
    path = tmp_path / "access.db"
    first = Access.open(path)
    kept, kept_secret = first.tokens.create("ops", "admin")
    gone, gone_secret = first.tokens.create("old", "read")
    first.tokens.revoke(gone.id)
    first.close()

    again = Access.open(path)
    try:
        assert again.tokens.verify(kept_secret) == kept
        assert again.tokens.verify(gone_secret) is None
        assert [t.name for t in again.tokens.tokens()] == ["ops", "old"]
        assert again.tokens.get(gone.id) is not None and not again.tokens.get(gone.id).active
    finally:
        again.close()
    assert kept_secret.encode() not in path.read_bytes()


def test_verify_refuses_anything_but_the_exact_token() -> None:
    store = TokenStore(sqlite3.connect(":memory:"), threading.RLock())
    row, secret = store.create("ops", "admin")
    assert secret.startswith(f"hv_{row.id}_") and len(secret) == 3 + 8 + 1 + 43
    assert store.verify(secret) == row
    for wrong in (secret[:-1] + ("B" if secret[-1] != "B" else "C"), secret + "x", secret.upper(),
                  f"hv_{row.id}_", "", "hv_zzzzzzzz_" + "A" * 43):  # fmt: skip
        assert store.verify(wrong) is None, wrong


def test_bad_names_scopes_and_ids_are_refused() -> None:
    store = TokenStore(sqlite3.connect(":memory:"), threading.RLock())
    with pytest.raises(TokenError, match="scope"):
        store.create("x", "root")
    with pytest.raises(TokenError, match="name"):
        store.create("  ", "read")
    with pytest.raises(TokenError, match="name"):
        store.create("a\nb", "read")
    with pytest.raises(TokenError, match="no token"):
        store.revoke("12345678")
    with pytest.raises(TokenError, match="not a hybridvoice token"):
        store.adopt("secret", "x", "read")
    _, secret = store.create("a", "read")
    with pytest.raises(TokenError, match="exists"):
        store.adopt(secret, "b", "admin")


@pytest.mark.parametrize(
    ("scope", "read", "appliance", "admin"),
    [("read", True, False, False), ("appliance", True, True, False), ("admin", True, True, True),
     ("unknown", True, False, False)],
)  # fmt: skip
def test_what_each_scope_allows(scope: str, read: bool, appliance: bool, admin: bool) -> None:
    assert scope_allows(scope, "read") is read
    assert scope_allows(scope, "appliance") is appliance
    assert scope_allows(scope, "admin") is admin


def test_secrets_are_masked_at_any_depth_but_flags_are_not() -> None:
    value = {"password": "p", "has_password": True, "nested": [{"ha1_md5": "abc", "x": 1}],
             "token": None, "api_token": "hv_x", "name": "alice"}  # fmt: skip
    assert masked(value) == {
        "password": MASK, "has_password": True, "nested": [{"ha1_md5": MASK, "x": 1}],
        "token": None, "api_token": MASK, "name": "alice",
    }  # fmt: skip


def test_audit_filters_and_stays_bounded() -> None:
    now = [1000.0]
    log = AuditLog(sqlite3.connect(":memory:"), threading.RLock(), lambda: now[0], max_rows=1000)
    for i in range(2500):
        now[0] += 1
        log.record(token_id="t1", token_name="ops", source="192.0.2.1",
                   operation="user.set" if i % 2 else "site.set", target=f"u{i % 10}",
                   status=200, before={"password": "old"}, after={"password": "new"})  # fmt: skip
    newest = log.entries(limit=1)[0]
    assert (newest.id, newest.at, newest.before, newest.after) == (2500, 3500.0, {"password": MASK},
                                                                   {"password": MASK})  # fmt: skip
    assert all(e.operation == "user.set" for e in log.entries(operation="user", limit=50))
    assert log.entries(operation="user_", limit=5) == []  # _ is no wildcard
    assert {e.target for e in log.entries(target="u3", limit=50)} == {"u3"}
    assert len(log.entries(since=3491.0, limit=100)) == 10
    assert log.entries(token="ops", limit=1) == log.entries(token="t1", limit=1)
    assert len(log.entries(limit=10_000)) <= 1000 + 1000  # pruned every 1000 rows
