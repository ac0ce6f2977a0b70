"""The dashboard's pages: server-rendered HTML (Jinja2, autoescaped) on the management API.

``GET /`` overview (sites and appliances, roles' health, gateways and their OPTIONS state,
calls now against the limit, replication version and lag, certificate expiry);
``GET /ui/calls`` live calls; ``GET /ui/history`` call history with search (``q``: caller or
callee contains it, ``since``/``until``: UTC times, ``result``: answered, failed, active,
interrupted or a SIP status); ``GET /ui/history/{record_id}`` one call, its SIP ladder and
its media path; ``GET /ui/plots`` calls over time, setup time and loss (``hours``: the
window); ``GET /ui/events`` server-sent events (the WHATWG HTML "server-sent events"
format, ``text/event-stream``) carrying the live parts of the pages as HTML fragments.

Every route is a read (GET): the guard in front needs a token of any scope, and the
:mod:`.gate` takes it from the session cookie for these paths only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from hybridvoice import __version__
from hybridvoice.mediation.records_model import CallRecord

from ..appliance_api import RESULTS, call_matches
from .ladder import ladder_from_messages, ladder_from_record, ladder_svg, media_path_svg
from .plots import Window, calls_over_time, loss_plot, mos_plot, setup_time_plot
from .source import DashboardSource, call_result, loss_percent

__all__ = ["EventTimes", "add_views", "environment"]

_TIME_FORMATS: Final = "YYYY-MM-DDTHH:MM (UTC)"
_WINDOWS: Final = (1, 6, 24, 168)


class EventTimes:
    """How often the live stream sends (seconds) and how long one stream lasts before the
    browser reconnects (so that a stopping server never waits on an open stream for long)."""

    __slots__ = ("interval", "lifetime")

    def __init__(self, interval: float = 1.0, lifetime: float = 30.0) -> None:
        self.interval, self.lifetime = interval, lifetime


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _utc(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _mos(value: object) -> str:
    """A MOS estimate (1 to 4.5, ITU-T G.107 E-model) with two decimals; "-" without one."""
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def environment() -> jinja2.Environment:
    """The templates of this package, autoescaped (every value is text unless marked)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hybridvoice.mgmt.dashboard", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters.update(duration=_duration, ago=_ago, utc=_utc, pct=_pct, mos=_mos)
    env.globals.update(call_result=call_result, loss=loss_percent, version=__version__,
                       mos="mos" in {f.name for f in fields(CallRecord)})  # fmt: skip
    return env


