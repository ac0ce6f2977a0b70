"""An appliance started again on its state directory with the same ``--admin-token`` (a restart,
a rolling update's new version) keeps that token instead of refusing to start."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hybridvoice.cms.guard import Access
from hybridvoice.mgmt.appliance_serve import admin_token

TOKEN = "hv_0123abcd_" + "A" * 43


def _appliance(state: Path) -> Any:
    return SimpleNamespace(access=Access.open(state / "access.db"))


def test_the_same_admin_token_on_a_second_start(tmp_path: Path) -> None:
    first = _appliance(tmp_path)
    assert admin_token(first, TOKEN, tmp_path) is None
    first.access.close()
    again = _appliance(tmp_path)  # the next process on the same state directory
    assert admin_token(again, TOKEN, tmp_path) is None  # raised "token id ... exists"
    row = again.access.tokens.verify(TOKEN)
    assert row is not None and row.scope == "admin" and row.name == "site-admin"
    assert len(again.access.tokens.tokens()) == 1
    other = "hv_89abcdef_" + "B" * 43  # another token given: it replaces the first
    assert admin_token(again, other, tmp_path) is None
    assert again.access.tokens.verify(TOKEN) is None
    assert again.access.tokens.verify(other) is not None
    again.access.close()
