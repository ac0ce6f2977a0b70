"""The rolling-update core on a fake clock and a simulated site: the happy path with exact times,
every failure path (enter, drain deadline, stop, start, health check, process exit, rollback),
the pre-check, update windows, and hypothesis runs over random mixes of behaviours."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.mgmt.update_plan import (
    Act,
    ApplianceView,
    Done,
    Enter,
    Exit,
    Finish,
    ReadStatus,
    Result,
    Rollout,
    RolloutTimers,
    Sleep,
    Start,
    Stop,
    plan_rows,
)
from hybridvoice.online.update_windows import TenantUpdateWindow

T0 = dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.UTC).timestamp()
TIMERS = RolloutTimers(drain=300, stop=30, start=120, poll=2)


@dataclass
class Box:
    """One simulated appliance."""

    version: str = "1.0"
    running: bool = True
    maintenance: bool = False
    calls: list[float] = field(default_factory=list)  # when each call in progress ends
    started_at: float = 0.0
    exited: int | None = None
    fail: set[str] = field(default_factory=set)  # actions that fail: enter, exit, stop, start


@dataclass
class Site:
    """Appliances, the versions' behaviour, the clock and what happened."""

    boxes: dict[str, Box]
    #: per version: seconds until healthy after a start; None: never healthy; -1: exits at once
    boot: dict[str, float | None] = field(default_factory=lambda: {"1.0": 5.0, "2.0": 5.0})
    now: float = T0
    log: list[tuple[float, Act]] = field(default_factory=list)
    #: most appliances out of service (not running, or in maintenance) at any one time
    most_out: int = 0

    def view(self, name: str) -> ApplianceView:
        box = self.boxes[name]
        if box.exited is not None:
            return ApplianceView(False, exited=box.exited, detail="process exited")
        if not box.running:
            return ApplianceView(False, detail="connection refused")
        boot = self.boot.get(box.version)
        fresh = box.started_at == 0.0  # running since before the test: healthy
        ready = fresh or (boot is not None and self.now >= box.started_at + boot)
        state = ("maintenance" if box.maintenance else "online") if ready else "offline"
        calls = sum(1 for end in box.calls if end > self.now)
        return ApplianceView(True, box.version, state, calls, ready,
                             state if ready else None, box.version if ready else None)  # fmt: skip

    def apply(self, act: Act) -> Result:
        self.log.append((self.now, act))
        if isinstance(act, Sleep):
            assert act.until >= self.now - 1e-9, act
            self.now = max(self.now, act.until)
            return None
        if isinstance(act, ReadStatus):
            return self.view(act.appliance)
        assert not isinstance(act, Finish)
        box = self.boxes[act.appliance]
        kind = type(act).__name__.lower()
        if kind in box.fail or f"{kind}:{getattr(act, 'version', '')}" in box.fail:
            return Done(False, f"simulated {kind} failure")
        if isinstance(act, Enter | Exit):
            box.maintenance = isinstance(act, Enter)
        elif isinstance(act, Stop) and (box.running or box.exited is not None):
            assert box.version == act.version, act
            box.running, box.exited, box.maintenance = False, None, False
        elif isinstance(act, Start):
            assert not box.running, f"{act}: still running"
            box.version, box.running, box.started_at = act.version, True, self.now
            if self.boot.get(act.version) == -1:
                box.exited = 3
        out = sum(1 for b in self.boxes.values() if not b.running or b.maintenance)
        self.most_out = max(self.most_out, out)
        return Done(True)


def drive(rollout: Rollout, site: Site, limit: int = 10_000) -> Finish:
    result: Result = None
    for _ in range(limit):
        act = rollout.step(site.now, result)
        if isinstance(act, Finish):
            return act
        result = site.apply(act)
    raise AssertionError("the rollout did not end")


def site_of(n: int = 3, **boxes: Box) -> Site:
    return Site({f"a{i}": boxes.get(f"a{i}", Box()) for i in range(1, n + 1)})


def rollout(site: Site, version: str = "2.0", **kwargs: object) -> Rollout:
    options: dict[str, object] = {"installed": {"1.0", "2.0", "3.0"}, "timers": TIMERS, **kwargs}
    return Rollout(list(site.boxes), version, **options)  # type: ignore[arg-type]


