"""The six call-flow principles of seed 002, and the small model of deployments they act on.

Seed 002 ("call flows with ExpressRoute", Skype for Business Online, Hybrid and Cloud
Connector) explains every call flow from six principles (translated):

1. A conference is hosted where its organiser's home is: in the cloud for an online
   organiser, in an on-premises data centre for an on-premises organiser.
2. Media sent from a client to a hosted conference always goes to the server hosting it
   (on-premises or online); online conferences always use an edge for the media.
3. Peer-to-peer media takes the most direct path available: straight to the remote client,
   or, when that path is not available (a firewall blocks it), relayed by one or more edges.
4. Signalling always goes to the server where the user is homed (online or on-premises); an
   edge is used when the client cannot reach the front end directly.
5. Users joining an online conference always use an edge (or two, if the client's firewall
   needs it).
6. Users joining an on-premises conference from inside the network of that deployment use
   no edge; from outside it, one or two.

This module holds the vocabulary (deployments, parties and their homes, conference hosts,
edges, the places a node sits in) and the one rule of the network underneath: which route a
packet takes between two places (:func:`route`). :mod:`.flows` applies the principles to a
:class:`Scenario` and derives its signalling and media paths. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from hybridvoice.planning.callflow import ClientLocation

__all__ = [
    "PRINCIPLES",
    "Deployment",
    "Edge",
    "Home",
    "Host",
    "Kind",
    "Party",
    "Place",
    "Principle",
    "Route",
    "Scenario",
    "ScenarioError",
    "edge_place",
    "route",
]


class ScenarioError(ValueError):
    """A scenario the model cannot place: the message names the field and the reason."""


class Principle(IntEnum):
    """Seed 002's six principles, by number."""

    CONFERENCE_HOME = 1
    CONFERENCE_MEDIA = 2
    PEER_MEDIA = 3
    SIGNALLING_HOME = 4
    ONLINE_CONFERENCE_EDGE = 5
    ON_PREMISES_CONFERENCE_EDGE = 6


PRINCIPLES = MappingProxyType(
    {
        Principle.CONFERENCE_HOME: "a conference is hosted where its organiser is homed",
        Principle.CONFERENCE_MEDIA: "conference media goes to the server hosting the "
        "conference; online conferences always use an edge for media",
        Principle.PEER_MEDIA: "peer-to-peer media takes the most direct path; edges relay "
        "it when a firewall blocks the direct path",
        Principle.SIGNALLING_HOME: "signalling goes to the server the user is homed on, "
        "through an edge when the client cannot reach it directly",
        Principle.ONLINE_CONFERENCE_EDGE: "users joining an online conference always use an edge",
        Principle.ON_PREMISES_CONFERENCE_EDGE: "users joining an on-premises conference use no "
        "edge from inside that deployment's network, one from outside it",
    }
)


class Deployment(StrEnum):
    """The three deployments of seed 002's tables."""

    ONLINE = "online"  # every user online, PSTN from the cloud (Cloud PBX)
    HYBRID = "hybrid"  # some users homed on premises, PSTN from the on-premises servers
    CLOUD_CONNECTOR = "cloud-connector"  # every user online, PSTN through a Cloud Connector


class Home(StrEnum):
    """Where a user is homed (its registrar and front end)."""

    ONLINE = "online"
    ON_PREMISES = "on-premises"


class Host(StrEnum):
    """Where a conference is hosted (principle 1: by its organiser's home)."""

    ONLINE = "online"
    ON_PREMISES = "on-premises"  # the customer's own on-premises servers
    OTHER_COMPANY = "other-company"  # another company's on-premises servers


class Kind(StrEnum):
    """What the parties do."""

    P2P = "p2p"  # a call between two clients
    CONFERENCE = "conference"  # a client joins a hosted conference
    PSTN = "pstn"  # a client calls a telephone number


class Place(StrEnum):
    """Where a node sits, from the point of view of the customer whose plan this is."""

    CUSTOMER = "customer"  # the customer's own network (offices, DMZ, data centres)
    INTERNET = "internet"  # a client on the internet (a café, a hotel)
    CLOUD = "cloud"  # the cloud provider's network
    OTHER = "other"  # another company's network (a federated partner's, a conference host's)


class Route(StrEnum):
    """How traffic between two places travels: what a cell of seed 002's tables names."""

    LOCAL = "local"  # it stays in one organisation's network
    PEERING = "peering"  # the private peering link to the cloud (ExpressRoute)
    INTERNET = "internet"
    CLOUD = "cloud"  # inside the cloud provider's network (never named in a table)


