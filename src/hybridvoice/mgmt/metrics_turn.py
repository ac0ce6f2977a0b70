"""Prometheus families of the edge's media relay (TURN, RFC 8656) and MRAS, at scrape time.

- ``hybridvoice_turn_refused_total{reason}``: requests and data the relay refused or
  dropped, by reason: ``forbidden`` peers (``peer_loopback``, ``peer_link_local``,
  ``peer_own``, ...), ``quota``, ``rate_limited``, ``credentials_expired``,
  ``credentials_malformed``, ``integrity_failed``, ``stale_nonce``, ``malformed``,
  ``stream_garbage``, ``stream_source_limit``, ...
- ``hybridvoice_turn_relayed_packets_total{direction}`` and ``..._bytes_total``
  (``to_peer``, ``from_peer``), ``hybridvoice_turn_allocations`` (now) and
  ``hybridvoice_turn_allocations_total``;
- ``hybridvoice_mras_requests_total{result}``: MRAS answers (``issued``,
  ``refused_untrusted``: a verified certificate that is not the online service's,
  ``refused_invalid``); ``hybridvoice_mras_tls_refused_total{peer, reason}``: MRAS
  handshakes refused (the reasons of ``hybridvoice_tls_refused_total``);
- media anchored at the edge: ``hybridvoice_edge_anchored_calls_total{side}``,
  ``..._calls_now``, ``hybridvoice_edge_relay_packets_total``, ``..._dropped_packets_total``,
  ``hybridvoice_edge_anchor_failures_total`` (no relay ports),
  ``hybridvoice_edge_anchor_idle_released_total`` (no media for an hour, no BYE seen),
  ``hybridvoice_edge_ice_checks_total{result}``, ``hybridvoice_edge_ice_nominations_total``,
  ``hybridvoice_edge_ice_errors_suppressed_total``,
  ``hybridvoice_edge_relay_stun_dropped_total`` (the anchor's ICE-lite agent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from hybridvoice.edge.media_relay import EdgeMedia
    from hybridvoice.net.turn import TurnRelay

__all__ = ["turn_metrics", "turn_registry", "turn_relay_metrics"]

#: Counters of the relay that are not refusals.
_ACTIVITY: Final = frozenset({
    "to_peer", "to_peer_bytes", "from_peer", "from_peer_bytes", "allocations", "permissions",
    "channel_binds", "closed_allocations", "expired_allocations", "expired_reservations",
    "challenged",
})  # fmt: skip


def turn_metrics(media: EdgeMedia | None) -> list[Metric]:
    """The relay's and MRAS's families; none when the relay does not run."""
    if media is None:
        return []
    mras = CounterMetricFamily(
        "hybridvoice_mras_requests", "MRAS credential requests by result", labels=["result"]
    )
    for result in ("issued", "refused_untrusted", "refused_invalid"):
        mras.add_metric([result], media.mras_counters.get(result, 0))
    tls = CounterMetricFamily(
        "hybridvoice_mras_tls_refused",
        "MRAS handshakes refused: chain, certificate or version did not verify, by reason",
        labels=["peer", "reason"],
    )
    for (peer, reason), n in sorted(media.tls_refused.items()):
        tls.add_metric([peer, reason], n)
    return [*turn_relay_metrics(media.relay), mras, tls, *_anchoring(media)]


def turn_relay_metrics(relay: TurnRelay) -> list[Metric]:
    """The TURN relay's own families (also what ``turn serve --metrics`` exposes)."""
    counts = relay.counters
    refused = CounterMetricFamily(
        "hybridvoice_turn_refused", "TURN requests and data refused or dropped, by reason",
        labels=["reason"],
    )  # fmt: skip
    for reason in sorted(counts):
        if reason not in _ACTIVITY:
            refused.add_metric([reason], counts[reason])
    packets = CounterMetricFamily(
        "hybridvoice_turn_relayed_packets", "Packets relayed", labels=["direction"]
    )
    data = CounterMetricFamily(
        "hybridvoice_turn_relayed_bytes", "Payload bytes relayed", labels=["direction"]
    )
    for direction in ("to_peer", "from_peer"):
        packets.add_metric([direction], counts.get(direction, 0))
        data.add_metric([direction], counts.get(f"{direction}_bytes", 0))
    now = GaugeMetricFamily(
        "hybridvoice_turn_allocations", "TURN allocations now", value=relay.server.allocations
    )
    made = CounterMetricFamily(
        "hybridvoice_turn_allocations_made",
        "TURN allocations made",
        value=counts.get("allocations", 0),
    )
    return [refused, packets, data, now, made]


def _anchoring(media: EdgeMedia) -> list[Metric]:
    """The calls whose media the edge anchors (clients on the internet) and their packets."""
    anchoring = media.anchoring
    if anchoring is None:
        return []
    c = anchoring.counters
    calls = CounterMetricFamily(
        "hybridvoice_edge_anchored_calls", "Calls whose media the edge anchored, by the side "
        "the INVITE came from", labels=["side"],
    )  # fmt: skip
    calls.add_metric(["external"], c.from_external)
    calls.add_metric(["internal"], c.from_internal)
    stats = anchoring.engine.stats()
    active = GaugeMetricFamily(
        "hybridvoice_edge_anchored_calls_now", "Calls anchored now", value=stats.calls
    )
    relayed = CounterMetricFamily(
        "hybridvoice_edge_relay_packets", "RTP packets the edge relayed", value=stats.packets
    )
    dropped = CounterMetricFamily(
        "hybridvoice_edge_relay_dropped_packets",
        "RTP packets the edge's relay dropped",
        value=stats.dropped,
    )
    no_ports = CounterMetricFamily(
        "hybridvoice_edge_anchor_failures",
        "Calls left unanchored: no relay ports",
        value=c.no_ports,
    )
    idle = CounterMetricFamily(
        "hybridvoice_edge_anchor_idle_released",
        "Anchored calls released after an hour without media (their BYE never crossed the edge)",
        value=c.idle_released,
    )
    ice = anchoring.ice_counters
    checks = CounterMetricFamily(
        "hybridvoice_edge_ice_checks", "ICE connectivity checks the edge's anchor answered "
        "(answered) or refused (refused: 400/401/487 or dropped)", labels=["result"],
    )  # fmt: skip
    checks.add_metric(["answered"], ice.answered)
    checks.add_metric(["refused"], ice.refused)
    nominations = CounterMetricFamily(
        "hybridvoice_edge_ice_nominations",
        "ICE checks with USE-CANDIDATE: media moved there",
        value=ice.nominations,
    )
    limited = CounterMetricFamily(
        "hybridvoice_edge_ice_errors_suppressed",
        "Refused ICE checks left unanswered by the error answers' rate limit (a flood, or a "
        "forged source)",
        value=ice.rate_limited,
    )
    stun = CounterMetricFamily(
        "hybridvoice_edge_relay_stun_dropped",
        "STUN packets on relay ports without ICE",
        value=stats.stun_dropped,
    )
    return [calls, active, relayed, dropped, no_ports, idle, checks, nominations, limited, stun]


class _TurnCollector:
    __slots__ = ("_relay",)

    def __init__(self, relay: TurnRelay) -> None:
        self._relay = relay

    def collect(self) -> list[Metric]:
        return turn_relay_metrics(self._relay)


def turn_registry(relay: TurnRelay) -> CollectorRegistry:
    """A registry of its own with ``relay``'s families (``hybridvoice turn serve --metrics``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_TurnCollector(relay))
    return registry
