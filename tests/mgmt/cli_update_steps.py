"""The update commands' steps of the admin CLI scenario (``test_cli_admin.py``): windows made,
changed, listed, assigned to a site, refused with the option and the reason, removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from hybridvoice import __version__
from hybridvoice.cms.settings import Settings
from hybridvoice.cms.template import render_settings


class Admin(Protocol):
    settings: Settings
    state: Path

    def __call__(self, words: str, *args: str, code: int = 0) -> Any: ...

    def json(self, words: str, *args: str) -> Any: ...


def update_windows(admin: Admin, site: str) -> None:
    made = admin.json("update-window new", "Night", "--start", "01:30", "--duration", "2h30m",
                      "--time-zone", "Europe/Amsterdam")  # fmt: skip
    assert made["recurrence"] == "daily" and made["duration_minutes"] == 150
    taken = admin("update-window new", "Night", code=1)
    assert "update-window set Night" in taken.stderr
    bad = admin("update-window new", "Bad", "--start", "25:00", code=1)
    assert "--start:" in bad.stderr and "HH:MM" in bad.stderr
    weekly = admin("update-window new", "W", "--weekly", code=1)
    assert "--days: a --weekly window needs at least one day" in weekly.stderr
    changed = admin.json("update-window set", "Night", "--weekly", "--days", "sat sun")
    assert changed == {**made, "recurrence": "weekly", "days_of_week": ["saturday", "sunday"]}
    assert admin.json("update-window get", "Night") == changed
    assert [w["name"] for w in admin.json("update-window list")] == ["Night"]
    assert "Night" in admin("update-window get").stdout
    assert "no update window Nope" in admin("update-window set", "Nope", "--start", "01:00",
                                            code=1).stderr  # fmt: skip
    assert "no update window Nope" in admin("update-window get", "Nope", code=1).stderr
    missing = admin("site set-updates", site, "--windows", "Nope", code=1)
    assert "update-window new" in missing.stderr
    row = admin.json("site set-updates", site, "--windows", "Night", "--no-auto-update")
    assert row["update_time_windows"] == ["Night"] and row["enable_auto_update"] is False
    state = admin.json("site get-updates", site, "--at", "2026-12-05T00:45:00Z")  # a Saturday
    assert state["inside"] and state["ends"] == "2026-12-05T03:00:00+00:00"
    text = admin("site get-updates", site, "--at", "2026-12-07T12:00:00+00:00").stdout
    assert "auto update OFF" in text and "next window Night opens 2026-12-12T00:30" in text
    in_use = admin("update-window remove", "Night", code=1)
    assert f"assigned to site(s) {site}" in in_use.stderr and "set-updates" in in_use.stderr
    admin.json("site set-updates", site, "--windows", "", "--auto-update")
    admin("update-window remove", "Night")
    assert admin.json("update-window list") == []
    assert "no update window Night" in admin("update-window remove", "Night", code=1).stderr


def rolling_update(admin: Admin, site: str) -> None:
    """The lab's appliance in a site file; no version installed beside it, so every rollout
    is refused before anything changes (the real ones: tests/interop/test_rolling_update.py)."""
    tmp = admin.state.parent / "update"
    tmp.mkdir()
    (tmp / "lab.toml").write_text(render_settings(admin.settings))
    site_file = tmp / "site.toml"
    site_file.write_text(f'Site = "{site}"\nVersionsDirectory = "versions"\n[[Appliances]]\n'
                         'Config = "lab.toml"\nStateDirectory = "lab-state"\n')  # fmt: skip
    args = ("--site-file", str(site_file), "--version", "9.9")
    plan = admin("update plan", *args, code=1)
    assert f"update {__version__} -> 9.9" in plan.stdout, plan.stdout
    assert "blocked: version 9.9 is not installed" in plan.stdout
    refused = admin("update start", *args, "--now", code=1)
    assert "rollout refused: appliance1 is not ready for an update: its version " in refused.stdout
    assert "is not installed, so it could not be rolled back; nothing was" in refused.stdout
    admin("site set-updates", site, "--no-auto-update")
    off = admin("update start", *args, code=1)
    assert f"auto update is off for site {site}" in off.stderr
    admin("site set-updates", site, "--auto-update")
    status = admin("update status", "--site-file", str(site_file))
    assert "last rollout to 9.9: refused" in status.stdout and __version__ in status.stdout
    bad = admin("update status", "--site-file", str(tmp / "nope.toml"), code=1)
    assert "cannot read it" in bad.stderr
