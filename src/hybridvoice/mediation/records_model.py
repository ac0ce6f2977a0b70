"""The call record (CDR) model of the mediation role: its types, the SQLite schema and how a
record becomes a row and back. The store that writes them is :mod:`hybridvoice.mediation.records`.

What a record holds: UTC wall-clock times (start, ring, answer, end; ISO 8601 in the database)
and monotonic durations, direction, caller and callee as received and after translation, the
gateway and trunk used, every failover attempt, bypass or anchored media and why, RTP counters
per leg (RFC 3550 §6.4: the relay's own loss and jitter from sequence numbers, and what each
far end reported in its RTCP SR/RR report blocks, §6.4.1), which side hung up with the SIP
status and a Q.850-style cause text, and the Call-IDs of both legs (RFC 3261 §8.1.1.4). The
a-leg is the leg that arrived (the cloud side for outbound calls, the gateway for inbound), the
b-leg the one the mediation role created.

The schema is versioned: a ``schema_version`` table and the :data:`MIGRATIONS` list, applied in
order inside one transaction when the store opens.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hybridvoice.mediation.bypass import MediaMode
from hybridvoice.mediation.records_observed import ObservedPaths

__all__ = [
    "COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SELECT_SQL",
    "UPSERT_SQL",
    "CallCounters",
    "CallRecord",
    "CallState",
    "Direction",
    "DisconnectSide",
    "FailoverAttempt",
    "MediaCounters",
    "StoreOptions",
    "from_row",
    "iso_utc",
    "to_row",
]


class Direction(StrEnum):
    """Inbound = from a gateway to a cloud user; outbound = from a cloud user to the PSTN."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallState(StrEnum):
    """``active`` until the call ends; ``interrupted`` when the process died before that."""

    ACTIVE = "active"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


class DisconnectSide(StrEnum):
    """Who ended the call: the caller, the callee, or the mediation role itself."""

    CALLER = "caller"
    CALLEE = "callee"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class FailoverAttempt:
    """One gateway tried for the call and what came of it ("503", "timeout", "answered")."""

    gateway: str
    outcome: str


@dataclass(frozen=True, slots=True)
class MediaCounters:
    """RTP counters of one leg as the relay saw them (RFC 3550 §6.4 loss and jitter)."""

    packets_received: int = 0
    packets_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    packets_lost: int = 0
    jitter_ms: float = 0.0
    #: RTCP packets the leg's far end sent us (SR, RR, SDES... compound packets, §6.1)
    rtcp_packets: int = 0
    #: the far end's own view of the stream it receives from us, from the last RTCP report
    #: block (SR or RR, §6.4.1) it sent on this leg; None when it sent none
    reported_fraction_lost: float | None = None
    reported_packets_lost: int | None = None
    reported_jitter_ms: float | None = None
    #: SRTP on this leg (the relay decrypted/encrypted it), and the SRTP/SRTCP packets from
    #: its far end dropped for a failed authentication tag or a replay (RFC 3711 §3.3)
    srtp: bool = False
    srtp_auth_failures: int = 0
    srtp_replays: int = 0
    #: relay -> this leg's far end -> relay (ms), from its RTCP LSR/DLSR; None: unknown
    reported_round_trip_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call. Times are aware UTC datetimes; durations are seconds from a monotonic clock:
    ``ring_after``/``answer_after``/``duration`` from the start, ``talk_time`` from the answer."""

    record_id: str
    a_call_id: str
    direction: Direction
    caller: str
    callee: str
    start_utc: datetime
    state: CallState = CallState.ACTIVE
    b_call_id: str | None = None
    caller_translated: str | None = None
    callee_translated: str | None = None
    gateway: str | None = None
    trunk: str | None = None
    attempts: tuple[FailoverAttempt, ...] = ()
    media_mode: MediaMode | None = None
    media_reason: str | None = None
    a_media: MediaCounters | None = None
    b_media: MediaCounters | None = None
    disconnect_side: DisconnectSide | None = None
    sip_status: int | None = None
    cause: str | None = None
    ring_utc: datetime | None = None
    answer_utc: datetime | None = None
    end_utc: datetime | None = None
    ring_after: float | None = None
    answer_after: float | None = None
    duration: float | None = None
    talk_time: float | None = None
    #: what each leg's far end reported in RTCP (cumulative packets lost, interarrival
    #: jitter) about the media we sent it; also in ``a_media``/``b_media``, here as columns
    #: for queries (schema version 2)
    a_reported_lost: int | None = None
    a_reported_jitter_ms: float | None = None
    b_reported_lost: int | None = None
    b_reported_jitter_ms: float | None = None
    #: the call's MOS-CQE estimate (ITU-T G.107 from the relay's and RTCP's loss, jitter and
    #: round trip: .records_quality) and whether it is below ``[Traces] MosThreshold``;
    #: None without relayed media (schema version 3)
    mos: float | None = None
    mos_poor: bool | None = None
    #: the addresses the call's signalling and media used (.records_observed), set when it
    #: is answered; None for calls before schema version 4 and calls not seen through
    observed: ObservedPaths | None = None


@dataclass(frozen=True, slots=True)
class CallCounters:
    """Live counters for status pages (the original's current-call and bypass-call counters)."""

    active: int
    inbound: int
    outbound: int
    bypass: int
    anchored: int
    pending_writes: int
    write_errors: int


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Durability knobs; the :mod:`hybridvoice.mediation.records` docstring says why the
    defaults are what they are."""

    journal_mode: str = "WAL"
    synchronous: str = "NORMAL"
    max_batch: int = 256
    busy_timeout_ms: int = 5000
    commit_window_s: float = 0.01

    def __post_init__(self) -> None:
        if self.journal_mode.upper() not in {"WAL", "DELETE", "TRUNCATE", "PERSIST"}:
            raise ValueError(f"journal_mode {self.journal_mode!r} is not durable")
        if self.synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous {self.synchronous!r} is not durable")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not 0.0 <= self.commit_window_s <= 1.0:
            raise ValueError("commit_window_s must be between 0 and 1 s")


# --- schema ------------------------------------------------------------------------------------

COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CallRecord))
"""The ``calls`` table's columns, in :class:`CallRecord` field order."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the calls table
        """CREATE TABLE calls (
            record_id TEXT PRIMARY KEY, a_call_id TEXT NOT NULL, direction TEXT NOT NULL,
            caller TEXT NOT NULL, callee TEXT NOT NULL, start_utc TEXT NOT NULL,
            state TEXT NOT NULL, b_call_id TEXT, caller_translated TEXT, callee_translated TEXT,
            gateway TEXT, trunk TEXT, attempts TEXT NOT NULL, media_mode TEXT,
            media_reason TEXT, a_media TEXT, b_media TEXT, disconnect_side TEXT,
            sip_status INTEGER, cause TEXT, ring_utc TEXT, answer_utc TEXT, end_utc TEXT,
            ring_after REAL, answer_after REAL, duration REAL, talk_time REAL)""",
        "CREATE INDEX calls_start ON calls (start_utc)",
        "CREATE INDEX calls_a_call_id ON calls (a_call_id)",
        "CREATE INDEX calls_b_call_id ON calls (b_call_id)",
        "CREATE INDEX calls_state ON calls (state)",
    ),
    (  # 2: RTCP-reported loss and jitter per leg (older rows: NULL)
        "ALTER TABLE calls ADD COLUMN a_reported_lost INTEGER",
        "ALTER TABLE calls ADD COLUMN a_reported_jitter_ms REAL",
        "ALTER TABLE calls ADD COLUMN b_reported_lost INTEGER",
        "ALTER TABLE calls ADD COLUMN b_reported_jitter_ms REAL",
    ),
    (  # 3: the MOS estimate and its below-threshold flag (older rows: NULL)
        "ALTER TABLE calls ADD COLUMN mos REAL",
        "ALTER TABLE calls ADD COLUMN mos_poor INTEGER",
    ),
    (  # 4: the observed signalling and media path, JSON (older rows: NULL)
        "ALTER TABLE calls ADD COLUMN observed TEXT",
    ),
)
"""Migration ``n`` (1-based) takes the schema from version ``n - 1`` to ``n``. Append only."""

