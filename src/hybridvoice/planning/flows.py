"""Seed 002's call flows derived from its six principles (:mod:`.principles`).

:func:`derive` takes a :class:`~.principles.Scenario` (a deployment, what the parties do,
where each is homed and sits, the conference's host, whether a firewall blocks direct media)
and applies the principles leg by leg: signalling to the user's home server or the
conference's server (principles 1 and 4), conference media to the hosting server through the
edges principles 2, 5 and 6 name, peer-to-peer media direct or relayed by the edges the
parties' homes offer (principle 3), PSTN media to where the deployment breaks out to the
telephone network (through the Cloud Connector the same way as hybridvoice's own
:func:`~.callflow.plan_pstn`). Each leg gets its :func:`~.principles.route`; a
:class:`Cell` then summarises the legs the way the seed's tables do:

* signalling is per party (each party signals to its own server): one route when every party
  agrees, else one per party;
* a media path is summarised by the routes it crosses outside an organisation's network:
  none -> local, one -> that route, several -> per party (each party's leg to the relay);
* alternatives (ICE offering edges of both homes) are kept as options with their condition.

The seed's summary disagrees with its own prose in one row, the Cloud Connector PSTN call of
an internal user: the table says signalling is "local", the prose says it turns in the cloud
and ends in the Cloud Connector. The model reproduces the table and says which leg the table
describes (:func:`cce_summary_note`). Pure: no I/O.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import MappingProxyType

from hybridvoice.planning.callflow import ClientLocation
from hybridvoice.planning.principles import (
    Deployment,
    Edge,
    Home,
    Host,
    Kind,
    Party,
    Place,
    Principle,
    Route,
    Scenario,
    edge_place,
    route,
)
from hybridvoice.planning.segments import Traffic

__all__ = ["Cell", "Flow", "Leg", "Option", "PartyRoute", "cce_summary_note", "derive"]


def cce_summary_note(client_route: Route) -> str:
    """Why seed 002's Cloud Connector table says "local" for an internal user's signalling."""
    over = "the peering link" if client_route is Route.PEERING else "the internet"
    return (
        "seed 002's Cloud Connector table calls this signalling 'local': it describes the Cloud "
        f"Connector's own legs to the gateway; the client's leg goes to the cloud over {over}, "
        "turns there and ends in the Cloud Connector (the seed's prose)"
    )


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a path: whose traffic, between which nodes, by which route, and why."""

    party: str  # whose traffic ("" for a leg between servers)
    source: str
    target: str
    source_place: Place
    target_place: Place
    route: Route
    principle: Principle | None = None  # the principle that chose this leg, if one did
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PartyRoute:
    """The route one party's traffic takes ("" party: every party's)."""

    party: str
    route: Route
    via: str = ""  # the relay the media goes to, when one does ("online edge")


@dataclass(frozen=True, slots=True)
class Option:
    """One way the traffic can go, with the condition that selects it ("" if unconditional)."""

    routes: tuple[PartyRoute, ...]
    legs: tuple[Leg, ...]
    condition: str = ""

    def compact(self) -> str | dict[str, str]:
        if len(self.routes) == 1 and not self.routes[0].party:
            return self.routes[0].route.value
        return {entry.party: entry.route.value for entry in self.routes}


@dataclass(frozen=True, slots=True)
class Cell:
    """What the model says for one traffic type of one scenario, as a table cell and legs."""

    traffic: Traffic
    options: tuple[Option, ...]
    described: str  # which legs the summary describes
    note: str = ""  # where the seed's summary describes other legs than the rest of the table

    def compact(self) -> str | dict[str, str] | list[dict[str, object]]:
        """The cell as seed 002 writes it: a route, routes per party, or alternatives."""
        if len(self.options) == 1:
            return self.options[0].compact()
        return [{"route": opt.compact(), "condition": opt.condition} for opt in self.options]

    def legs(self) -> tuple[Leg, ...]:
        return tuple(leg for option in self.options for leg in option.legs)


@dataclass(frozen=True, slots=True)
class Flow:
    """Both paths of one scenario."""

    scenario: Scenario
    signalling: Cell
    media: Cell


def _leg(
    s: Scenario,
    party: str,
    hop: tuple[str, Place, str, Place],
    principle: Principle | None = None,
    reason: str = "",
) -> Leg:
    source, source_place, target, target_place = hop
    way = route(source_place, target_place, peering=s.peering)
    return Leg(party, source, target, source_place, target_place, way, principle, reason)


def _chain(
    s: Scenario,
    party: str,
    nodes: tuple[tuple[str, Place], ...],
    principle: Principle | None,
    reason: str,
) -> tuple[Leg, ...]:
    return tuple(
        _leg(s, party, (a, a_place, b, b_place), principle, reason)
        for (a, a_place), (b, b_place) in itertools.pairwise(nodes)
    )


