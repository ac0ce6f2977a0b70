"""Tenant update windows: validation (field and reason), when they open, DST edges, properties."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hybridvoice.online.update_windows import (
    DAYS_OF_WEEK,
    WEEKS_OF_MONTH,
    TenantUpdateWindow,
    occurrences,
    window_state,
)

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "-w"}, "update window name"),
        ({"name": "w", "start_time": "24:00"}, "start_time.*HH:MM"),
        ({"name": "w", "duration_minutes": 0}, "duration_minutes"),
        ({"name": "w", "duration_minutes": 1441}, "duration_minutes"),
        ({"name": "w", "time_zone": "Mars/Olympus"}, "time_zone.*IANA"),
        ({"name": "w", "time_zone": "../../etc/passwd"}, "time_zone.*IANA"),
        ({"name": "w", "recurrence": "hourly"}, "recurrence"),
        ({"name": "w", "days_of_week": ["monday"]}, "daily window takes no days_of_week"),
        ({"name": "w", "recurrence": "weekly"}, "days_of_week: a weekly window needs"),
        ({"name": "w", "recurrence": "weekly", "days_of_week": ["funday"]}, "days_of_week.*funday"),
        ({"name": "w", "recurrence": "weekly", "days_of_week": ["sat"], "day_of_month": 3},
         "weekly window takes no"),
        ({"name": "w", "recurrence": "monthly"}, "monthly window needs day_of_month"),
        ({"name": "w", "recurrence": "monthly", "weeks_of_month": ["last"]},
         "monthly window needs"),
        ({"name": "w", "recurrence": "monthly", "weeks_of_month": ["fifth"],
          "days_of_week": ["sat"]}, "weeks_of_month.*fifth"),
        ({"name": "w", "recurrence": "monthly", "day_of_month": 32}, "day_of_month"),
        ({"name": "w", "recurrence": "monthly", "day_of_month": 3, "days_of_week": ["sat"],
          "weeks_of_month": ["first"]}, "not both"),
        ({"name": "w", "colour": "blue"}, "colour"),
    ],
)  # fmt: skip
def test_bad_windows_name_the_field_and_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match="(?s)" + message):
        TenantUpdateWindow.model_validate(fields)


def test_canonical_forms_and_description() -> None:
    w = TenantUpdateWindow(name="Weekend", recurrence="Weekly", days_of_week=("Sun", "SAT", "sat"),
                           start_time="01:30", duration_minutes=90,
                           time_zone="Europe/Amsterdam")  # fmt: skip
    assert w.days_of_week == ("saturday", "sunday")
    assert w.describe() == "weekly sat, sun 01:30 for 1h30 (Europe/Amsterdam)"
    m = TenantUpdateWindow(name="m", recurrence="monthly", weeks_of_month=("last", "first"),
                           days_of_week=("fri",))  # fmt: skip
    assert m.weeks_of_month == ("first", "last")
    assert m.describe() == "monthly on the first/last fri 02:00 for 3h (UTC)"
    assert TenantUpdateWindow(name="d").describe() == "daily 02:00 for 3h (UTC)"


# --- when ----------------------------------------------------------------------------------------


def test_daily_inside_ends_and_next() -> None:
    w = TenantUpdateWindow(name="night", start_time="02:00", duration_minutes=180)
    s = window_state([w], at("2026-12-07T03:00:00+00:00"))
    assert s.inside == ("night",)
    assert s.ends == at("2026-12-07T05:00:00+00:00")
    assert s.remaining() == dt.timedelta(hours=2)
    assert s.next_start == at("2026-12-08T02:00:00+00:00")
    out = window_state([w], at("2026-12-07T05:00:00+00:00"))  # the end is outside
    assert out.inside == () and out.ends is None and out.remaining() == dt.timedelta(0)
    assert out.next_start == at("2026-12-08T02:00:00+00:00")
    assert window_state([w], at("2026-12-07T02:00:00+00:00")).inside == ("night",)


def test_no_windows() -> None:
    s = window_state([], at("2026-12-07T03:00:00+00:00"))
    assert s.inside == () and s.next_start is None and s.next_window is None
    with pytest.raises(ValueError, match="aware"):
        window_state([], dt.datetime(2026, 12, 7))


def test_a_window_past_midnight_is_open_the_next_morning() -> None:
    w = TenantUpdateWindow(name="late", start_time="23:00", duration_minutes=240,
                           recurrence="weekly", days_of_week=("sunday",))  # fmt: skip
    # Sunday 2026-12-06 23:00 -> Monday 03:00
    s = window_state([w], at("2026-12-07T01:00:00+00:00"))
    assert s.inside == ("late",) and s.ends == at("2026-12-07T03:00:00+00:00")
    assert s.next_start == at("2026-12-13T23:00:00+00:00")


def test_monthly_days() -> None:
    last = TenantUpdateWindow(name="m", recurrence="monthly", day_of_month=0)
    d31 = TenantUpdateWindow(name="m", recurrence="monthly", day_of_month=31)
    for day in (dt.date(2026, 2, 28), dt.date(2028, 2, 29), dt.date(2026, 4, 30)):
        assert last.occurs_on(day) and d31.occurs_on(day)
    assert not last.occurs_on(dt.date(2028, 2, 28))
    sat = TenantUpdateWindow(name="m", recurrence="monthly", weeks_of_month=("last",),
                             days_of_week=("saturday",))  # fmt: skip
    # December 2026: Saturdays 5, 12, 19, 26
    assert [d for d in range(1, 32) if sat.occurs_on(dt.date(2026, 12, d))] == [26]
    second = sat.model_copy(update={"weeks_of_month": ("second", "fourth")})
    assert [d for d in range(1, 32) if second.occurs_on(dt.date(2026, 12, d))] == [12, 26]
    s = window_state([sat], at("2026-12-07T00:00:00+00:00"))
    assert s.next_start == at("2026-12-26T02:00:00+00:00")


def test_overlapping_windows_count_as_one() -> None:
    a = TenantUpdateWindow(name="a", start_time="01:00", duration_minutes=120)
    b = TenantUpdateWindow(name="b", start_time="02:30", duration_minutes=120)
    s = window_state([a, b], at("2026-12-07T01:30:00+00:00"))
    assert s.inside == ("a",) and s.ends == at("2026-12-07T04:30:00+00:00")
    assert s.next_start == at("2026-12-07T02:30:00+00:00") and s.next_window == "b"


def test_time_zones() -> None:
    w = TenantUpdateWindow(name="ams", start_time="02:00", duration_minutes=60,
                           time_zone="Europe/Amsterdam")  # fmt: skip
    s = window_state([w], at("2026-12-07T01:30:00+00:00"))  # 02:30 CET
    assert s.inside == ("ams",) and s.ends == at("2026-12-07T02:00:00+00:00")
    summer = window_state([w], at("2026-07-01T00:30:00+00:00"))  # 02:30 CEST
    assert summer.inside == ("ams",) and summer.ends == at("2026-07-01T01:00:00+00:00")


def test_spring_forward_gap_opens_when_the_clocks_jump() -> None:
    # New York, 2026-03-08: 02:00 EST becomes 03:00 EDT; 02:30 does not exist that day
    w = TenantUpdateWindow(name="ny", start_time="02:30", duration_minutes=60,
                           time_zone="America/New_York")  # fmt: skip
    found = [o for o in occurrences(w, at("2026-03-08T12:00:00+00:00"))
             if o.start.date() == dt.date(2026, 3, 8)]  # fmt: skip
    assert [(o.start, o.end) for o in found] == [
        (at("2026-03-08T07:00:00+00:00"), at("2026-03-08T08:00:00+00:00"))
    ]
    assert found[0].start.astimezone(ZoneInfo("America/New_York")).hour == 3
    assert window_state([w], at("2026-03-08T06:59:59+00:00")).inside == ()
    assert window_state([w], at("2026-03-08T07:59:59+00:00")).inside == ("ny",)
    # the day before and after: 02:30 local as usual
    assert window_state([w], at("2026-03-07T07:30:00+00:00")).inside == ("ny",)
    assert window_state([w], at("2026-03-09T06:30:00+00:00")).inside == ("ny",)


def test_fall_back_opens_at_the_first_of_the_repeated_times() -> None:
    # Amsterdam, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    w = TenantUpdateWindow(name="ams", start_time="02:30", duration_minutes=60,
                           time_zone="Europe/Amsterdam")  # fmt: skip
    s = window_state([w], at("2026-10-25T00:30:00+00:00"))  # the first 02:30 (CEST)
    assert s.inside == ("ams",) and s.ends == at("2026-10-25T01:30:00+00:00")  # 60 real minutes
    assert window_state([w], at("2026-10-25T01:30:00+00:00")).inside == ()  # the second 02:30


# --- properties ----------------------------------------------------------------------------------

_ZONES = ("UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe",
          "Asia/Kolkata", "America/Santiago", "Pacific/Chatham")  # fmt: skip
_days = st.lists(st.sampled_from(DAYS_OF_WEEK), min_size=1, max_size=3, unique=True)


@st.composite
def windows(draw: st.DrawFn) -> TenantUpdateWindow:
    recurrence = draw(st.sampled_from(["daily", "weekly", "monthly"]))
    fields: dict[str, object] = {}
    if recurrence == "weekly":
        fields["days_of_week"] = tuple(draw(_days))
    elif recurrence == "monthly" and draw(st.booleans()):
        fields["day_of_month"] = draw(st.integers(0, 31))
    elif recurrence == "monthly":
        fields["days_of_week"] = tuple(draw(_days))
        weeks = st.lists(st.sampled_from(WEEKS_OF_MONTH), min_size=1, max_size=2, unique=True)
        fields["weeks_of_month"] = tuple(draw(weeks))
    return TenantUpdateWindow(
        name=draw(st.sampled_from(["a", "b", "c"])),
        recurrence=recurrence,
        start_time=f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 15, 30, 59])):02d}",
        duration_minutes=draw(st.integers(1, 1440)),
        time_zone=draw(st.sampled_from(_ZONES)),
        **fields,
    )


_instants = st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2035, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
_some_windows = st.lists(windows(), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(_some_windows, _instants)
def test_the_next_start_is_never_in_the_past_and_opens_a_window(
    ws: list[TenantUpdateWindow], now: dt.datetime
) -> None:
    s = window_state(ws, now)
    assert s.next_start is not None and s.next_start > now
    opened = window_state(ws, s.next_start)
    assert s.next_window in opened.inside
    # nothing opens in between: a time between now and the next start has the same next start
    middle = now + (s.next_start - now) / 2
    assert window_state(ws, middle).next_start == s.next_start
    if not s.inside:
        assert window_state(ws, middle).inside == ()
    else:
        assert s.ends is not None and s.ends > now


@settings(max_examples=300, deadline=None)
@given(windows(), _instants, st.floats(0, 1, exclude_max=True))
def test_a_time_inside_an_opening_is_reported_inside(
    w: TenantUpdateWindow, now: dt.datetime, fraction: float
) -> None:
    for o in occurrences(w, now):
        assert o.end - o.start == w.duration
        micros = int((o.end - o.start) / dt.timedelta(microseconds=1) * fraction)
        moment = o.start + dt.timedelta(microseconds=micros)
        s = window_state([w], moment)
        assert w.name in s.inside, (o, moment)
        assert s.ends is not None and s.ends >= o.end and s.ends > moment


@settings(max_examples=200, deadline=None)
@given(windows(), _instants)
def test_openings_are_at_the_start_time_or_just_after_a_gap(
    w: TenantUpdateWindow, now: dt.datetime
) -> None:
    hour, minute = (int(p) for p in w.start_time.split(":"))
    for o in occurrences(w, now):
        local = o.start.astimezone(w.zone)
        assert w.occurs_on(local.date()) or local.time() < dt.time(hour, minute)
        if (local.hour, local.minute) != (hour, minute):  # only in a spring-forward gap
            before = (o.start - dt.timedelta(seconds=1)).astimezone(w.zone)
            assert before.utcoffset() != local.utcoffset()
