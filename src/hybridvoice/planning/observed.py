"""Observed call paths classified by network segment, and compared with the plan.

The mediation role records the addresses a call's signalling and media actually used
(:mod:`hybridvoice.mediation.records_observed`). Here they meet the deployment's segment
settings (``[Segments]``, :mod:`hybridvoice.cms.settings_segments`): each address falls in one
segment (:meth:`SegmentMap.segment`), and each hop crosses the segments
:func:`~hybridvoice.planning.segments.crossing` says between its two ends, over the peering
link when its cloud end lies in the peering prefixes. :func:`compare` sets an observed path
beside the planned one (:func:`~hybridvoice.planning.callflow.plan_pstn`): the same nodes
in the same order, and the same segments hop by hop, or a difference named.

Pure: addresses in, segments out; no sockets, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybridvoice.mediation.records_observed import ObservedHop, ObservedPaths
from hybridvoice.planning.callflow import Hop, Path
from hybridvoice.planning.segments import Segment, Traffic, crossing

if TYPE_CHECKING:
    from hybridvoice.cms.settings import Settings

__all__ = [
    "ClassifiedHop",
    "Comparison",
    "IPNetwork",
    "ObservedFlow",
    "SegmentMap",
    "classify",
    "classify_hop",
    "compare",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(values: Iterable[object]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)


@dataclass(frozen=True, slots=True)
class SegmentMap:
    """Which addresses are in which segment. The most specific prefix wins (an address named
    as the cloud's inside a customer subnet is the cloud's); on a tie the cloud, then the
    peering prefixes, then the customer's network; an address in none is on the internet."""

    customer: tuple[IPNetwork, ...] = ()
    peering: tuple[IPNetwork, ...] = ()
    cloud: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> SegmentMap:
        """The map of ``settings``: ``[Segments]``, with its defaults (``InternalSubnets``,
        ``[Online] SIPAddresses``) where a key is left out."""
        seg = settings.segments
        customer = seg.customer_subnets or settings.mediation_server.internal_subnets
        cloud = seg.cloud_addresses or _networks(settings.online.sip_addresses)
        return cls(_networks(customer), _networks(seg.peering_prefixes), _networks(cloud))

    @property
    def has_peering(self) -> bool:
        """The deployment has a private peering link (``PeeringPrefixes`` names some)."""
        return bool(self.peering)

    def _best(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Segment:
        best: tuple[int, int, Segment] | None = None
        ranked = (
            (2, Segment.CLOUD, self.cloud),
            (1, Segment.PEERING, self.peering),
            (0, Segment.CUSTOMER, self.customer),
        )
        for rank, segment, networks in ranked:
            for net in networks:
                if net.version == address.version and address in net:
                    key = (net.prefixlen, rank, segment)
                    if best is None or key[:2] > best[:2]:
                        best = key
        return Segment.INTERNET if best is None else best[2]

    def segment(self, address: str) -> Segment | None:
        """The segment of ``address`` (an address in the peering prefixes is the cloud's,
        reached over the peering link); None when it is no IP address (not seen)."""
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return None
        found = self._best(ip)
        return Segment.CLOUD if found is Segment.PEERING else found

    def over_peering(self, address: str) -> bool:
        """Whether ``address`` is a cloud address reached over the peering link: in the
        cloud and inside a peering prefix (a cloud address named on its own, more specific
        than the prefix, is still reached over the link)."""
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        inside = any(net.version == ip.version and ip in net for net in self.peering)
        return inside and self._best(ip) in (Segment.CLOUD, Segment.PEERING)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "customer": [str(n) for n in self.customer],
            "peering": [str(n) for n in self.peering],
            "cloud": [str(n) for n in self.cloud],
        }


@dataclass(frozen=True, slots=True)
class ClassifiedHop:
    """An observed hop with the segments of its ends and the segments it crossed."""

    source: str
    source_address: str
    source_segment: Segment | None
    target: str
    target_address: str
    target_segment: Segment | None
    segments: tuple[Segment, ...]  # empty when an end's segment is unknown
    seen_by: str
    inferred: bool = False


def _address(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def classify_hop(hop: ObservedHop, segments: SegmentMap) -> ClassifiedHop:
    """The segments ``hop`` crossed, from the addresses at its ends."""
    a, b = segments.segment(hop.source_host), segments.segment(hop.target_host)
    peering = segments.over_peering(hop.source_host) or segments.over_peering(hop.target_host)
    crossed = () if a is None or b is None else crossing(a, b, peering=peering)
    return ClassifiedHop(
        hop.source, _address(hop.source_host, hop.source_port), a,
        hop.target, _address(hop.target_host, hop.target_port), b,
        crossed, hop.seen_by, hop.inferred,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ObservedFlow:
    """A call's observed signalling and media, classified."""

    signalling: tuple[ClassifiedHop, ...]
    media: tuple[ClassifiedHop, ...]

    def path(self, traffic: Traffic) -> Path:
        """The observed hops as a :class:`~.callflow.Path`, to compare with the plan."""
        hops = self.signalling if traffic is Traffic.SIGNALLING else self.media
        return Path(traffic, tuple(Hop(h.source, h.target, h.segments) for h in hops))


def classify(observed: ObservedPaths, segments: SegmentMap) -> ObservedFlow:
    """Every hop of ``observed`` classified with ``segments``."""
    return ObservedFlow(
        tuple(classify_hop(h, segments) for h in observed.signalling),
        tuple(classify_hop(h, segments) for h in observed.media),
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """Planned beside observed for one kind of traffic; ``differences`` empty: they agree."""

    traffic: Traffic
    planned: Path
    observed: Path
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences


def _hop_text(hop: Hop) -> str:
    crossed = " > ".join(s.value for s in hop.segments) or "unknown"
    return f"{hop.source} -> {hop.target} ({crossed})"


def compare(planned: Path, observed: Path) -> Comparison:
    """Whether ``observed`` took the path ``planned`` says: the same hops between the same
    nodes, each crossing the same segments; every difference named."""
    differences: list[str] = []
    plan_hops: Sequence[Hop] = planned.hops
    seen_hops: Sequence[Hop] = observed.hops
    if not seen_hops:
        differences.append(f"no {planned.traffic.value} hops were observed")
    elif planned.nodes() != observed.nodes():
        differences.append(
            f"planned nodes {' -> '.join(planned.nodes())}, observed "
            f"{' -> '.join(observed.nodes())}"
        )
    else:
        for plan, seen in zip(plan_hops, seen_hops, strict=True):
            if plan.segments != seen.segments:
                differences.append(f"planned {_hop_text(plan)}, observed {_hop_text(seen)}")
    return Comparison(planned.traffic, planned, observed, tuple(differences))