def _outside(legs: tuple[Leg, ...]) -> tuple[Route, ...]:
    """The routes `legs` cross outside an organisation's (and the cloud's) network, in order."""
    seen: list[Route] = []
    for leg in legs:
        if leg.route in (Route.PEERING, Route.INTERNET) and leg.route not in seen:
            seen.append(leg.route)
    return tuple(seen)


def _first_out(legs: tuple[Leg, ...]) -> Route:
    outside = _outside(legs)
    return outside[0] if outside else Route.LOCAL


# -- signalling (principles 1 and 4) -------------------------------------------------------


#: Where each conference host's server is, and the edge in front of it (principle 1).
_CONFERENCE_SERVERS = MappingProxyType(
    {
        Host.ONLINE: ("conference server (online)", Place.CLOUD, None),
        Host.ON_PREMISES: ("conference server (on-premises)", Place.CUSTOMER, Edge.ON_PREMISES),
        Host.OTHER_COMPANY: ("conference server (other company)", Place.OTHER, Edge.OTHER_COMPANY),
    }
)


def _server(s: Scenario, party: Party) -> tuple[str, Place, Edge | None, Principle]:
    """The server a party signals to, its place, the edge in front of it, and why."""
    if s.kind is Kind.CONFERENCE:
        assert s.host is not None  # Scenario checks it
        name, place, edge = _CONFERENCE_SERVERS[s.host]
        return name, place, edge, Principle.CONFERENCE_HOME
    if party.home is Home.ONLINE:
        return "home server (online)", Place.CLOUD, None, Principle.SIGNALLING_HOME
    edge = Edge.OTHER_COMPANY if party.federated else Edge.ON_PREMISES
    return "home server (on-premises)", party.network, edge, Principle.SIGNALLING_HOME


def _client_signalling(s: Scenario, party: Party) -> tuple[Leg, ...]:
    name, place, edge, principle = _server(s, party)
    nodes: tuple[tuple[str, Place], ...] = ((party.name, party.place),)
    if edge is not None and party.place is not place:
        nodes += ((edge.value, edge_place(edge)),)  # principle 4: through the edge
    nodes += ((name, place),)
    reason = (
        "joins the conference at its host's server"
        if s.kind is Kind.CONFERENCE
        else "signals to its home server"
    )
    return _chain(s, party.name, nodes, principle, reason)


def _pstn_signalling(s: Scenario, party: Party, client_legs: tuple[Leg, ...]) -> tuple[Leg, ...]:
    """The legs after the home server: to where the deployment meets the telephone network."""
    home = client_legs[-1]
    if s.deployment is Deployment.ONLINE:
        nodes: tuple[tuple[str, Place], ...] = (
            (home.target, home.target_place),
            ("PSTN (Cloud PBX)", Place.CLOUD),
        )
        return _chain(s, "", nodes, None, "the cloud breaks out to the PSTN")
    nodes = ((home.target, home.target_place),)
    if s.deployment is Deployment.CLOUD_CONNECTOR:
        nodes += ((Edge.CLOUD_CONNECTOR.value, Place.CUSTOMER),)
    nodes += (("mediation", Place.CUSTOMER), ("gateway", Place.CUSTOMER))
    return _chain(s, "", nodes, None, "the home server routes the number to its PSTN site")


def _signalling(s: Scenario) -> Cell:
    client_legs = {party.name: _client_signalling(s, party) for party in s.parties}
    routes = tuple(PartyRoute(p.name, _first_out(client_legs[p.name])) for p in s.parties)
    legs = tuple(leg for party in s.parties for leg in client_legs[party.name])
    described = "each party's leg to the server it signals to"
    note = ""
    if s.kind is Kind.PSTN:
        party = s.parties[0]
        onward = _pstn_signalling(s, party, client_legs[party.name])
        legs += onward
        if s.deployment is Deployment.CLOUD_CONNECTOR and party.place is Place.CUSTOMER:
            trunk = tuple(leg for leg in onward if leg.source_place is Place.CUSTOMER)
            routes = (PartyRoute(party.name, _first_out(trunk)),)
            described = "the Cloud Connector's legs to the gateway"
            note = cce_summary_note(_first_out(client_legs[party.name]))
    if len({(r.route, r.via) for r in routes}) == 1:
        routes = (PartyRoute("", routes[0].route, routes[0].via),)
    return Cell(Traffic.SIGNALLING, (Option(routes, legs),), described, note)


# -- media (principles 2, 3, 5 and 6) ------------------------------------------------------