def acts(site: Site, *kinds: type) -> list[tuple[float, Act]]:
    return [(t - T0, a) for t, a in site.log if isinstance(a, kinds)]


# --- the happy path ------------------------------------------------------------------------------


def test_one_appliance_at_a_time_with_exact_times() -> None:
    site = site_of(3, a2=Box(calls=[T0 + 41.0]))
    r = rollout(site)
    end = drive(r, site)
    assert end.outcome == "completed" and end.summary == "3 appliance(s) updated to 2.0"
    assert all(b.version == "2.0" and b.running and not b.maintenance for b in site.boxes.values())
    assert site.most_out == 1
    changes = acts(site, Enter, Stop, Start, Exit)
    # a1: drained at once, healthy 5 s after its start (polls every 2 s: at +6)
    assert changes[:4] == [
        (0, Enter("a1")), (0, Stop("a1", "1.0")), (0, Start("a1", "2.0")), (6, Exit("a1")),
    ]  # fmt: skip
    # a2: a call until +41: its first read after that is at 6 + 36 = +42
    assert changes[4:8] == [
        (6, Enter("a2")), (42, Stop("a2", "1.0")), (42, Start("a2", "2.0")), (48, Exit("a2")),
    ]  # fmt: skip
    assert [a for _, a in changes[8:]] == [Enter("a3"), Stop("a3", "1.0"), Start("a3", "2.0"),
                                           Exit("a3")]  # fmt: skip
    status = r.status()
    assert status["outcome"] == "completed" and status["appliance"] is None
    assert [a["state"] for a in status["appliances"]] == ["updated"] * 3
    assert [a["from"] for a in status["appliances"]] == ["1.0"] * 3
    texts = [e["text"] for e in status["events"]]
    assert "a2: drained" in texts and texts[-1].startswith("completed")


def test_the_drain_deadline_stops_an_appliance_with_calls_left() -> None:
    site = site_of(1, a1=Box(calls=[T0 + 10_000.0]))
    r = rollout(site)
    end = drive(r, site)
    assert end.outcome == "completed"
    assert acts(site, Stop)[0] == (300, Stop("a1", "1.0"))  # exactly at the drain deadline
    events = [e["text"] for e in r.status()["events"]]
    assert "a1: stopping: drain deadline passed with 1 call(s) left" in events


def test_appliances_already_on_the_version_are_skipped() -> None:
    site = site_of(3, a2=Box(version="2.0"))
    r = rollout(site)
    assert drive(r, site).summary == "2 appliance(s) updated to 2.0"
    assert [a.appliance for _, a in acts(site, Enter)] == ["a1", "a3"]
    assert r.status()["appliances"][1]["state"] == "skipped"
    every = site_of(2, a1=Box(version="2.0"), a2=Box(version="2.0"))
    end = drive(rollout(every), every)
    assert end.outcome == "completed" and "already runs 2.0" in end.summary
    assert acts(every, Enter) == []


# --- failure paths -------------------------------------------------------------------------------


def test_a_version_that_fails_its_health_check_is_rolled_back_and_the_rollout_stops() -> None:
    site = site_of(3)
    site.boot["3.0"] = None  # never healthy
    r = rollout(site, "3.0")
    end = drive(r, site)
    assert end.outcome == "rolled-back"
    assert "a1: version 3.0 failed its health check: not healthy within 120 s" in end.summary
    assert "rolled back to 1.0" in end.summary
    assert [b.version for b in site.boxes.values()] == ["1.0", "1.0", "1.0"]
    assert not any(b.maintenance for b in site.boxes.values())
    assert acts(site, Enter, Stop, Start, Exit) == [
        (0, Enter("a1")), (0, Stop("a1", "1.0")), (0, Start("a1", "3.0")),
        (120, Stop("a1", "3.0")), (120, Start("a1", "1.0")), (126, Exit("a1")),
    ]  # fmt: skip
    assert [a["state"] for a in r.status()["appliances"]] == ["rolled-back", "pending", "pending"]


