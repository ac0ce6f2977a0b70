"""Call records: lifecycle, durability (a real writer process killed with SIGKILL), recovery,
queries, schema versioning, and a hypothesis round trip of a record through SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridvoice.mediation.bypass import MediaMode
from hybridvoice.mediation.records import (
    SCHEMA_VERSION,
    CallRecord,
    CallRecordStore,
    CallState,
    Direction,
    DisconnectSide,
    DuplicateCallError,
    FailoverAttempt,
    MediaCounters,
    SchemaVersionError,
    StoreClosedError,
    StoreOptions,
    UnknownCallError,
)
from hybridvoice.mediation.records_model import COLUMNS, MIGRATIONS, to_row

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Clocks:
    """A monotonic clock and a wall clock that move together, by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return T0 + timedelta(seconds=self.now - 1000.0)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def store(tmp_path: Path, clocks: Clocks) -> Iterator[CallRecordStore]:
    ids = iter(f"rec-{n}" for n in range(10_000))
    with CallRecordStore(
        tmp_path / "calls.db",
        monotonic=clocks.monotonic,
        utc_now=clocks.utc,
        new_id=lambda: next(ids),
    ) as opened:
        yield opened


def _call(store: CallRecordStore, call_id: str, direction: Direction = Direction.OUTBOUND) -> None:
    store.start(call_id, direction=direction, caller="+14255550100", callee="+3120555010")


def test_lifecycle_written_at_start_answer_end(store: CallRecordStore, clocks: Clocks) -> None:
    _call(store, "a-1")
    store.flush()
    assert store.recent(1)[0].state is CallState.ACTIVE
    store.route(
        "a-1", gateway="gw2", trunk="trunk-ams", b_call_id="b-1", callee_translated="003120555010"
    )
    store.attempt("a-1", "gw1", "503 Service Unavailable")
    store.attempt("a-1", "gw2", "answered")
    store.media("a-1", MediaMode.BYPASS, "bypass: internal client 10.1.2.3 in 10.1.0.0/16")
    clocks.now += 1.5
    store.ringing("a-1")
    clocks.now += 1.0
    store.ringing("a-1")  # a second 180 changes nothing
    clocks.now += 2.0
    store.answered("a-1").result(5)
    answered = store.by_record_id("rec-0")
    assert answered is not None and answered.answer_utc == T0 + timedelta(seconds=4.5)
    assert answered.state is CallState.ACTIVE
    clocks.now += 60.0
    legs = MediaCounters(3000, 3000, 516_000, 516_000, 2, 1.25)
    store.ended(
        "a-1",
        side=DisconnectSide.CALLEE,
        sip_status=200,
        cause="16 Normal call clearing",
        a_media=legs,
        b_media=legs,
    ).result(5)
    record = store.by_call_id("b-1")
    assert record == CallRecord(
        record_id="rec-0",
        a_call_id="a-1",
        direction=Direction.OUTBOUND,
        caller="+14255550100",
        callee="+3120555010",
        start_utc=T0,
        state=CallState.ENDED,
        b_call_id="b-1",
        callee_translated="003120555010",
        gateway="gw2",
        trunk="trunk-ams",
        attempts=(
            FailoverAttempt("gw1", "503 Service Unavailable"),
            FailoverAttempt("gw2", "answered"),
        ),
        media_mode=MediaMode.BYPASS,
        media_reason="bypass: internal client 10.1.2.3 in 10.1.0.0/16",
        a_media=legs,
        b_media=legs,
        disconnect_side=DisconnectSide.CALLEE,
        sip_status=200,
        cause="16 Normal call clearing",
        ring_utc=T0 + timedelta(seconds=1.5),
        answer_utc=T0 + timedelta(seconds=4.5),
        end_utc=T0 + timedelta(seconds=64.5),
        ring_after=1.5,
        answer_after=4.5,
        duration=64.5,
        talk_time=60.0,
        mos=4.39,  # 2 of 3002 packets lost, 1.25 ms jitter: G.711 near its best (4.41)
        mos_poor=False,
    )
    assert store.live("a-1") is None