def _summarise_media(legs: tuple[Leg, ...], via: str = "") -> tuple[PartyRoute, ...]:
    outside = _outside(legs)
    if len(outside) <= 1:
        return (PartyRoute("", outside[0] if outside else Route.LOCAL, via),)
    parties = dict.fromkeys(leg.party for leg in legs if leg.party)
    if len(parties) < 2:  # one party's media crosses two routes: name them per leg
        return tuple(
            PartyRoute(f"{leg.source} -> {leg.target}", leg.route, via)
            for leg in legs
            if leg.route in outside
        )
    return tuple(
        PartyRoute(name, _first_out(tuple(leg for leg in legs if leg.party == name)), via)
        for name in parties
    )


def _p2p_media(s: Scenario) -> tuple[Option, ...]:
    a, b = s.parties
    if not s.firewall_blocks_p2p:
        direct = (
            _leg(s, a.name, (a.name, a.place, b.name, b.place), Principle.PEER_MEDIA, "direct"),
        )
        return (Option(_summarise_media(direct), direct),)
    edges = tuple(dict.fromkeys((a.edge, b.edge)))  # ICE offers the edge of each home
    options: list[Option] = []
    for edge in edges:
        at = edge_place(edge)
        why = f"a firewall blocks the direct path: the {edge.value} relays"
        legs = (
            _leg(s, a.name, (a.name, a.place, edge.value, at), Principle.PEER_MEDIA, why),
            _leg(s, b.name, (edge.value, at, b.name, b.place), Principle.PEER_MEDIA, why),
        )
        condition = f"the {edge.value} relays the media" if len(edges) > 1 else ""
        options.append(Option(_summarise_media(legs, edge.value), legs, condition))
    return tuple(options)


def _conference_media(s: Scenario) -> tuple[Option, ...]:
    party = s.parties[0]
    name, place, edge, _ = _server(s, party)
    nodes: tuple[tuple[str, Place], ...] = ((party.name, party.place),)
    if s.host is Host.ONLINE:
        principle, why = Principle.ONLINE_CONFERENCE_EDGE, "online conferences always use an edge"
        if s.own_edge_relays:  # the seed's "on-premises edge with online conferences"
            why += "; the direct path is blocked, the user's on-premises edge relays first"
            nodes += ((Edge.ON_PREMISES.value, party.network),)
        nodes += ((Edge.ONLINE.value, Place.CLOUD),)
    elif party.place is place:
        principle, why = Principle.ON_PREMISES_CONFERENCE_EDGE, "inside the host's network"
    else:
        principle, why = Principle.ON_PREMISES_CONFERENCE_EDGE, "outside the host's network"
        assert edge is not None
        nodes += ((edge.value, edge_place(edge)),)
    nodes += ((name, place),)
    legs = _chain(s, party.name, nodes, principle, why)
    return (Option(_summarise_media(legs), legs),)


def _pstn_media(s: Scenario) -> tuple[Option, ...]:
    party = s.parties[0]
    nodes: tuple[tuple[str, Place], ...] = ((party.name, party.place),)
    internal = party.location is ClientLocation.INTERNAL
    if s.deployment is Deployment.ONLINE:
        if not internal:
            nodes += ((Edge.ONLINE.value, Place.CLOUD),)
        nodes += (("PSTN (Cloud PBX)", Place.CLOUD),)
        legs = _chain(s, party.name, nodes, None, "the cloud terminates PSTN media")
        return (Option(_summarise_media(legs), legs),)
    edge = Edge.CLOUD_CONNECTOR if s.deployment is Deployment.CLOUD_CONNECTOR else Edge.ON_PREMISES
    if not internal:
        nodes += ((edge.value, Place.CUSTOMER),)  # internet clients reach the site's relay
        why = "internet clients never bypass: their media goes through the edge's relay"
    elif s.bypass:
        why = "media bypass: an internal client sends its media straight to the gateway"
    else:
        why = "media goes through mediation (no bypass)"
    if internal and s.bypass:
        nodes += (("gateway", Place.CUSTOMER),)
    else:
        nodes += (("mediation", Place.CUSTOMER), ("gateway", Place.CUSTOMER))
    legs = _chain(s, party.name, nodes, None, why)
    return (Option(_summarise_media(legs), legs),)


def _media(s: Scenario) -> Cell:
    if s.kind is Kind.P2P:
        options = _p2p_media(s)
        described = "the media path between the two clients"
    elif s.kind is Kind.CONFERENCE:
        options = _conference_media(s)
        described = "the client's media to the conference server"
    else:
        options = _pstn_media(s)
        described = "the client's media to the gateway"
    return Cell(Traffic.MEDIA, options, described)


def derive(scenario: Scenario) -> Flow:
    """Apply the principles to `scenario`: its signalling and media, leg by leg and summarised."""
    return Flow(scenario, _signalling(scenario), _media(scenario))
