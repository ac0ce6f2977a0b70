"""The dashboard's plots, drawn by the server as SVG from the call records: calls over time
(answered and failed per bucket), setup time (INVITE to answer, per call), loss (RFC 3550
§6.4.1: packets lost over packets expected, per leg of each call) and the MOS estimate of
each call (ITU-T G.107 E-model, from the call record; a poor call in red).

Pure functions of the records and the window: no clock read here. Text goes through
:func:`~xml.sax.saxutils.escape`; the styling is the stylesheet's (classes), so the page's
Content-Security-Policy needs no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from xml.sax.saxutils import escape

from hybridvoice.mediation.records_model import CallRecord, CallState

from .source import loss_percent

__all__ = ["Window", "calls_over_time", "loss_plot", "mos_plot", "setup_time_plot"]

_W: Final = 560
_H: Final = 180
_L: Final = 46  # left margin (axis labels)
_B: Final = 24  # bottom margin


@dataclass(frozen=True, slots=True)
class Window:
    """The time range a plot covers, cut into ``buckets`` bars."""

    start: datetime
    end: datetime
    buckets: int = 24

    @property
    def step(self) -> timedelta:
        return (self.end - self.start) / self.buckets

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        fraction = (at - self.start).total_seconds() / span
        return _L + max(0.0, min(1.0, fraction)) * (_W - _L - 8)


def _frame(title: str, y_max: float, unit: str, window: Window) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_L}" y="12" class="title">{escape(title)}</text>',
        f'<line x1="{_L}" y1="{_H - _B}" x2="{_W - 8}" y2="{_H - _B}" class="axis"/>',
        f'<line x1="{_L}" y1="20" x2="{_L}" y2="{_H - _B}" class="axis"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = _y(fraction * y_max, y_max)
        parts.append(f'<line x1="{_L}" y1="{y:.1f}" x2="{_W - 8}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_L - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                     f"{_number(fraction * y_max)}{escape(unit)}</text>")  # fmt: skip
    for at, anchor in ((window.start, "start"), (window.end, "end")):
        parts.append(f'<text x="{window.x(at):.1f}" y="{_H - 6}" class="tick" '
                     f'text-anchor="{anchor}">{at:%m-%d %H:%M} UTC</text>')  # fmt: skip
    return parts


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _y(value: float, y_max: float) -> float:
    top, bottom = 20.0, float(_H - _B)
    return bottom - (value / (y_max or 1.0)) * (bottom - top)


def _empty(parts: list[str]) -> str:
    parts.append(f'<text x="{_W // 2}" y="{_H // 2}" class="none" text-anchor="middle">'
                 "no calls in this window</text></svg>")  # fmt: skip
    return "".join(parts)


def calls_over_time(records: Sequence[CallRecord], window: Window) -> str:
    """Stacked bars per bucket: answered below, failed above (interrupted count as failed)."""
    answered = [0] * window.buckets
    failed = [0] * window.buckets
    step = window.step.total_seconds() or 1.0
    for record in records:
        index = int((record.start_utc - window.start).total_seconds() // step)
        if not 0 <= index < window.buckets or record.state is CallState.ACTIVE:
            continue
        (answered if record.answer_utc is not None else failed)[index] += 1
    top = max((a + f for a, f in zip(answered, failed, strict=True)), default=0)
    parts = _frame("calls over time (answered / failed)", max(top, 1), "", window)
    if top == 0:
        return _empty(parts)
    width = (_W - _L - 8) / window.buckets
    for i, (ok, bad) in enumerate(zip(answered, failed, strict=True)):
        x = _L + i * width + 1
        y_ok = _y(ok, top)
        y_all = _y(ok + bad, top)
        label = f"{window.start + window.step * i:%H:%M}: {ok} answered, {bad} failed"
        if ok:
            parts.append(f'<rect x="{x:.1f}" y="{y_ok:.1f}" width="{width - 2:.1f}" '
                         f'height="{_H - _B - y_ok:.1f}" class="bar ok"><title>{label}</title>'
                         "</rect>")  # fmt: skip
        if bad:
            parts.append(f'<rect x="{x:.1f}" y="{y_all:.1f}" width="{width - 2:.1f}" '
                         f'height="{y_ok - y_all:.1f}" class="bar bad"><title>{label}</title>'
                         "</rect>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _points(
    title: str, unit: str, points: Sequence[tuple[datetime, float, str]], window: Window
) -> str:
    points = [p for p in points if window.start <= p[0] < window.end]  # not at the edges
    top = max((v for _, v, _ in points), default=0.0)
    parts = _frame(title, max(top * 1.1, 1.0), unit, window)
    if not points:
        return _empty(parts)
    for at, value, cls in points:
        parts.append(f'<circle cx="{window.x(at):.1f}" cy="{_y(value, max(top * 1.1, 1.0)):.1f}"'
                     f' r="3" class="dot {cls}"><title>{at:%H:%M:%S} {_number(value)}'
                     f"{escape(unit)}</title></circle>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def setup_time_plot(records: Sequence[CallRecord], window: Window) -> str:
    """Seconds from the INVITE to the answer of each answered call."""
    points = [(r.start_utc, r.answer_after, "ok") for r in records
              if r.answer_after is not None]  # fmt: skip
    return _points("setup time (INVITE to answer)", " s", points, window)


def loss_plot(records: Sequence[CallRecord], window: Window) -> str:
    """Loss of each ended call's legs as the relay saw it (bypassed calls have none)."""
    points: list[tuple[datetime, float, str]] = []
    for record in records:
        for counters, cls in ((record.a_media, "a"), (record.b_media, "b")):
            loss = loss_percent(counters)
            if loss is not None:
                points.append((record.start_utc, loss, "bad" if loss >= 1.0 else cls))
    return _points("packet loss per leg (relay)", "%", points, window)


def mos_plot(records: Sequence[CallRecord], window: Window) -> str:
    """The MOS estimate of each call that has one (1 to 4.5), poor calls in red."""
    points = [(r.start_utc, r.mos, "bad" if r.mos_poor else "ok") for r in records
              if r.mos is not None]  # fmt: skip
    return _points("MOS estimate per call (E-model)", "", points, window)
