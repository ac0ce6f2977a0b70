"""A call's SIP ladder diagram and media path, drawn by the server as SVG.

:func:`ladder_from_record` rebuilds the messages of a call (RFC 3261 §13 and §15: INVITE,
100, 180, 200, ACK, BYE/CANCEL and their answers, one INVITE per failover attempt) from its
call record's events (start, ring, answer, end, attempts, final status, who hung up): the
record keeps times and outcomes, not the messages, so the diagram says "from the call
record". :func:`ladder_from_messages` draws the messages of a SIP capture instead, when the
appliance holds one for the call (one column per address, the start line of each message).
:func:`ladder_svg` draws any list of :class:`Arrow` (a capture's, too) between
named columns. Every text goes through :func:`~xml.sax.saxutils.escape`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol
from xml.sax.saxutils import escape, quoteattr

from hybridvoice.mediation.records_model import CallRecord, Direction, DisconnectSide

__all__ = ["Arrow", "CapturedMessage", "ladder_from_messages", "ladder_from_record", "ladder_svg",
           "media_path_svg"]  # fmt: skip

CALLER_SIDE: Final = "cloud / edge"
MEDIATION: Final = "mediation"


@dataclass(frozen=True, slots=True)
class Arrow:
    """One message from column ``source`` to column ``target`` at ``at`` (None: unknown)."""

    source: str
    target: str
    label: str
    at: datetime | None = None
    failure: bool = False


def _columns(record: CallRecord) -> tuple[str, str, str]:
    gateway = f"gateway {record.gateway}" if record.gateway else "gateway"
    if record.direction is Direction.INBOUND:
        return (gateway, MEDIATION, CALLER_SIDE)
    return (CALLER_SIDE, MEDIATION, gateway)


def ladder_from_record(record: CallRecord) -> tuple[tuple[str, ...], list[Arrow]]:
    """The columns and the messages of ``record``'s call, in order."""
    caller, mediation, callee = _columns(record)
    out: list[Arrow] = [Arrow(caller, mediation, "INVITE (SDP offer)", record.start_utc),
                        Arrow(mediation, caller, "100 Trying", record.start_utc)]  # fmt: skip
    attempts = record.attempts
    for attempt in attempts:
        target = f"gateway {attempt.gateway}" if record.direction is Direction.OUTBOUND else callee
        if attempt.outcome == "answered":
            continue
        out.append(Arrow(mediation, target, "INVITE", record.start_utc))
        label = "no answer (timeout)" if attempt.outcome == "timeout" else attempt.outcome
        out.append(Arrow(target, mediation, label, None, failure=True))
        if attempt.outcome != "timeout":
            out.append(Arrow(mediation, target, "ACK"))
    reached = record.answer_utc is not None or record.ring_utc is not None
    if reached or not attempts:
        out.append(Arrow(mediation, callee, "INVITE", record.start_utc))
    if record.ring_utc is not None:
        out.append(Arrow(callee, mediation, "180 Ringing", record.ring_utc))
        out.append(Arrow(mediation, caller, "180 Ringing", record.ring_utc))
    if record.answer_utc is not None:
        out += [
            Arrow(callee, mediation, "200 OK (SDP answer)", record.answer_utc),
            Arrow(mediation, callee, "ACK", record.answer_utc),
            Arrow(mediation, caller, "200 OK (SDP answer)", record.answer_utc),
            Arrow(caller, mediation, "ACK", record.answer_utc),
        ]
        if record.end_utc is not None:
            first, second = (caller, callee)
            if record.disconnect_side is DisconnectSide.CALLEE:
                first, second = callee, caller
            if record.disconnect_side is DisconnectSide.LOCAL:
                out += [Arrow(mediation, caller, "BYE", record.end_utc),
                        Arrow(mediation, callee, "BYE", record.end_utc)]  # fmt: skip
            else:
                out += [
                    Arrow(first, mediation, "BYE", record.end_utc),
                    Arrow(mediation, first, "200 OK", record.end_utc),
                    Arrow(mediation, second, "BYE", record.end_utc),
                    Arrow(second, mediation, "200 OK", record.end_utc),
                ]
    elif record.end_utc is not None:
        status = record.sip_status or 487
        text = f"{status} {record.cause or ''}".strip()
        if record.disconnect_side is DisconnectSide.CALLER:
            out += [Arrow(caller, mediation, "CANCEL", record.end_utc),
                    Arrow(mediation, callee, "CANCEL", record.end_utc)]  # fmt: skip
        elif reached or not attempts:
            out.append(Arrow(callee, mediation, text, record.end_utc, failure=True))
        out.append(Arrow(mediation, caller, text, record.end_utc, failure=True))
        out.append(Arrow(caller, mediation, "ACK", record.end_utc))
    columns = tuple(dict.fromkeys((caller, mediation, callee, *(a.target for a in out))))
    return columns, out


class CapturedMessage(Protocol):
    """One SIP message of a capture (``hybridvoice.trace``'s ``Captured``): when (epoch
    seconds), from and to which address, the bytes."""

    @property
    def time(self) -> float: ...
    @property
    def src(self) -> tuple[str, int]: ...
    @property
    def dst(self) -> tuple[str, int]: ...
    @property
    def data(self) -> bytes: ...


