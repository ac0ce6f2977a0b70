"""``appliance serve --admin-token``: the same token at every start (a restart kept it, it was
refused as "token id ... exists" before), a new one replaces the old, a revoked or malformed
one is refused naming the option; without one, the first start writes its own (0600)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports

from hybridvoice.mgmt.appliance import Appliance
from hybridvoice.mgmt.appliance_serve import admin_token, with_state_dir


def _appliance(state: Path) -> Appliance:
    return Appliance(with_state_dir(settings_on_free_ports(), state))


def _fresh() -> str:
    appliance = Appliance(settings_on_free_ports())
    try:
        return appliance.access.tokens.create("elsewhere", "admin")[1]
    finally:
        appliance.close()


def test_the_same_admin_token_at_every_start(tmp_path: Path) -> None:
    token, other = _fresh(), _fresh()
    for _ in range(2):  # a restart with the same --admin-token
        appliance = _appliance(tmp_path)
        assert admin_token(appliance, token, tmp_path) is None
        assert appliance.access.tokens.verify(token) is not None
        appliance.close()
    appliance = _appliance(tmp_path)
    admin_token(appliance, other, tmp_path)  # a new one replaces it
    assert appliance.access.tokens.verify(token) is None
    assert appliance.access.tokens.verify(other) is not None
    with pytest.raises(ValueError, match="--admin-token: it was revoked"):
        admin_token(appliance, token, tmp_path)
    with pytest.raises(ValueError, match="--admin-token: not a hybridvoice token"):
        admin_token(appliance, "hunter2", tmp_path)
    appliance.close()


def test_without_a_token_the_first_start_writes_its_own(tmp_path: Path) -> None:
    appliance = _appliance(tmp_path)
    written = admin_token(appliance, None, tmp_path)
    assert written == tmp_path / "admin-token"
    assert written.stat().st_mode & 0o777 == 0o600
    assert appliance.access.tokens.verify(written.read_text().strip()) is not None
    assert admin_token(appliance, None, tmp_path) is None  # it has one: nothing new
    appliance.close()
