"""hybridvoice's own PSTN call paths, hop by hop and segment by segment.

ARCHITECTURE.md, "Call paths": an outbound PSTN call signals client -> online proxy -> edge
-> mediation -> gateway. Its media flows client <-> mediation <-> gateway for an internal
client; with media bypass (internal clients only) client <-> gateway; an internet client's
media goes through the edge's relay: client <-> edge <-> mediation <-> gateway. Internet
clients never bypass. Each node sits in one network segment (:mod:`.segments`): the online
service in the cloud, the appliance's edge, mediation and the gateway in the customer's
network (the edge in its DMZ), and the client in the customer's network or on the internet.

Pure: the model is computed from its three inputs, with no I/O.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from hybridvoice.planning.segments import Segment, Traffic, crossing

__all__ = [
    "NODE_SEGMENTS",
    "ClientLocation",
    "Hop",
    "Path",
    "PstnFlow",
    "client_segment",
    "plan_pstn",
]


class ClientLocation(StrEnum):
    """Where the calling client is: inside the customer's network, or on the internet."""

    INTERNAL = "internal"
    INTERNET = "internet"


#: The segment of each fixed node (the client's depends on :class:`ClientLocation`).
NODE_SEGMENTS = MappingProxyType(
    {
        "online": Segment.CLOUD,
        "edge": Segment.CUSTOMER,  # the appliance's edge, in the customer's DMZ
        "mediation": Segment.CUSTOMER,
        "gateway": Segment.CUSTOMER,
    }
)


def client_segment(client: ClientLocation) -> Segment:
    """The segment a client in `client` sits in."""
    return Segment.CUSTOMER if client is ClientLocation.INTERNAL else Segment.INTERNET


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop between two nodes and the segments it crosses, in order."""

    source: str  # a node: "client", "online", "edge", "mediation", "gateway"
    target: str
    segments: tuple[Segment, ...]  # crossed from source to target, in order


@dataclass(frozen=True, slots=True)
class Path:
    """The hops of one kind of traffic, in order from the client."""

    traffic: Traffic
    hops: tuple[Hop, ...]

    def segments(self) -> tuple[Segment, ...]:
        """The segments crossed along the whole path, in order, consecutive repeats merged."""
        merged: list[Segment] = []
        for hop in self.hops:
            for segment in hop.segments:
                if not merged or merged[-1] is not segment:
                    merged.append(segment)
        return tuple(merged)

    def nodes(self) -> tuple[str, ...]:
        """The nodes along the path, in order (the first hop's source first)."""
        if not self.hops:
            return ()
        return (self.hops[0].source, *(hop.target for hop in self.hops))


@dataclass(frozen=True, slots=True)
class PstnFlow:
    """The signalling and media paths of one outbound PSTN call."""

    signalling: Path
    media: Path
    bypassed: bool = False  # True when the media goes straight from the client to the gateway


def _segment_of(node: str, client: ClientLocation) -> Segment:
    return client_segment(client) if node == "client" else NODE_SEGMENTS[node]


def _path(traffic: Traffic, nodes: tuple[str, ...], client: ClientLocation, peering: bool) -> Path:
    hops = tuple(
        Hop(
            source,
            target,
            crossing(_segment_of(source, client), _segment_of(target, client), peering=peering),
        )
        for source, target in itertools.pairwise(nodes)
    )
    return Path(traffic, hops)


def media_nodes(*, client: ClientLocation, bypass: bool) -> tuple[str, ...]:
    """The nodes the media of a PSTN call passes, from the client to the gateway."""
    if client is ClientLocation.INTERNET:
        return ("client", "edge", "mediation", "gateway")  # internet clients never bypass
    if bypass:
        return ("client", "gateway")
    return ("client", "mediation", "gateway")


def plan_pstn(*, client: ClientLocation, peering: bool, bypass: bool) -> PstnFlow:
    """hybridvoice's own PSTN call paths (ARCHITECTURE.md "Call paths").

    Signalling client -> online -> edge -> mediation -> gateway; media internal+bypass:
    client -> gateway; internal without bypass: client -> mediation -> gateway; internet
    client (never bypasses, whatever `bypass` says): client -> edge -> mediation -> gateway.
    """
    signalling = _path(
        Traffic.SIGNALLING, ("client", "online", "edge", "mediation", "gateway"), client, peering
    )
    nodes = media_nodes(client=client, bypass=bypass)
    return PstnFlow(
        signalling=signalling,
        media=_path(Traffic.MEDIA, nodes, client, peering),
        bypassed=nodes == ("client", "gateway"),
    )