SCHEMA_VERSION = len(MIGRATIONS)

UPSERT_SQL = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (record_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "record_id")
)
"""Insert-or-replace of one row (parameters: :func:`to_row`), keyed by ``record_id``."""

SELECT_SQL = f"SELECT {', '.join(COLUMNS)} FROM calls"
"""Every column of ``calls``, in the order :func:`from_row` reads them; append a ``WHERE``."""


# --- row encoding and decoding -----------------------------------------------------------------


def iso_utc(value: datetime) -> str:
    """Fixed-width UTC ISO 8601, so text order is time order."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: call records need aware UTC times")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _attempts(text: str) -> tuple[FailoverAttempt, ...]:
    return tuple(FailoverAttempt(gateway, outcome) for gateway, outcome in json.loads(text))


def _counters(text: str) -> MediaCounters:
    return MediaCounters(**json.loads(text))


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "direction": Direction, "state": CallState, "media_mode": MediaMode,
    "disconnect_side": DisconnectSide, "attempts": _attempts, "a_media": _counters,
    "b_media": _counters, "start_utc": _time, "ring_utc": _time, "answer_utc": _time,
    "end_utc": _time, "mos_poor": bool, "observed": ObservedPaths.from_json,
}  # fmt: skip
"""Column text -> field value, for the columns that are not stored as they are."""


_COUNTER_FIELDS = tuple(f.name for f in dataclasses.fields(MediaCounters))


def _counters_json(value: MediaCounters) -> str:
    return json.dumps({name: getattr(value, name) for name in _COUNTER_FIELDS})


def _attempts_json(value: tuple[FailoverAttempt, ...]) -> str:
    return json.dumps([[a.gateway, a.outcome] for a in value])


def _enum_value(value: StrEnum) -> str:
    return value.value


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    Direction: _enum_value, CallState: _enum_value, MediaMode: _enum_value,
    DisconnectSide: _enum_value, datetime: iso_utc, MediaCounters: _counters_json,
    tuple: _attempts_json, ObservedPaths: ObservedPaths.to_json,
}  # fmt: skip
"""Field value type -> column value, for values not stored as they are."""


def _column(value: Any) -> Any:
    encode = _ENCODERS.get(type(value))
    if encode is None and isinstance(value, datetime):  # a datetime subclass
        encode = iso_utc
    return value if encode is None else encode(value)


def to_row(record: CallRecord) -> tuple[Any, ...]:
    """``record`` as the column values of :data:`COLUMNS` (raises ValueError on naive times)."""
    return tuple(_column(getattr(record, name)) for name in COLUMNS)


def row_of(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """:func:`to_row` of the record these fields (one per column) would make, without making
    it: the store's writer takes a live call's fields as they are."""
    return tuple(_column(fields[name]) for name in COLUMNS)


def from_row(row: Sequence[Any]) -> CallRecord:
    """The record a row of :data:`SELECT_SQL` holds."""
    values = {
        name: value if value is None or name not in _DECODERS else _DECODERS[name](value)
        for name, value in zip(COLUMNS, row, strict=True)
    }
    return CallRecord(**values)