class Edge(StrEnum):
    """The edges a flow can use."""

    ONLINE = "online edge"  # the cloud's edge
    ON_PREMISES = "on-premises edge"  # the edge of an on-premises deployment
    OTHER_COMPANY = "other company's edge"  # the edge of another company's on-premises servers
    CLOUD_CONNECTOR = "Cloud Connector edge"  # the edge role of a Cloud Connector appliance


def edge_place(edge: Edge) -> Place:
    """Where an edge sits: the online edge in the cloud, the others in their owner's network."""
    if edge is Edge.ONLINE:
        return Place.CLOUD
    if edge is Edge.OTHER_COMPANY:
        return Place.OTHER
    return Place.CUSTOMER


def route(source: Place, target: Place, *, peering: bool) -> Route:
    """The route between two places (the network under every principle).

    An organisation's network reaches the cloud over its peering link when it has one, else
    over the internet (seed 002's tables assume every organisation in a flow has one); two
    different organisations' networks, and a client on the internet, meet over the internet.
    """
    if source is target:
        if source is Place.CLOUD:
            return Route.CLOUD
        return Route.INTERNET if source is Place.INTERNET else Route.LOCAL
    ends = {source, target}
    if Place.CLOUD in ends and Place.INTERNET not in ends:
        return Route.PEERING if peering else Route.INTERNET
    return Route.INTERNET


@dataclass(frozen=True, slots=True)
class Party:
    """A user in a flow: whose user, where homed, where the client is."""

    name: str  # how the tables name it: "internal user", "online user", "federated user"
    home: Home = Home.ONLINE
    location: ClientLocation = ClientLocation.INTERNAL
    federated: bool = False  # a user of another company (its network is Place.OTHER)

    @property
    def place(self) -> Place:
        if self.location is ClientLocation.INTERNET:
            return Place.INTERNET
        return Place.OTHER if self.federated else Place.CUSTOMER

    @property
    def network(self) -> Place:
        """The network of the party's own organisation (where its on-premises servers are)."""
        return Place.OTHER if self.federated else Place.CUSTOMER

    @property
    def home_place(self) -> Place:
        return Place.CLOUD if self.home is Home.ONLINE else self.network

    @property
    def edge(self) -> Edge:
        """The edge the party's home offers (an ICE relay candidate, principle 3)."""
        if self.home is Home.ONLINE:
            return Edge.ONLINE
        return Edge.OTHER_COMPANY if self.federated else Edge.ON_PREMISES


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row of seed 002's tables, as the model's input."""

    deployment: Deployment
    kind: Kind
    parties: tuple[Party, ...]
    host: Host | None = None  # the conference's host (Kind.CONFERENCE only)
    firewall_blocks_p2p: bool = False  # a firewall blocks direct client-to-client media
    peering: bool = True  # the tables assume every organisation has a peering link
    bypass: bool = False  # media bypass for PSTN calls (Cloud Connector, hybridvoice)
    # A firewall blocks an on-premises user's direct path to an online conference: the
    # user's own on-premises edge relays the media (seed 002's fourth example flow).
    own_edge_relays: bool = False

    def __post_init__(self) -> None:
        expected = 2 if self.kind is Kind.P2P else 1
        if len(self.parties) != expected:
            raise ScenarioError(
                f"parties: a {self.kind.value} scenario has {expected} "
                f"part{'ies' if expected > 1 else 'y'}, not {len(self.parties)}"
            )
        if (self.kind is Kind.CONFERENCE) != (self.host is not None):
            raise ScenarioError("host: a conference needs its host, other scenarios have none")
        if self.deployment is not Deployment.HYBRID:
            for party in self.parties:
                if party.home is Home.ON_PREMISES and not party.federated:
                    raise ScenarioError(
                        f"parties: {party.name!r} is homed on premises, which only a hybrid "
                        f"deployment has (this one is {self.deployment.value})"
                    )
        if self.own_edge_relays and (
            self.host is not Host.ONLINE or self.parties[0].home is not Home.ON_PREMISES
        ):
            raise ScenarioError(
                "own_edge_relays: only an on-premises user joining an online conference has "
                "an on-premises edge to relay its media"
            )
        if self.host is Host.ON_PREMISES and self.deployment is not Deployment.HYBRID:
            raise ScenarioError("host: only a hybrid deployment hosts conferences on premises")
