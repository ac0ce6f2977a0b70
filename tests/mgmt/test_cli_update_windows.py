"""The update-window commands' own parsing (the commands run against a live lab in
test_cli_admin.py, steps in cli_update_steps.py)."""

from __future__ import annotations

import pytest

from hybridvoice.mgmt.cli_update_windows import in_cli_terms, parse_duration


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("3:00", 180), ("0:45", 45), ("24:00", 1440), ("90m", 90), ("90min", 90), ("2h", 120),
     ("2h30m", 150), ("90", 90), (" 1:05 ", 65)],
)  # fmt: skip
def test_durations(text: str, minutes: int) -> None:
    assert parse_duration(text) == minutes


@pytest.mark.parametrize("text", ["", "h", "3:60", "1.5h", "-5", "3 hours", "2m30h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration like 3:00"):
        parse_duration(text)


def test_fields_become_options() -> None:
    text = "days_of_week: a weekly window needs at least one day"
    assert in_cli_terms(text) == "--days: a --weekly window needs at least one day"