def test_unanswered_call_has_no_talk_time(store: CallRecordStore, clocks: Clocks) -> None:
    _call(store, "a-2")
    store.attempt("a-2", "gw1", "timeout")
    clocks.now += 10.0
    store.ended("a-2", side=DisconnectSide.LOCAL, sip_status=503, cause="34 No circuit").result(5)
    record = store.by_call_id("a-2")
    assert record is not None
    assert (record.duration, record.talk_time, record.answer_utc) == (10.0, None, None)


def test_event_errors(store: CallRecordStore) -> None:
    _call(store, "a-3")
    with pytest.raises(DuplicateCallError):
        _call(store, "a-3")
    with pytest.raises(UnknownCallError):
        store.answered("nope")
    with pytest.raises(KeyError):  # UnknownCallError is a KeyError too
        store.ringing("nope")


def test_wal_mode_and_synchronous_by_default(store: CallRecordStore) -> None:
    _call(store, "a-4")
    store.flush()
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert store.options == StoreOptions()
    assert Path(f"{store.path}-wal").exists()


def test_options_are_configurable_and_checked(tmp_path: Path) -> None:
    options = StoreOptions(journal_mode="DELETE", synchronous="FULL", max_batch=1)
    with CallRecordStore(tmp_path / "delete.db", options) as store:
        _call(store, "a-5")
        store.ended("a-5", side=DisconnectSide.CALLER).result(5)
        assert store.by_call_id("a-5") is not None
    conn = sqlite3.connect(tmp_path / "delete.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    for bad in (
        {"journal_mode": "MEMORY"}, {"synchronous": "OFF"}, {"max_batch": 0},
        {"commit_window_s": -0.1}, {"commit_window_s": 5.0},
    ):  # fmt: skip
        with pytest.raises(ValueError):
            StoreOptions(**bad)


def test_events_within_the_commit_window_share_one_commit(tmp_path: Path) -> None:
    # a whole call (start, answer, end) queued inside one window: one transaction, one row
    options = StoreOptions(commit_window_s=0.2)
    with CallRecordStore(tmp_path / "calls.db", options) as store:
        _call(store, "quick")
        store.answered("quick")
        done = store.ended("quick", side=DisconnectSide.CALLER, sip_status=200)
        done.result(5)
        assert store._writer.commits == 1
        record = store.by_call_id("quick")
        assert record is not None and record.state is CallState.ENDED
    with CallRecordStore(tmp_path / "now.db", StoreOptions(commit_window_s=0)) as store:
        _call(store, "a")
        store.flush(5)
        _call(store, "b")
        store.flush(5)
        assert store._writer.commits == 2  # no window: each flushed event is its own commit


def test_restart_marks_active_records_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    with CallRecordStore(path) as first:
        _call(first, "gone")
        _call(first, "done")
        first.ended("done", side=DisconnectSide.CALLER, sip_status=200).result(5)
        first.close(interrupt_live=False)  # as if the process had died
    with CallRecordStore(path) as second:
        assert second.recovered == 1
        gone = second.by_call_id("gone")
        assert gone is not None and gone.state is CallState.INTERRUPTED
        assert gone.cause is not None and gone.cause.startswith("interrupted")
        done = second.by_call_id("done")
        assert done is not None and done.state is CallState.ENDED
    with CallRecordStore(path) as third:
        assert third.recovered == 0


def test_clean_close_writes_live_calls_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    store = CallRecordStore(path)
    _call(store, "live")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        store.recent()
    with pytest.raises(StoreClosedError):
        _call(store, "late")
    with CallRecordStore(path) as reopened:
        assert reopened.recovered == 0
        record = reopened.by_call_id("live")
        assert record is not None and record.state is CallState.INTERRUPTED