def _parse_time(name: str, text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: {text[:40]!r} is not a time: use {_TIME_FORMATS}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_views(
    app: FastAPI, source: DashboardSource, env: jinja2.Environment, times: EventTimes
) -> Callable[[str, int], str]:
    """The dashboard's routes on ``app``; returns the login page's renderer (for the gate)."""

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        status_row = source.status()
        values.setdefault("title", name)
        html = env.get_template(f"{name}.html").render(
            me=status_row, now=datetime.now(UTC), **values
        )
        return HTMLResponse(html, status)

    def login(error: str, status: int) -> str:
        return env.get_template("login.html").render(
            error=error, status=status, me=None, now=datetime.now(UTC), title="login"
        )

    def fragments(only: str) -> dict[str, str]:
        """The live parts of a page, by element id (from memory only: sent every second)."""
        live = source.live_calls()
        out = {
            "live-count": str(len(live)),
            "live-rows": env.get_template("_live_rows.html").render(calls=live),
        }
        now = source.calls_now()
        if only == "overview" and now is not None:
            out["overview-now"] = env.get_template("_overview_now.html").render(me=now)
            out["gateway-rows"] = env.get_template("_gateway_rows.html").render(
                gateways=now["gateways"], health=source.gateway_health
            )
        return out

    @app.get("/", include_in_schema=False)
    async def overview() -> HTMLResponse:
        status = source.status()
        return page(
            "overview", fleet=source.fleet(), roles=source.roles(status) if status else [],
            gateways=status["gateways"] if status else [], health=source.gateway_health,
            live=source.live_calls(), stream="overview",
        )  # fmt: skip

    @app.get("/ui/calls", include_in_schema=False)
    async def live_calls() -> HTMLResponse:
        return page("live", calls=source.live_calls(), stream="live")

    @app.get("/ui/history", include_in_schema=False)
    async def history(
        q: str | None = None, since: str | None = None, until: str | None = None,
        result: str | None = None, limit: int = 100,
    ) -> HTMLResponse:  # fmt: skip
        form = {"q": q or "", "since": since or "", "until": until or "", "result": result or ""}
        problems: list[str] = []
        start = end = None
        try:
            start = _parse_time("since", since)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            end = _parse_time("until", until)
        except ValueError as exc:
            problems.append(str(exc))
        picked = result or None
        if picked is not None and not picked.isdigit() and picked not in RESULTS:
            problems.append(f"result: {picked[:40]!r} is not one of {', '.join(RESULTS)} "
                            "or a SIP status")  # fmt: skip
        calls: list[CallRecord] = []
        if not problems:
            party = q.strip() if q and q.strip() else None

            def keep(record: CallRecord) -> bool:
                return call_matches(record, party, picked)

            wanted = keep if party is not None or picked is not None else None
            count = max(1, min(limit, 1000))  # the database in a worker: not on the SIP loop
            calls = await asyncio.to_thread(source.history, start, end, count, wanted)
        status = 422 if problems else 200
        kept = source.records is not None
        return page("history", status, calls=calls, form=form, problems=problems,
                    results=RESULTS, kept=kept)  # fmt: skip

    @app.get("/ui/history/{record_id}", include_in_schema=False)
    async def call(record_id: str) -> HTMLResponse:
        record = source.live_record(record_id)
        if record is None:
            record = await asyncio.to_thread(source.stored_record, record_id)
        if record is None:
            return page("missing", 404, what=record_id[:80])
        captured = source.captured(record)
        if captured:
            columns, arrows = ladder_from_messages(captured, source.address_names())
            start = arrows[0].at
        else:
            columns, arrows = ladder_from_record(record)
            start = record.start_utc
        ladder = ladder_svg(columns, arrows, start)
        title = f"call {record.caller} → {record.callee}"
        return page("call", call=record, ladder=ladder, media=media_path_svg(record), title=title,
                    captured=len(captured or ()))  # fmt: skip

    @app.get("/ui/plots", include_in_schema=False)
    async def plots(hours: int = 24) -> HTMLResponse:
        hours = hours if hours in _WINDOWS else 24
        end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        window = Window(end - timedelta(hours=hours), end, 24)

        def draw() -> tuple[int, tuple[str, ...]]:  # in a worker: the database and the SVG
            records = source.window(hours)
            svgs = (calls_over_time(records, window), setup_time_plot(records, window),
                    loss_plot(records, window), mos_plot(records, window))  # fmt: skip
            return len(records), svgs

        count, svgs = await asyncio.to_thread(draw)
        return page("plots", hours=hours, windows=_WINDOWS, count=count, svgs=svgs)

    @app.get("/ui/events", include_in_schema=False)
    async def events(request: Request, page_name: str = "live") -> StreamingResponse:
        return StreamingResponse(
            _stream(request, lambda: fragments(page_name), times),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    return login


async def _stream(
    request: Request, build: Callable[[], Mapping[str, str]], times: EventTimes
) -> AsyncIterator[str]:
    """One ``update`` event now and every ``interval`` seconds, for ``lifetime`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + times.lifetime
    yield "retry: 2000\n\n"
    while loop.time() < end:
        if await request.is_disconnected():
            return
        yield f"event: update\ndata: {json.dumps(build())}\n\n"
        await asyncio.sleep(times.interval)
