"""A call-flow diagram as a standalone SVG document (``hybridvoice plan callflow --svg``).

Four segment bands: the customer network on the left, the cloud on the right, and between
them the internet (top) over the private peering link (bottom), so that a line through one
of them never seems to cross the other. Each node sits in its segment's band; a hop that
crosses a middle segment bends through that band. Signalling is a solid line, media a
dashed one, each with its own arrowhead; a legend explains both.

Pure: a function of the paths; no fonts, scripts or styles from outside the document (the
generic ``sans-serif`` family, presentation attributes only). Text goes through
:func:`~xml.sax.saxutils.escape`, as in the dashboard's plots (:mod:`.dashboard.plots`).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from hybridvoice.planning.callflow import Path
from hybridvoice.planning.segments import Segment, Traffic

__all__ = ["BANDS", "callflow_svg"]

_W: Final = 800
_TOP: Final = 40  # the title above the bands
_BAND_H: Final = 360
_LEGEND_H: Final = 56
_NODE_W: Final = 112
_NODE_H: Final = 30

#: Each segment's band: (x, y, width, height, label, fill).
BANDS: Final = (
    (Segment.CUSTOMER, (0, _TOP, 380, _BAND_H, "customer network", "#e8f1fb")),
    (Segment.INTERNET, (380, _TOP, 200, _BAND_H // 2, "internet", "#f4f4f4")),
    (Segment.PEERING, (380, _TOP + _BAND_H // 2, 200, _BAND_H // 2, "private peering", "#eef7ea")),
    (Segment.CLOUD, (580, _TOP, 220, _BAND_H, "cloud", "#fbf1e6")),
)

#: Where hybridvoice's own nodes go inside their band (fractions of the band's size).
_SPOTS: Final = (
    ("client", Segment.CUSTOMER, 0.2, 0.18),
    ("colleague", Segment.CUSTOMER, 0.2, 0.62),
    ("edge", Segment.CUSTOMER, 0.8, 0.3),
    ("mediation", Segment.CUSTOMER, 0.55, 0.6),
    ("gateway", Segment.CUSTOMER, 0.2, 0.85),
    ("client", Segment.INTERNET, 0.5, 0.3),
    ("online", Segment.CLOUD, 0.5, 0.3),
    ("online edge", Segment.CLOUD, 0.5, 0.62),
    ("online conference", Segment.CLOUD, 0.5, 0.3),
)

_STYLE: Final = MappingProxyType(
    {
        Traffic.SIGNALLING: ('stroke="#1f4e9a" stroke-width="2"', "#1f4e9a", -5.0),
        Traffic.MEDIA: ('stroke="#c0392b" stroke-width="2" stroke-dasharray="7 4"', "#c0392b", 5.0),
    }
)


def _band(segment: Segment) -> tuple[int, int, int, int, str, str]:
    return dict(BANDS)[segment]


def _places(paths: Sequence[Path]) -> dict[str, tuple[Segment, float, float]]:
    """Each node's segment (from the hops: a hop starts in its source's, ends in its target's)
    and its centre point."""
    segment_of: dict[str, Segment] = {}
    for path in paths:
        for hop in path.hops:
            segment_of.setdefault(hop.source, hop.segments[0])
            segment_of.setdefault(hop.target, hop.segments[-1])
    spots = {(name, segment): (fx, fy) for name, segment, fx, fy in _SPOTS}
    stacked: dict[Segment, int] = {}
    placed: dict[str, tuple[Segment, float, float]] = {}
    for node, segment in segment_of.items():
        x, y, w, h, _, _ = _band(segment)
        if (node, segment) in spots:
            fx, fy = spots[(node, segment)]
        else:  # a node of no known spot: stack it down the band's middle
            index = stacked.get(segment, 0)
            stacked[segment] = index + 1
            fx, fy = 0.5, 0.15 + 0.2 * index
        placed[node] = (segment, x + fx * w, y + fy * h)
    return placed


def _clip(x: float, y: float, toward_x: float, toward_y: float) -> tuple[float, float]:
    """The point where a line from (toward) into the node at (x, y) meets the node's box."""
    dx, dy = toward_x - x, toward_y - y
    if dx == 0 and dy == 0:
        return x, y
    scale = min(
        (_NODE_W / 2 + 3) / abs(dx) if dx else float("inf"),
        (_NODE_H / 2 + 3) / abs(dy) if dy else float("inf"),
    )
    return x + dx * scale, y + dy * scale


