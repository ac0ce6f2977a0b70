"""A call-flow plan for ``hybridvoice plan callflow``: paths by segment, and why.

For the PSTN scenario the paths are hybridvoice's own (:func:`~.callflow.plan_pstn`); the
peer-to-peer and conference scenarios are those of seed 002 for a Cloud Connector deployment
(every user online: "for scenarios other than PSTN calls the flow is exactly as for Skype for
Business Online"), derived from the principles (:func:`~.flows.derive`) and placed in the
four segments. Each choice comes with a one-line reason. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from hybridvoice.planning.callflow import ClientLocation, Hop, Path, plan_pstn
from hybridvoice.planning.flows import Cell, Leg, derive
from hybridvoice.planning.principles import (
    PRINCIPLES,
    Deployment,
    Host,
    Kind,
    Party,
    Place,
    Principle,
    Scenario,
)
from hybridvoice.planning.segments import Segment, Traffic, crossing

__all__ = ["CallflowPlan", "PlanScenario", "plan_callflow", "plan_data"]


class PlanScenario(StrEnum):
    """The scenarios ``plan callflow`` answers."""

    PSTN = "pstn"  # hybridvoice's own PSTN call (a Cloud Connector deployment)
    P2P = "p2p"  # the client calls a colleague inside the customer's network
    CONFERENCE = "conference"  # the client joins a conference an online user organised


@dataclass(frozen=True, slots=True)
class CallflowPlan:
    """Both paths of one scenario, the seed-style summary, and the reasons."""

    scenario: PlanScenario
    client: ClientLocation
    peering: bool
    bypass: bool  # as asked
    signalling: Path
    media: Path
    summary: dict[str, object]  # traffic -> the seed-style cell (route, per party, options)
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()  # where the answer differs from what was asked
    describes: dict[str, str] = field(default_factory=dict)  # traffic -> the legs summarised

    @property
    def bypassed(self) -> bool:
        return self.media.nodes() in (("client", "gateway"),)


def _why(principle: Principle) -> str:
    return f"principle {int(principle)}: {PRINCIPLES[principle]}"


def _peering_reason(peering: bool) -> str:
    if peering:
        return "peering: traffic between the customer network and the cloud takes the private link"
    return "no peering: traffic between the customer network and the cloud crosses the internet"


def _pstn(client: ClientLocation, peering: bool, bypass: bool) -> CallflowPlan:
    flow = plan_pstn(client=client, peering=peering, bypass=bypass)
    internet = client is ClientLocation.INTERNET
    reasons = [
        _why(Principle.SIGNALLING_HOME) + " (the online service, in the cloud)",
        "the online service routes the number to the PSTN site: its edge, then mediation, "
        "then the gateway",
        _peering_reason(peering),
    ]
    notes: list[str] = []
    if internet:
        reasons.append(
            "internet clients never bypass: media goes through the edge's relay to mediation"
        )
        if bypass:
            notes.append("--bypass yes does not apply: internet clients never bypass")
    elif flow.bypassed:
        reasons.append("media bypass: the internal client sends media straight to the gateway")
    else:
        reasons.append("no bypass: mediation relays the media between the client and gateway")
    reasons.append("PSTN media never enters the cloud: the online service carries signalling only")
    scenario = Scenario(
        Deployment.CLOUD_CONNECTOR,
        Kind.PSTN,
        (Party("client", location=client),),
        peering=peering,
        bypass=bypass,
    )
    cells = derive(scenario)
    summary = _summary(cells.signalling, cells.media)
    if cells.signalling.note:
        notes.append(f"signalling summary: {cells.signalling.note}")
    return CallflowPlan(
        PlanScenario.PSTN,
        client,
        peering,
        bypass,
        flow.signalling,
        flow.media,
        summary,
        tuple(reasons),
        tuple(notes),
        _describes(cells.signalling, cells.media),
    )


def _summary(signalling: Cell, media: Cell) -> dict[str, object]:
    return {Traffic.SIGNALLING.value: signalling.compact(), Traffic.MEDIA.value: media.compact()}


def _describes(signalling: Cell, media: Cell) -> dict[str, str]:
    return {Traffic.SIGNALLING.value: signalling.described, Traffic.MEDIA.value: media.described}


_SEGMENT_OF_PLACE = MappingProxyType(
    {Place.CUSTOMER: Segment.CUSTOMER, Place.INTERNET: Segment.INTERNET, Place.CLOUD: Segment.CLOUD}
)


def _node(name: str, client: Party) -> str:
    if name == client.name:
        return "client"
    return name.replace("home server (online)", "online").replace(
        "conference server (online)", "online conference"
    )


def _path(traffic: Traffic, legs: tuple[Leg, ...], client: Party, peering: bool) -> Path:
    hops = tuple(
        Hop(
            _node(leg.source, client),
            _node(leg.target, client),
            crossing(
                _SEGMENT_OF_PLACE[leg.source_place],
                _SEGMENT_OF_PLACE[leg.target_place],
                peering=peering,
            ),
        )
        for leg in legs
    )
    return Path(traffic, hops)


def _derived(
    kind: PlanScenario, client: ClientLocation, peering: bool, bypass: bool
) -> CallflowPlan:
    me = Party("client", location=client)
    if kind is PlanScenario.P2P:
        blocked = client is ClientLocation.INTERNET
        scenario = Scenario(
            Deployment.CLOUD_CONNECTOR,
            Kind.P2P,
            (me, Party("colleague")),
            firewall_blocks_p2p=blocked,  # the seed's assumption for an internet peer
            peering=peering,
        )
        media_reason = _why(Principle.PEER_MEDIA) + (
            " (a firewall blocks the direct path: the online edge relays)"
            if blocked
            else " (both clients are inside: direct)"
        )
    else:
        scenario = Scenario(
            Deployment.CLOUD_CONNECTOR, Kind.CONFERENCE, (me,), host=Host.ONLINE, peering=peering
        )
        media_reason = _why(Principle.ONLINE_CONFERENCE_EDGE)
    flow = derive(scenario)
    signalling_reason = (
        _why(Principle.SIGNALLING_HOME)
        if kind is PlanScenario.P2P
        else _why(Principle.CONFERENCE_HOME)
    )
    notes = ("--bypass applies to PSTN calls only",) if bypass else ()
    return CallflowPlan(
        kind,
        client,
        peering,
        bypass,
        _path(Traffic.SIGNALLING, flow.signalling.legs(), me, peering),
        _path(Traffic.MEDIA, flow.media.legs(), me, peering),
        _summary(flow.signalling, flow.media),
        (signalling_reason, media_reason, _peering_reason(peering)),
        notes,
        _describes(flow.signalling, flow.media),
    )


def plan_callflow(
    scenario: PlanScenario, *, client: ClientLocation, peering: bool, bypass: bool
) -> CallflowPlan:
    """The plan of `scenario` for a client at `client`, with or without peering and bypass."""
    if scenario is PlanScenario.PSTN:
        return _pstn(client, peering, bypass)
    return _derived(scenario, client, peering, bypass)


def _path_data(path: Path) -> dict[str, object]:
    return {
        "hops": [
            {"from": hop.source, "to": hop.target, "segments": [s.value for s in hop.segments]}
            for hop in path.hops
        ],
        "segments": [s.value for s in path.segments()],
    }


def plan_data(plan: CallflowPlan) -> dict[str, object]:
    """`plan` as one JSON-ready object (``plan callflow --json``)."""
    return {
        "scenario": plan.scenario.value,
        "client": plan.client.value,
        "peering": plan.peering,
        "bypass": plan.bypass,
        "bypassed": plan.bypassed,
        "signalling": _path_data(plan.signalling),
        "media": _path_data(plan.media),
        "summary": plan.summary,
        "summary_describes": plan.describes,
        "reasons": list(plan.reasons),
        "notes": list(plan.notes),
    }
