"""Tenant update time windows (the original's New/Set-CsTenantUpdateTimeWindow) and when they are.

A window is a named, tenant-wide recurrence: ``daily``; ``weekly`` on some days of the week;
``monthly`` on a day of the month (``0`` or a day past the month's end: its last day) or on
some days of some weeks of the month (``first`` ... ``fourth``, ``last``: "the last Saturday").
It opens at ``start_time`` (HH:MM, wall-clock time in ``time_zone``, an IANA name) and stays
open ``duration_minutes`` of real, elapsed time (1 minute to 24 hours). Sites name the windows
they update in (:attr:`hybridvoice.online.models.Site.update_time_windows`).

:func:`window_state` is sans-IO: windows and an aware ``now`` in, whether ``now`` is inside a
window (and when that window ends: overlapping windows count as one) and when the next one
opens. Daylight saving time: a start in the spring-forward gap (02:30 on a day without 02:30)
opens at the instant the clocks jump, and then lasts its whole duration; a start that happens
twice in the autumn opens at the first one (``fold=0``), as PEP 495 reads local times.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .models import _check_name

__all__ = [
    "DAYS_OF_WEEK",
    "WEEKS_OF_MONTH",
    "Occurrence",
    "TenantUpdateWindow",
    "WindowState",
    "occurrences",
    "window_state",
]

#: weekday names in ``datetime.weekday()`` order (Monday = 0)
DAYS_OF_WEEK: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                       "sunday")  # fmt: skip
WEEKS_OF_MONTH: Final = ("first", "second", "third", "fourth", "last")
_HHMM: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")

Recurrence = Literal["daily", "weekly", "monthly"]


def _day(value: str) -> str:
    text = value.strip().lower()
    for day in DAYS_OF_WEEK:
        if text == day or (len(text) >= 3 and day.startswith(text)):
            return day
    raise ValueError(f"{value!r} is not a day of the week (monday ... sunday, or mon ... sun)")


class TenantUpdateWindow(BaseModel):
    """One update window of the tenant (New-CsTenantUpdateTimeWindow)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str
    recurrence: Recurrence = "daily"
    start_time: str = "02:00"
    duration_minutes: int = Field(default=180, ge=1, le=1440)
    days_of_week: tuple[str, ...] = ()
    weeks_of_month: tuple[str, ...] = ()
    #: monthly: the day of the month; 0 (or a day the month lacks): its last day
    day_of_month: int | None = Field(default=None, ge=0, le=31)
    time_zone: str = "UTC"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "update window name")

    @field_validator("recurrence", mode="before")
    @classmethod
    def _recurrence(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("start_time")
    @classmethod
    def _start(cls, value: str) -> str:
        if not _HHMM.fullmatch(value):
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00-23:59)")
        return value

    @field_validator("days_of_week")
    @classmethod
    def _days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        days = {_day(v) for v in value}
        return tuple(d for d in DAYS_OF_WEEK if d in days)

    @field_validator("weeks_of_month")
    @classmethod
    def _weeks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        weeks = {v.strip().lower() for v in value}
        unknown = sorted(weeks - set(WEEKS_OF_MONTH))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not one of {', '.join(WEEKS_OF_MONTH)}")
        return tuple(w for w in WEEKS_OF_MONTH if w in weeks)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{value!r} is not a time zone name (IANA, like Europe/Amsterdam or UTC)"
            ) from exc
        return value

    @model_validator(mode="after")
    def _shape(self) -> TenantUpdateWindow:
        r, days, weeks, dom = (self.recurrence, self.days_of_week, self.weeks_of_month,
                               self.day_of_month)  # fmt: skip
        if r == "daily" and (days or weeks or dom is not None):
            raise ValueError("a daily window takes no days_of_week, weeks_of_month or "
                             "day_of_month: make it weekly or monthly")  # fmt: skip
        if r == "weekly":
            if not days:
                raise ValueError("days_of_week: a weekly window needs at least one day")
            if weeks or dom is not None:
                raise ValueError("a weekly window takes no weeks_of_month or day_of_month: "
                                 "make it monthly")  # fmt: skip
        if r == "monthly":
            if dom is not None and (weeks or days):
                raise ValueError("a monthly window is on a day_of_month or on days_of_week of "
                                 "weeks_of_month, not both")  # fmt: skip
            if dom is None and not (weeks and days):
                raise ValueError("a monthly window needs day_of_month, or weeks_of_month and "
                                 "days_of_week (e.g. the last saturday)")  # fmt: skip
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.duration_minutes)

    def occurs_on(self, day: dt.date) -> bool:
        """Does the window open on local date ``day``?"""
        if self.recurrence == "daily":
            return True
        weekday = DAYS_OF_WEEK[day.weekday()]
        if self.recurrence == "weekly":
            return weekday in self.days_of_week
        last = calendar.monthrange(day.year, day.month)[1]
        if self.day_of_month is not None:
            wanted = last if self.day_of_month == 0 else min(self.day_of_month, last)
            return day.day == wanted
        if weekday not in self.days_of_week:
            return False
        nth = WEEKS_OF_MONTH[(day.day - 1) // 7] if day.day <= 28 else None
        return nth in self.weeks_of_month or ("last" in self.weeks_of_month and day.day + 7 > last)

    def describe(self) -> str:
        """``daily 02:00 for 3h (UTC)``, ``weekly sat, sun 01:30 for 4h (Europe/Amsterdam)``."""
        hours, minutes = divmod(self.duration_minutes, 60)
        length = f"{hours}h{minutes:02d}" if hours and minutes else f"{hours}h" if hours else (
            f"{minutes}min")  # fmt: skip
        when: str = self.recurrence
        if self.recurrence == "weekly":
            when += " " + ", ".join(d[:3] for d in self.days_of_week)
        elif self.day_of_month is not None:
            when += " on day " + ("last" if self.day_of_month == 0 else str(self.day_of_month))
        elif self.recurrence == "monthly":
            when += (" on the " + "/".join(self.weeks_of_month) + " "
                     + ", ".join(d[:3] for d in self.days_of_week))  # fmt: skip
        return f"{when} {self.start_time} for {length} ({self.time_zone})"


# --- when ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One opening of a window, in UTC."""

    window: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class WindowState:
    """Where ``at`` stands: inside a window (which, until when) or not; the next opening."""

    at: dt.datetime
    #: the windows open at ``at`` (empty: outside every window)
    inside: tuple[str, ...]
    #: when the open windows (and those overlapping them) have all closed; None outside
    ends: dt.datetime | None
    #: the first opening after ``at`` (None: no windows)
    next_start: dt.datetime | None
    next_window: str | None

    def remaining(self) -> dt.timedelta:
        """How long the open windows last from ``at`` on (zero outside)."""
        return dt.timedelta(0) if self.ends is None else self.ends - self.at


#: days searched back (a window opened yesterday may still be open) and ahead (every valid
#: window opens at least once a month)
_BACK_DAYS: Final = 2
_AHEAD_DAYS: Final = 40


def occurrences(window: TenantUpdateWindow, around: dt.datetime) -> Iterator[Occurrence]:
    """The openings of ``window`` from two local days before ``around`` to 40 after, in order."""
    zone = window.zone
    today = around.astimezone(zone).date()
    hour, minute = (int(part) for part in window.start_time.split(":"))
    start_of_day = dt.time(hour, minute)
    for offset in range(-_BACK_DAYS, _AHEAD_DAYS + 1):
        day = today + dt.timedelta(days=offset)
        if not window.occurs_on(day):
            continue
        start = _instant(dt.datetime.combine(day, start_of_day, tzinfo=zone))
        yield Occurrence(window.name, start, start + window.duration)


def _instant(local: dt.datetime) -> dt.datetime:
    """The UTC instant of wall-clock time ``local`` (``fold=0``); a time in a spring-forward
    gap is the instant the clocks jumped (the first valid local time after it)."""
    utc = local.astimezone(dt.UTC)
    if utc.astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None):
        return utc
    # in the gap: the transition is the latest instant whose local time is before ``local``
    back = utc - dt.timedelta(hours=3)
    low, high = back, utc
    while high - low > dt.timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(local.tzinfo).replace(tzinfo=None) < local.replace(tzinfo=None):
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def window_state(windows: Iterable[TenantUpdateWindow], at: dt.datetime) -> WindowState:
    """Is ``at`` (an aware datetime) inside one of ``windows``, until when, and when does the
    next one open? Sans-IO: the clock is the caller's."""
    if at.tzinfo is None:
        raise ValueError("window_state needs an aware datetime (with a time zone)")
    at = at.astimezone(dt.UTC)
    found = sorted(
        (o for w in windows for o in occurrences(w, at)), key=lambda o: (o.start, o.window)
    )
    inside = [o for o in found if o.start <= at < o.end]
    ends = None
    if inside:
        ends = max(o.end for o in inside)
        for o in found:  # a window opening before the others close extends them
            if at < o.start <= ends:
                ends = max(ends, o.end)
    after = next((o for o in found if o.start > at), None)
    return WindowState(
        at=at,
        inside=tuple(dict.fromkeys(o.window for o in inside)),
        ends=ends,
        next_start=None if after is None else after.start,
        next_window=None if after is None else after.window,
    )
