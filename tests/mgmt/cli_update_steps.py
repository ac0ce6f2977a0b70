"""The update commands' steps of the admin CLI scenario (``test_cli_admin.py``): windows made,
changed, listed, assigned to a site, refused with the option and the reason, removed."""

from __future__ import annotations

from typing import Any, Protocol


class Admin(Protocol):
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