def test_queries_and_counters(store: CallRecordStore, clocks: Clocks) -> None:
    for n in range(5):
        _call(store, f"c-{n}", Direction.INBOUND if n % 2 else Direction.OUTBOUND)
        store.media(f"c-{n}", MediaMode.BYPASS if n < 2 else MediaMode.ANCHORED, "why")
        clocks.now += 10.0
    counters = store.counters()
    assert (counters.active, counters.inbound, counters.outbound) == (5, 2, 3)
    assert (counters.bypass, counters.anchored) == (2, 3)
    for n in range(3):
        store.ended(f"c-{n}", side=DisconnectSide.CALLER)
    store.flush()
    assert store.counters().active == 2
    assert store.counters().pending_writes == 0
    assert [r.a_call_id for r in store.recent(3)] == ["c-4", "c-3", "c-2"]
    assert [r.a_call_id for r in store.recent(100)][-1] == "c-0"
    window = store.between(T0 + timedelta(seconds=10), T0 + timedelta(seconds=30))
    assert [r.a_call_id for r in window] == ["c-1", "c-2"]
    # a live call is answered from memory, an ended one from the database
    live = store.by_call_id("c-4")
    assert live is not None and live.media_mode is MediaMode.ANCHORED
    assert store.by_call_id("missing") is None
    with pytest.raises(ValueError):
        store.between(datetime(2024, 1, 1), T0)  # naive


def test_schema_version_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    with CallRecordStore(path) as store:
        assert store.schema_version_found == 0
        assert store.schema_version() == SCHEMA_VERSION == 4
    with CallRecordStore(path) as store:
        assert store.schema_version_found == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(SchemaVersionError):
        CallRecordStore(path)