def test_a_process_that_exits_is_rolled_back_at_once() -> None:
    site = site_of(2)
    site.boot["3.0"] = -1
    end = drive(rollout(site, "3.0"), site)
    assert end.outcome == "rolled-back" and "exited with code 3" in end.summary
    assert acts(site, Stop)[1] == (0, Stop("a1", "3.0"))  # no waiting for the deadline


def test_a_start_that_fails_is_rolled_back() -> None:
    site = site_of(2, a2=Box(fail={"start:2.0"}))
    end = drive(rollout(site), site)
    assert end.outcome == "rolled-back" and "a2: version 2.0 did not start" in end.summary
    assert site.boxes["a1"].version == "2.0"  # updated before
    assert site.boxes["a2"].version == "1.0" and site.boxes["a2"].running
    assert acts(site, Start)[-1][1] == Start("a2", "1.0")


def test_a_rollback_that_fails_reports_the_appliance_down() -> None:
    site = site_of(2)
    site.boot = {"1.0": None, "2.0": None}  # after its restart the old version fails too
    end = drive(rollout(site), site)
    assert end.outcome == "failed"
    assert end.summary.startswith("a1 is DOWN: version 2.0 failed its health check")
    assert "version 1.0 failed too" in end.summary
    assert acts(site, Enter) == [(0, Enter("a1"))]  # a2 untouched


@pytest.mark.parametrize(
    ("fail", "outcome", "words"),
    [
        ("enter", "failed", "a1 did not enter maintenance (simulated enter failure); nothing"),
        ("stop", "failed", "a1: version 1.0 did not stop: simulated stop failure; it still runs"),
        ("exit", "failed", "a1 runs 2.0 but did not exit maintenance"),
    ],
)  # fmt: skip
def test_failed_steps_stop_the_rollout(fail: str, outcome: str, words: str) -> None:
    site = site_of(2, a1=Box(fail={fail}))
    end = drive(rollout(site), site)
    assert end.outcome == outcome and words in end.summary, end.summary
    assert acts(site, Enter) == [(0, Enter("a1"))]
    if fail == "stop":  # it leaves maintenance again, on the old version
        assert acts(site, Exit) == [(0, Exit("a1"))]
        assert site.boxes["a1"].version == "1.0" and site.boxes["a1"].running


def test_a_rollback_that_cannot_stop_the_new_version() -> None:
    site = site_of(1)
    site.boot["3.0"] = None
    r = rollout(site, "3.0")
    result: Result = None
    while True:
        act = r.step(site.now, result)
        if isinstance(act, Stop) and act.version == "3.0":
            result = Done(False, "no such process")
            continue
        if isinstance(act, Finish):
            break
        result = site.apply(act)
    assert act.outcome == "failed" and "a1 is DOWN" in act.summary
    assert "rollback to 1.0 failed: no such process" in act.summary


@pytest.mark.parametrize(
    ("box", "installed", "words"),
    [
        (Box(running=False), {"1.0", "2.0"}, "a2 is not ready for an update: its API does not"),
        (Box(maintenance=True), {"1.0", "2.0"}, "a2 is not ready for an update: it reports maint"),
        (Box(version="0.9"), {"1.0", "2.0"}, "its version 0.9 is not installed, so it could not"),
        (Box(), {"1.0"}, "version 2.0 is not installed"),
    ],
)  # fmt: skip
def test_the_check_refuses_and_changes_nothing(box: Box, installed: set[str], words: str) -> None:
    site = site_of(3, a2=box)
    end = drive(rollout(site, installed=installed), site)
    assert end.outcome == "refused" and words in end.summary, end.summary
    assert acts(site, Enter, Stop, Start, Exit) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one appliance"):
        Rollout([], "2.0", installed={"2.0"})
    with pytest.raises(ValueError, match="named twice"):
        Rollout(["a", "a"], "2.0", installed={"2.0"})
    with pytest.raises(ValueError, match="drain must be > 0"):
        RolloutTimers(drain=0)


# --- windows -------------------------------------------------------------------------------------

NIGHT = TenantUpdateWindow(name="night", start_time="03:00", duration_minutes=60)


def test_outside_the_window_the_rollout_waits_for_it() -> None:
    site = site_of(1)  # T0 is 02:00 UTC; the window opens at 03:00
    r = rollout(site, windows=[NIGHT])
    end = drive(r, site)
    assert end.outcome == "completed"
    assert acts(site, Sleep)[0] == (0, Sleep(T0 + 3600, "window night opens"))
    assert acts(site, Enter) == [(3600, Enter("a1"))]


