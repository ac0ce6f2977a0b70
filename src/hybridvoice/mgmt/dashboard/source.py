"""What the dashboard shows, read from a running appliance (and, in ``hybridvoice up``, the
online service of the same process): plain rows, no HTML.

:class:`DashboardSource` reads live state only on the event loop's thread (the API's routes
that call it are ``async``) and committed call records through the store's own read
connection. Health is a :class:`Health` (a level and the words for it): the page shows both,
never colour alone. Loss is RFC 3550 §6.4.1's fraction, from the relay's own sequence-number
counters (packets lost over packets expected).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from hybridvoice.mediation.b2bua_legs import media_counters
from hybridvoice.mediation.records_model import CallRecord, CallState, MediaCounters

if TYPE_CHECKING:
    from hybridvoice.mediation.records import CallRecordStore
    from hybridvoice.mgmt.appliance import Appliance

__all__ = [
    "DashboardSource",
    "FleetRow",
    "Health",
    "Level",
    "LiveCall",
    "call_result",
    "loss_percent",
]

Level = Literal["ok", "warn", "bad", "idle"]

#: the words beside each level's colour (what a colour-blind reader or a screen reader gets)
LEVEL_WORDS: Final = {"ok": "OK", "warn": "WARN", "bad": "DOWN", "idle": "OFF"}


@dataclass(frozen=True, slots=True)
class Health:
    """A status badge: its level (the colour) and the text shown beside it."""

    level: Level
    text: str

    @property
    def word(self) -> str:
        return LEVEL_WORDS[self.level]


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One appliance the online service knows (registration and last heartbeat)."""

    name: str
    site: str
    status: str
    version: str
    heard_ago: float | None
    health: Health
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call in progress, as the live table shows it."""

    record_id: str
    call_id: str
    caller: str
    callee: str
    direction: str
    site: str
    appliance: str
    gateway: str
    media: str
    phase: str
    duration: float
    packets_in: int
    packets_out: int
    lost: int
    loss: float | None


def loss_percent(counters: MediaCounters | None) -> float | None:
    """Packets lost over packets expected (received + lost), in percent; None with no media."""
    if counters is None:
        return None
    expected = counters.packets_received + counters.packets_lost
    return None if expected <= 0 else 100.0 * counters.packets_lost / expected


def call_result(record: CallRecord) -> tuple[str, Level]:
    """The result word of a call and its badge level (answered, failed 503, active ...)."""
    if record.state is CallState.ACTIVE:
        return ("active", "ok" if record.answer_utc else "idle")
    if record.state is CallState.INTERRUPTED:
        return ("interrupted", "warn")
    if record.answer_utc is not None:
        return ("answered", "ok")
    status = f" {record.sip_status}" if record.sip_status else ""
    return (f"failed{status}", "bad")


FleetReader = Callable[[], Iterable[Any]]
"""The online service's appliances (``TenantStore.appliances``), in ``hybridvoice up``."""
Summaries = Callable[[], Mapping[str, Mapping[str, Any]]]
"""The last heartbeat summary of each appliance, by name (the online service's)."""