def test_a_bad_record_fails_its_future_and_the_writer_goes_on(store: CallRecordStore) -> None:
    naive = CallRecord("bad", "x", Direction.INBOUND, "a", "b", datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        store.write(naive).result(5)
    assert store.counters().write_errors == 1
    _call(store, "after")
    store.flush()
    assert store.by_call_id("after") is not None


def test_async_flush_and_close(tmp_path: Path) -> None:
    async def main() -> CallRecordStore:
        store = CallRecordStore(tmp_path / "calls.db")
        _call(store, "a")
        store.ended("a", side=DisconnectSide.CALLER)
        await store.aflush()
        assert store.by_call_id("a") is not None
        _call(store, "b")
        await store.aclose()
        return store

    asyncio.run(main())
    with CallRecordStore(tmp_path / "calls.db") as reopened:
        record = reopened.by_call_id("b")
        assert record is not None and record.state is CallState.INTERRUPTED


# --- a writer process killed with SIGKILL ------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from hybridvoice.mediation.records import CallRecordStore, Direction, DisconnectSide

    store = CallRecordStore(sys.argv[1])
    mode = sys.argv[2]
    n = 0
    while True:
        call_id = f"call-{n}"
        store.start(call_id, direction=Direction.OUTBOUND, caller="+1", callee="+2")
        store.answered(call_id).result(10)
        if mode == "hold" and n == 2:
            print("READY", flush=True)
            time.sleep(600)
        store.ended(call_id, side=DisconnectSide.CALLER, sip_status=200,
                    cause="16 Normal call clearing").result(10)
        print(call_id, flush=True)  # printed only once the end is committed
        n += 1
    """
)


def _start_writer(path: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert process.stdout is not None
    process.stdout.close()


def test_sigkilled_writer_loses_no_finished_call(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    writer = _start_writer(path, "hold")
    try:
        assert writer.stdout is not None
        lines = [writer.stdout.readline().strip() for _ in range(3)]
        assert lines == ["call-0", "call-1", "READY"]
    finally:
        _kill(writer)
    # nothing was checkpointed: what we read back comes from the WAL the killed process left
    assert Path(f"{path}-wal").stat().st_size > 0
    with CallRecordStore(path) as store:
        assert store.recovered == 1
        for call_id in ("call-0", "call-1"):
            record = store.by_call_id(call_id)
            assert record is not None and record.state is CallState.ENDED
            assert record.cause == "16 Normal call clearing" and record.sip_status == 200
        active = store.by_call_id("call-2")
        assert active is not None and active.state is CallState.INTERRUPTED
        assert active.answer_utc is not None and active.end_utc is None


def test_sigkilled_writer_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    writer = _start_writer(path, "stream")
    try:
        assert writer.stdout is not None
        finished = [writer.stdout.readline().strip() for _ in range(50)]
    finally:
        _kill(writer)
    with CallRecordStore(path) as store:
        records = store.recent(10_000)
        assert {r.state for r in records} <= {CallState.ENDED, CallState.INTERRUPTED}
        ended = {r.a_call_id for r in records if r.state is CallState.ENDED}
        assert set(finished) <= ended
        assert sum(r.state is CallState.INTERRUPTED for r in records) <= 1


# --- round trip --------------------------------------------------------------------------------

_text = st.text(max_size=40)
_maybe_text = st.none() | _text
_times = st.datetimes(timezones=st.just(UTC))
_seconds = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)
_counters = st.none() | st.builds(
    MediaCounters,
    *[st.integers(min_value=0, max_value=2**62)] * 5,
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.integers(min_value=0, max_value=2**62),
    st.none() | st.floats(min_value=0, max_value=1, allow_nan=False),
    st.none() | st.integers(min_value=-(2**23), max_value=2**23 - 1),
    st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
_lost = st.none() | st.integers(min_value=-(2**23), max_value=2**23 - 1)
_jitter = st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False)

records = st.builds(
    CallRecord,
    record_id=st.uuids().map(str),
    a_call_id=_text,
    direction=st.sampled_from(Direction),
    caller=_text,
    callee=_text,
    start_utc=_times,
    state=st.sampled_from(CallState),
    b_call_id=_maybe_text,
    caller_translated=_maybe_text,
    callee_translated=_maybe_text,
    gateway=_maybe_text,
    trunk=_maybe_text,
    attempts=st.lists(st.builds(FailoverAttempt, _text, _text), max_size=4).map(tuple),
    media_mode=st.none() | st.sampled_from(MediaMode),
    media_reason=_maybe_text,
    a_media=_counters,
    b_media=_counters,
    disconnect_side=st.none() | st.sampled_from(DisconnectSide),
    sip_status=st.none() | st.integers(min_value=100, max_value=699),
    cause=_maybe_text,
    ring_utc=st.none() | _times,
    answer_utc=st.none() | _times,
    end_utc=st.none() | _times,
    ring_after=_seconds,
    answer_after=_seconds,
    duration=_seconds,
    talk_time=_seconds,
    a_reported_lost=_lost,
    a_reported_jitter_ms=_jitter,
    b_reported_lost=_lost,
    b_reported_jitter_ms=_jitter,
)


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    with CallRecordStore(tmp_path / "roundtrip.db") as store:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(records)
        def check(record: CallRecord) -> None:
            store.write(record).result(10)
            assert store.by_record_id(record.record_id) == record

        check()


def test_a_version_1_database_gains_the_rtcp_columns(tmp_path: Path) -> None:
    """A database written before the RTCP loss/jitter columns (schema 1, with a finished
    call): opening it migrates in place; the old row reads back with None there, and a new
    call's RTCP-reported loss and jitter land in the new columns."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    old_columns = COLUMNS[: COLUMNS.index("talk_time") + 1]
    old = CallRecord(
        "r-old", "old-call", Direction.OUTBOUND, "+3120", "+3130", T0, CallState.ENDED,
        a_media=MediaCounters(10, 10, 1720, 1720, 0, 0.5),
    )  # fmt: skip
    values = to_row(old)[: len(old_columns)]
    conn.execute(
        f"INSERT INTO calls ({', '.join(old_columns)}) VALUES ({', '.join('?' * len(values))})",
        values,
    )
    conn.close()
    with CallRecordStore(path) as store:
        assert store.schema_version_found == 1 and store.schema_version() == SCHEMA_VERSION
        found = store.by_record_id("r-old")
        assert found == old and found.a_reported_lost is None
        assert found.a_media == MediaCounters(10, 10, 1720, 1720, 0, 0.5)
        _call(store, "new")
        store.ended(
            "new", side=DisconnectSide.CALLER,
            a_media=MediaCounters(reported_packets_lost=3, reported_jitter_ms=10.0),
            b_media=MediaCounters(reported_packets_lost=-1, reported_jitter_ms=0.25),
        )  # fmt: skip
        store.flush()
        new = store.by_call_id("new")
        assert new is not None
        assert (new.a_reported_lost, new.a_reported_jitter_ms) == (3, 10.0)
        assert (new.b_reported_lost, new.b_reported_jitter_ms) == (-1, 0.25)
        assert new.a_media is not None and new.a_media.reported_packets_lost == 3