def test_an_update_that_would_overrun_the_window_waits_for_the_next_one() -> None:
    # per appliance at most 300 + 30 + 120 + 4 = 454 s; the window has 60 min
    site = site_of(3, a1=Box(calls=[T0 + 3600 + 3000.0]))  # a1 drains until its deadline
    r = rollout(site, windows=[NIGHT])
    end = drive(r, site)
    assert end.outcome == "completed"
    enters = [t for t, _ in acts(site, Enter)]
    day = 24 * 3600
    # a1 at 03:00 (takes 300 + 6 s); a2 at 03:05:06 (6 s); a3 at 03:05:12 (fits: 454 s left < 2888)
    assert enters == [3600, 3906, 3912]
    late = site_of(2, a1=Box(calls=[T0 + 3600 + 3000.0]))
    short = TenantUpdateWindow(name="night", start_time="03:00", duration_minutes=12)  # 720 s
    drive(rollout(late, windows=[short]), late)
    enters = [t for t, _ in acts(late, Enter)]
    assert enters == [3600, 3600 + day]  # a2 would not fit after a1's 306 s: the next night
    sleeps = [a for _, a in acts(late, Sleep) if "window" in a.reason]
    assert sleeps[-2:] == [Sleep(T0 + 3600 + 720, "the window closes before an update would end"),
                           Sleep(T0 + 3600 + day, "window night opens")]  # fmt: skip


def test_windows_that_cannot_hold_an_update_are_refused() -> None:
    site = site_of(1)
    tiny = TenantUpdateWindow(name="tiny", start_time="03:00", duration_minutes=5)
    end = drive(rollout(site, windows=[tiny]), site)
    assert end.outcome == "refused" and "the longest update window lasts 300 s" in end.summary
    none = site_of(1)
    end = drive(rollout(none, windows=[]), none)
    assert end.outcome == "refused" and "no update windows" in end.summary


def test_plan_rows() -> None:
    views = {"a1": ApplianceView(True, "1.0", "online", 2, True, "online", "1.0"),
             "a2": ApplianceView(False, detail="connection refused")}  # fmt: skip
    rows = plan_rows(["a1", "a2"], views, "2.0")
    assert rows[0]["action"] == "update 1.0 -> 2.0" and rows[0]["ready"] is True
    assert rows[1]["action"].startswith("blocks the rollout: its API does not answer")


# --- properties ----------------------------------------------------------------------------------

_box = st.builds(
    Box,
    calls=st.lists(st.floats(0, 1000).map(lambda s: T0 + s), max_size=3),
    fail=st.sets(st.sampled_from(["enter", "exit", "stop", "start", "start:2.0"]), max_size=1),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_box, min_size=1, max_size=4),
    st.sampled_from([5.0, 119.0, 200.0, None, -1]),  # the new version's boot
    st.booleans(),
)
def test_any_mix_of_behaviours_ends_with_at_most_one_appliance_out(
    boxes: list[Box], boot: float | None, windowed: bool
) -> None:
    site = Site({f"a{i}": b for i, b in enumerate(boxes)})
    site.boot["2.0"] = boot
    r = rollout(site, windows=[NIGHT] if windowed else None)
    end = drive(r, site)
    assert site.most_out <= 1
    rows = r.status()["appliances"]
    if end.outcome == "completed":
        assert all(b.version == "2.0" and b.running for b in site.boxes.values())
        assert boot is not None and boot != -1 and boot < 120
    else:
        touched = [row for row in rows if row["state"] not in ("pending", "skipped", "updated")]
        assert len(touched) <= 1, rows  # the rollout stopped at the first failing appliance
        after = rows[rows.index(touched[0]) + 1 :] if touched else []
        assert all(row["state"] == "pending" for row in after)
        for name, row in zip(site.boxes, rows, strict=True):
            box = site.boxes[name]
            if row["state"] == "rolled-back":
                assert box.version == "1.0" and box.running and not box.maintenance
            if row["state"] == "pending":
                assert box.version == "1.0" and box.running and not box.maintenance