def _start_line(data: bytes) -> tuple[str, bool]:
    """A message's label (``INVITE sip:+1555...``, ``200 OK``) and whether it is a failure
    (a final response of 300 or more, RFC 3261 §7.2, but a 401/407 challenge)."""
    line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    parts = line.split(" ", 2)
    if line.startswith("SIP/2.0 ") and len(parts) >= 2:
        code = parts[1]
        challenge = code in ("401", "407")  # digest auth asks, the request comes again
        return " ".join(parts[1:]), code.isdigit() and int(code) >= 300 and not challenge
    return (f"{parts[0]} {parts[1]}" if len(parts) >= 2 else line), False


def ladder_from_messages(
    messages: Sequence[CapturedMessage], names: Mapping[tuple[str, int], str] | None = None
) -> tuple[tuple[str, ...], list[Arrow]]:
    """The columns (one per address, or the name ``names`` gives it) and an arrow per
    captured message, in capture order."""
    named = names or {}
    columns: dict[str, None] = {}
    arrows: list[Arrow] = []
    for message in messages:
        source = named.get(message.src) or f"{message.src[0]}:{message.src[1]}"
        target = named.get(message.dst) or f"{message.dst[0]}:{message.dst[1]}"
        columns.setdefault(source)
        columns.setdefault(target)
        label, failure = _start_line(message.data)
        at = datetime.fromtimestamp(message.time, UTC)
        arrows.append(Arrow(source, target, label, at, failure=failure))
    return tuple(columns), arrows


_COL_W: Final = 200
_ROW_H: Final = 30
_TOP: Final = 52


def _clip(text: str, size: int = 48) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def ladder_svg(columns: tuple[str, ...], arrows: list[Arrow], start: datetime | None) -> str:
    """An SVG ladder: a lifeline per column, an arrow per message, its offset from ``start``
    in seconds on the left."""
    width = 90 + _COL_W * len(columns)
    height = _TOP + _ROW_H * (len(arrows) + 1)
    x = {name: 90 + _COL_W // 2 + i * _COL_W for i, name in enumerate(columns)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ladder" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="SIP ladder diagram">',
        '<defs><marker id="arrowhead" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="head"/></marker></defs>',
    ]
    for name, cx in x.items():
        head, _, address = name.rpartition(" ")
        if not head or ":" not in address:  # a name alone, or an address alone
            head, address = name, ""
        parts.append(f'<text x="{cx}" y="14" class="col" text-anchor="middle">'
                     f"{escape(_clip(head, 28))}</text>")  # fmt: skip
        if address:
            parts.append(f'<text x="{cx}" y="27" class="t" text-anchor="middle">'
                         f"{escape(_clip(address, 28))}</text>")  # fmt: skip
        parts.append(f'<line x1="{cx}" y1="32" x2="{cx}" y2="{height - 6}" class="life"/>')
    for i, arrow in enumerate(arrows):
        y = _TOP + _ROW_H * i + 12
        x1, x2 = x[arrow.source], x[arrow.target]
        cls = "msg fail" if arrow.failure else "msg"
        if arrow.at is not None and start is not None:
            offset = (arrow.at - start).total_seconds()
            parts.append(f'<text x="6" y="{y + 4}" class="t">+{offset:.3f}</text>')
        parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" class="{cls}" '
                     'marker-end="url(#arrowhead)"/>')  # fmt: skip
        mid = (x1 + x2) // 2
        parts.append(f'<text x="{mid}" y="{y - 5}" class="{cls}" text-anchor="middle">'
                     f"{escape(_clip(arrow.label))}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def media_path_svg(record: CallRecord) -> str:
    """Where the call's media flowed: straight between the client and the gateway (bypass) or
    through the mediation role's relay (anchored), with each leg's packets and loss."""
    caller, _, callee = _columns(record)
    mode = record.media_mode.value if record.media_mode is not None else "unknown"
    nodes = (caller, callee) if mode == "bypass" else (caller, "mediation relay", callee)
    legs = [record.a_media, record.b_media] if mode != "bypass" else [None]
    width, height = 660, 120
    step = (width - 160) // (len(nodes) - 1)
    xs = [80 + i * step for i in range(len(nodes))]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="mediapath" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label={quoteattr(f"media path: {mode}")}>']  # fmt: skip
    for i, counters in enumerate(legs):
        x1, x2 = xs[i], xs[i + 1]
        parts.append(f'<line x1="{x1}" y1="50" x2="{x2}" y2="50" class="leg"/>')
        if counters is None:
            lines = ("RTP direct (bypass)" if mode == "bypass" else "no media", "")
        else:
            expected = counters.packets_received + counters.packets_lost
            loss = 0.0 if expected <= 0 else 100 * counters.packets_lost / expected
            lines = (f"rx {counters.packets_received} tx {counters.packets_sent}",
                     f"loss {loss:.1f}% jitter {counters.jitter_ms:.1f} ms")  # fmt: skip
        for y, text in zip((24, 40), lines, strict=True):
            parts.append(f'<text x="{(x1 + x2) // 2}" y="{y}" class="legtext" '
                         f'text-anchor="middle">{escape(text)}</text>')  # fmt: skip
    for cx, name in zip(xs, nodes, strict=True):
        parts.append(f'<circle cx="{cx}" cy="50" r="9" class="node"/>')
        parts.append(f'<text x="{cx}" y="82" class="col" text-anchor="middle">'
                     f"{escape(_clip(name, 26))}</text>")  # fmt: skip
    reason = record.media_reason or ""
    parts.append(f'<text x="10" y="108" class="t">{escape(mode)}'
                 f"{': ' + escape(_clip(reason, 80)) if reason else ''}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