def _line(path: Path, places: dict[str, tuple[Segment, float, float]]) -> list[str]:
    style, _, offset = _STYLE[path.traffic]
    parts: list[str] = []
    for index, hop in enumerate(path.hops):
        _, x1, y1 = places[hop.source]
        _, x2, y2 = places[hop.target]
        points = [(x1, y1)]
        for middle in hop.segments[1:-1]:
            bx, by, bw, bh, _, _ = _band(middle)
            # Below the internet band's client spot; mid-band in the peering band.
            depth = 0.75 if middle is Segment.INTERNET else 0.5
            points.append((bx + bw / 2, by + bh * depth + offset * 2 + (index % 3) * 10 - 10))
        points.append((x2, y2))
        points[0] = _clip(x1, y1, *points[1])
        points[-1] = _clip(x2, y2, *points[-2])
        shifted = " ".join(f"{px:.1f},{py + offset:.1f}" for px, py in points)
        parts.append(
            f'<polyline class="hop {path.traffic.value}" data-traffic="{path.traffic.value}" '
            f"data-from={quoteattr(hop.source)} data-to={quoteattr(hop.target)} "
            f'points="{shifted}" fill="none" {style} marker-end="url(#arrow-{path.traffic.value})">'
            f"<title>{escape(path.traffic.value)}: {escape(hop.source)} to {escape(hop.target)}, "
            f"{escape(' > '.join(s.value for s in hop.segments))}</title></polyline>"
        )
    return parts


def _legend(y: float) -> list[str]:
    parts = []
    for index, traffic in enumerate((Traffic.SIGNALLING, Traffic.MEDIA)):
        style, _, _ = _STYLE[traffic]
        x = 20 + index * 260
        label = "signalling (SIP, HTTPS)" if traffic is Traffic.SIGNALLING else "media (RTP)"
        parts.append(
            f'<g class="legend-item" data-traffic="{traffic.value}">'
            f'<line x1="{x}" y1="{y}" x2="{x + 50}" y2="{y}" {style} '
            f'marker-end="url(#arrow-{traffic.value})"/>'
            f'<text x="{x + 62}" y="{y + 4}" font-size="13">{escape(label)}</text></g>'
        )
    return parts


def callflow_svg(paths: Sequence[Path], *, title: str) -> str:
    """The diagram of `paths` (signalling and media of one call) as an SVG document."""
    height = _TOP + _BAND_H + _LEGEND_H
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" '
        f'height="{height}" role="img" aria-label={quoteattr(title)} '
        'font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        "<defs>",
    ]
    for traffic, (_, colour, _) in _STYLE.items():
        parts.append(
            f'<marker id="arrow-{traffic.value}" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    parts.append("</defs>")
    parts.append(f'<text x="12" y="26" font-size="16" font-weight="bold">{escape(title)}</text>')
    for segment, (x, y, w, h, label, fill) in BANDS:
        parts.append(
            f'<g class="band" data-segment="{segment.value}">'
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" stroke="#9aa5b1"/>'
            f'<text x="{x + 8}" y="{y + 18}" font-size="13" fill="#44505c">{escape(label)}</text>'
            "</g>"
        )
    places = _places(paths)
    for path in paths:
        parts.extend(_line(path, places))
    for node, (segment, cx, cy) in places.items():
        parts.append(
            f'<g class="node" data-node={quoteattr(node)} data-segment="{segment.value}">'
            f'<rect x="{cx - _NODE_W / 2:.1f}" y="{cy - _NODE_H / 2:.1f}" width="{_NODE_W}" '
            f'height="{_NODE_H}" rx="6" fill="#ffffff" stroke="#2c3e50"/>'
            f'<text x="{cx:.1f}" y="{cy + 5:.1f}" font-size="13" text-anchor="middle">'
            f"{escape(node)}</text></g>"
        )
    parts.extend(_legend(_TOP + _BAND_H + _LEGEND_H / 2))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