class DashboardSource:
    """Rows for the dashboard's pages from one appliance; ``fleet`` adds every appliance the
    online service knows (sites, status, last heartbeat)."""

    def __init__(
        self,
        appliance: Appliance | None,
        *,
        fleet: FleetReader | None = None,
        summaries: Summaries | None = None,
        heartbeat_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appliance = appliance
        self.fleet_reader = fleet
        self.summaries = summaries
        self.heartbeat_timeout = heartbeat_timeout
        self.clock = clock

    # --- the appliance ---------------------------------------------------------------------------
    @property
    def records(self) -> CallRecordStore | None:
        mediation = None if self.appliance is None else self.appliance.mediation
        return None if mediation is None else mediation.records

    def status(self) -> dict[str, Any] | None:
        return None if self.appliance is None else self.appliance.status()

    def calls_now(self) -> dict[str, Any] | None:
        """Calls now, the limit and the gateways: what the live stream sends every second
        (memory only; :meth:`status` also reads the certificates from disk)."""
        appliance = self.appliance
        mediation = None if appliance is None else appliance.mediation
        if appliance is None or mediation is None:
            return None
        return {"calls_now": mediation.admission.active, "call_limit": mediation.admission.limit,
                "gateways": appliance.gateways()}  # fmt: skip

    def roles(self, status: Mapping[str, Any]) -> list[tuple[str, Health, str]]:
        """(role, health, detail) for every role of the appliance."""
        running = set(status.get("roles", ()))
        listeners: Sequence[Mapping[str, Any]] = status.get("listeners", ())
        rows: list[tuple[str, Health, str]] = []
        for role in ("edge", "mediation"):
            mine = [x for x in listeners if str(x.get("role", "")).startswith(role)]
            where = ", ".join(f"{x['transport'].lower()}:{x['host']}:{x['port']}" for x in mine)
            if role not in running:
                rows.append((role, Health("bad", "not running"), ""))
            elif role == "mediation" and status.get("state") == "maintenance":
                rows.append((role, Health("warn", "maintenance: no new calls"), where))
            else:
                rows.append((role, Health("ok", "running"), where))
        rows.append(("cms replica", *_replica_health(status.get("replica") or {})))
        rows.append(("ca", *_ca_health(status.get("certificates") or [])))
        health = status.get("health")
        if health is not None:
            failing = health.get("failing") or []
            if health.get("state") == "offline" or failing:
                text = "; ".join(f"{f['check']}: {f['detail']}" for f in failing) or "offline"
                rows.append(("self-check", Health("bad", str(health.get("state"))), text))
            else:
                rows.append(("self-check", Health("ok", str(health.get("state"))), ""))
        return rows

    def gateway_health(self, row: Mapping[str, Any]) -> Health:
        if not row.get("enabled", True):
            return Health("idle", "disabled")
        health = str(row.get("health", ""))
        if health == "up":
            return Health("ok", "up")
        if health == "down":
            return Health("bad", "down")
        return Health("warn", health or "unknown")

    # --- live calls ------------------------------------------------------------------------------
    def live_calls(self) -> list[LiveCall]:
        """Every call in progress on the appliance, oldest first."""
        appliance = self.appliance
        mediation = None if appliance is None else appliance.mediation
        store = self.records
        if appliance is None or mediation is None:
            return []
        now = datetime.now(UTC)
        rows: list[LiveCall] = []
        for bridge in list(mediation.b2bua.bridges):
            record = None if store is None else store.live(bridge.a.call_id)
            gateway = bridge.gateway.name if bridge.gateway is not None else ""
            a: MediaCounters | None = None
            b: MediaCounters | None = None
            if bridge.relay_call is not None:
                a, b = media_counters(bridge.relay_call, bridge.side)
            packets_in = sum(c.packets_received for c in (a, b) if c is not None)
            packets_out = sum(c.packets_sent for c in (a, b) if c is not None)
            lost = sum(c.packets_lost for c in (a, b) if c is not None)
            expected = packets_in + lost
            start = record.start_utc if record is not None else now
            media = record.media_mode.value if record and record.media_mode else "-"
            rows.append(LiveCall(
                record_id=record.record_id if record else "",
                call_id=bridge.a.call_id,
                caller=record.caller if record else bridge.caller,
                callee=record.callee if record else bridge.callee,
                direction=record.direction.value if record else "-",
                site=appliance.settings.common.site_name,
                appliance=appliance.name,
                gateway=(record.gateway if record and record.gateway else gateway) or "-",
                media=media,
                phase="talking" if bridge.answered else "setup",
                duration=max(0.0, (now - start).total_seconds()),
                packets_in=packets_in, packets_out=packets_out, lost=lost,
                loss=None if expected <= 0 else 100.0 * lost / expected,
            ))  # fmt: skip
        rows.sort(key=lambda c: -c.duration)
        return rows

    # --- history ---------------------------------------------------------------------------------
    def history(
        self, since: datetime | None, until: datetime | None, limit: int,
        keep: Callable[[CallRecord], bool] | None,
    ) -> list[CallRecord]:  # fmt: skip
        """Committed records, newest first, that started in [since, until) and pass ``keep``
        (None: all). Reads the database: call it from a worker thread, not the event loop."""
        store = self.records
        if store is None:
            return []
        if since is None and until is None:
            candidates = store.recent(limit if keep is None else 10_000)
        else:
            start = since or datetime(1970, 1, 1, tzinfo=UTC)
            end = until or datetime.now(UTC) + timedelta(days=1)
            candidates = store.between(start, end)[::-1]
        found = (r for r in candidates if keep is None or keep(r))
        return [r for _, r in zip(range(limit), found, strict=False)]

    def live_record(self, record_id: str) -> CallRecord | None:
        """A call in progress by its record id (memory: on the event loop)."""
        store = self.records
        if store is None:
            return None
        for call in self.live_calls():
            if call.record_id == record_id:
                return store.live(call.call_id)
        return None

    def stored_record(self, record_id: str) -> CallRecord | None:
        """A committed call by record id or either leg's Call-ID (a worker thread's call)."""
        store = self.records
        if store is None:
            return None
        return store.by_record_id(record_id) or store.by_call_id(record_id)

    def captured(self, record: CallRecord) -> list[Any] | None:
        """The SIP messages the appliance's capture holds for the call (both legs), when it
        captures (``[Traces]``, issue 13's traces: ``appliance.traces``); None otherwise."""
        traces = None if self.appliance is None else getattr(self.appliance, "traces", None)
        if traces is None or getattr(traces, "buffer", None) is None:
            return None
        found = traces.messages((record.a_call_id, record.b_call_id))
        return list(found) if found else None

    def address_names(self) -> dict[tuple[str, int], str]:
        """Our listeners and the gateways by address, for the columns of a captured ladder."""
        status = self.status()
        if status is None:
            return {}
        names = {(str(x["host"]), int(x["port"])): f"{x['role']} {x['host']}:{x['port']}"
                 for x in status.get("listeners", ())}  # fmt: skip
        assert self.appliance is not None  # status() is None without one
        online = self.appliance.settings.online
        for host in online.sip_addresses:
            names.setdefault(
                (str(host), online.sip_port), f"online service {host}:{online.sip_port}"
            )
        for g in status.get("gateways", ()):
            _, host, port = str(g["address"]).rsplit(":", 2)
            if port.isdigit():
                names[(host, int(port))] = f"gateway {g['name']} {host}:{port}"
        return names

    def window(self, hours: float) -> list[CallRecord]:
        """Committed records of the last ``hours``, oldest first (the plots; a worker
        thread's call)."""
        store = self.records
        if store is None:
            return []
        now = datetime.now(UTC)
        return store.between(now - timedelta(hours=hours), now + timedelta(minutes=1))

    # --- the fleet -------------------------------------------------------------------------------
    def fleet(self) -> list[FleetRow]:
        """Every appliance the online service knows, by site then name (this appliance alone
        when there is no online service in the process)."""
        rows: list[FleetRow] = []
        summaries = {} if self.summaries is None else dict(self.summaries())
        if self.fleet_reader is not None:
            now = self.clock()
            for a in self.fleet_reader():
                heard = None if not a.last_heartbeat else max(0.0, now - a.last_heartbeat)
                rows.append(FleetRow(
                    name=a.name, site=a.site, status=a.status, version=a.version,
                    heard_ago=heard, health=self._fleet_health(a.status, heard),
                    summary=summaries.get(a.name, {}),
                ))  # fmt: skip
        elif self.appliance is not None:
            status = self.appliance.status()
            rows.append(FleetRow(
                name=status["name"], site=status["site"], status=status["state"],
                version=status["version"], heard_ago=None,
                health=self._fleet_health(status["state"], None),
            ))  # fmt: skip
        rows.sort(key=lambda r: (r.site, r.name))
        return rows

    def _fleet_health(self, status: str, heard: float | None) -> Health:
        if status == "offline":
            return Health("bad", "offline")
        if status == "maintenance":
            return Health("warn", "maintenance")
        if heard is not None and heard > self.heartbeat_timeout:
            return Health("warn", f"silent {heard:.0f} s")
        return Health("ok", status)


def _replica_health(replica: Mapping[str, Any]) -> tuple[Health, str]:
    version, lag = replica.get("version"), replica.get("lag_seconds")
    detail = f"version {version}, lag {'-' if lag is None else f'{lag:.1f} s'}"
    if not replica.get("connected"):
        return Health("warn", "cloud unreachable: last replica in use"), detail
    return Health("ok", "in sync"), detail


def _ca_health(certificates: Sequence[Mapping[str, Any]]) -> tuple[Health, str]:
    if not certificates:
        return Health("idle", "no site CA"), ""
    soonest = certificates[0]
    left = soonest.get("days_left")
    detail = f"{soonest.get('name')}: {left} days left" if left is not None else ""
    if any(c.get("expired") for c in certificates):
        return Health("bad", "certificate expired"), detail
    if any(c.get("warn") for c in certificates):
        return Health("warn", "renew soon"), detail
    return Health("ok", "valid"), detail
