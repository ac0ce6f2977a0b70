"""The MOS estimate of a call record (mediation/records_quality.py): each direction of the
media from the relay's own counters and the far end's RTCP, the worse one counts, the flag
below the threshold, none for a call whose media bypassed the relay; old records load."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hybridvoice.mediation.records import CallRecordStore
from hybridvoice.mediation.records_model import (
    COLUMNS,
    MIGRATIONS,
    CallRecord,
    CallState,
    Direction,
    DisconnectSide,
    MediaCounters,
    to_row,
)
from hybridvoice.mediation.records_quality import call_mos, direction_input

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CLEAN = MediaCounters(packets_received=3000, packets_sent=3000, jitter_ms=1.0)


def test_clean_media_rates_near_the_g711_best() -> None:
    quality = call_mos(CLEAN, CLEAN, 3.6)
    assert quality is not None and 4.35 <= quality.mos <= 4.41 and not quality.poor


def test_the_worse_direction_counts_and_halves_combine() -> None:
    # the gateway's far end lost 5 % of what the relay sent it: the a -> b direction
    lossy = MediaCounters(packets_received=3000, packets_sent=3000, jitter_ms=1.0,
                          reported_packets_lost=150, reported_jitter_ms=20.0)  # fmt: skip
    forward = direction_input(CLEAN, lossy)
    assert forward is not None and forward.loss_percent == pytest.approx(5.0)
    assert forward.jitter_ms == pytest.approx(21.0)
    # and the relay itself lost 2 % of what it got from a: 1 - 0.98 * 0.95
    dropped = MediaCounters(packets_received=2940, packets_lost=60, packets_sent=3000,
                            jitter_ms=1.0)  # fmt: skip
    both = direction_input(dropped, lossy)
    assert both is not None and both.loss_percent == pytest.approx(6.9)
    quality = call_mos(CLEAN, lossy, 3.6)
    assert quality is not None and quality.loss_percent == pytest.approx(5.0)
    assert quality.mos < 4.0


def test_round_trips_of_both_legs_add_up() -> None:
    a = MediaCounters(packets_received=100, packets_sent=100, reported_round_trip_ms=80.0)
    b = MediaCounters(packets_received=100, packets_sent=100, reported_round_trip_ms=300.0)
    d = direction_input(a, b)
    assert d is not None and d.round_trip_ms == pytest.approx(380.0)
    half = direction_input(a, MediaCounters(packets_received=100, packets_sent=100))
    assert half is not None and half.round_trip_ms is None


def test_poor_below_the_threshold() -> None:
    bad = MediaCounters(packets_received=3000, packets_sent=3000, reported_packets_lost=600,
                        reported_jitter_ms=80.0, reported_round_trip_ms=600.0)  # fmt: skip
    quality = call_mos(bad, bad, 3.6)
    assert quality is not None and quality.poor and quality.mos < 3.6
    good = call_mos(CLEAN, CLEAN, 4.5)
    assert good is not None and good.poor  # a strict threshold flags even a clean call


def test_no_mos_without_relayed_media() -> None:
    assert call_mos(None, None, 3.6) is None
    assert call_mos(MediaCounters(), MediaCounters(), 3.6) is None  # bypass: no RTP here


def test_the_store_writes_mos_and_the_flag(tmp_path: Path) -> None:
    with CallRecordStore(tmp_path / "calls.db", mos_threshold=4.5) as store:
        store.start("c1", direction=Direction.INBOUND, caller="+1", callee="+2")
        store.ended("c1", side=DisconnectSide.CALLER, a_media=CLEAN, b_media=CLEAN).result(5)
        record = store.by_call_id("c1")
        assert record is not None and record.mos is not None and record.mos_poor is True
        store.start("c2", direction=Direction.INBOUND, caller="+1", callee="+2")
        store.ended("c2", side=DisconnectSide.CALLER).result(5)  # no media counters
        other = store.by_call_id("c2")
        assert other is not None and other.mos is None and other.mos_poor is None
        # the metrics' tally: one call with a MOS, no gateway named, flagged poor
        counts = store.mos_tally.by_gateway[""]
        assert (counts.count, counts.poor, sum(counts.buckets)) == (1, 1, 1)


def test_a_version_2_database_gains_the_mos_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (2)")
    old_columns = COLUMNS[: COLUMNS.index("b_reported_jitter_ms") + 1]
    old = CallRecord("r-old", "old-call", Direction.OUTBOUND, "+3120", "+3130", T0,
                     CallState.ENDED)  # fmt: skip
    values = to_row(old)[: len(old_columns)]
    marks = ", ".join("?" * len(values))
    conn.execute(f"INSERT INTO calls ({', '.join(old_columns)}) VALUES ({marks})", values)
    # an a_media JSON written before reported_round_trip_ms existed
    conn.execute("UPDATE calls SET a_media = ? WHERE record_id = 'r-old'",
                 ('{"packets_received": 5, "packets_sent": 5}',))  # fmt: skip
    conn.close()
    with CallRecordStore(path) as store:
        assert store.schema_version_found == 2
        found = store.by_record_id("r-old")
        assert found is not None and found.mos is None and found.mos_poor is None
        assert found.a_media == MediaCounters(packets_received=5, packets_sent=5)
