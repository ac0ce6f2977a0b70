"""Seed 002's three summary tables (Online, Hybrid, Cloud Connector), row by row.

The tables are transcribed here as the expected data, in English, with the seed's Swedish cell
text in a comment; the model (planning.flows.derive, from the six principles) must reproduce
every row. Routes: "local" (stays in the organisation's network; the seed's "lokal"),
"peering" (the seed's "ExpressRoute"), "internet". A dict is a per-party cell; a list holds
alternatives with their condition. The seed's tables assume every organisation in a flow has
a peering link (peering=True throughout).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hybridvoice.planning.callflow import ClientLocation, plan_pstn
from hybridvoice.planning.flows import cce_summary_note, derive
from hybridvoice.planning.principles import (
    Deployment,
    Home,
    Host,
    Kind,
    Party,
    Place,
    Route,
    Scenario,
    ScenarioError,
)
from hybridvoice.planning.segments import Segment

ONLINE, HYBRID, CCE = Deployment.ONLINE, Deployment.HYBRID, Deployment.CLOUD_CONNECTOR
INTERNET = ClientLocation.INTERNET

Expected = str | dict[str, str] | list[dict[str, object]]


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    signalling: Expected
    media: Expected


def _p(name: str, **kw: object) -> Party:
    return Party(name, **kw)  # type: ignore[arg-type]


ROWS = {
    # -- Skype for Business Online -------------------------------------------------------
    # Peer-to-peer-samtal | Två klienter, båda i ditt nätverk. | ExpressRoute | lokal
    "online-row1-p2p-internal": Row(
        Scenario(ONLINE, Kind.P2P, (_p("user A"), _p("user B"))),
        signalling="peering",
        media="local",
    ),
    # Peer-to-peer-samtal | Två klienter, ett i ditt nätverk (intern) och den andra klienten på
    # internet (extern). | Intern användare: ExpressRoute / Extern användare: Internet |
    # Intern användare: ExpressRoute / Extern användare: Internet till Office 365 Edge-server.
    # Anm.: förutsätter att brandvägg blockerar direktanslutningar mellan klienter som kräver
    # en Online Edge server.
    "online-row2-p2p-internal-external": Row(
        Scenario(
            ONLINE,
            Kind.P2P,
            (_p("internal user"), _p("external user", location=INTERNET)),
            firewall_blocks_p2p=True,
        ),
        signalling={"internal user": "peering", "external user": "internet"},
        media={"internal user": "peering", "external user": "internet"},
    ),
    # Peer-to-peer-samtal till en användare i en federerad organisation | Två klienter, i ditt
    # nätverk (internt) och onlineanvändare i federerad organisations nätverk (federerat). |
    # ExpressRoute | ExpressRoute | Anm.: förutsätter brandvägg som blockerar
    # direktanslutningar mellan klienter, kräver Online Edge server.
    "online-row3-p2p-federated": Row(
        Scenario(
            ONLINE,
            Kind.P2P,
            (_p("internal user"), _p("federated user", federated=True)),
            firewall_blocks_p2p=True,
        ),
        signalling="peering",
        media="peering",
    ),
    # Anslut till konferenssamtal för användare i kundnätverk | Klient i ditt nätverk och
    # konferensserver i Office 365-molnet. | ExpressRoute | ExpressRoute
    "online-row4-conference-internal": Row(
        Scenario(ONLINE, Kind.CONFERENCE, (_p("internal user"),), host=Host.ONLINE),
        signalling="peering",
        media="peering",
    ),
    # Anslut till konferenssamtal för användare på internet | Klient på internet och
    # konferensserver i Office 365-molnet. | Internet | Internet
    "online-row5-conference-internet": Row(
        Scenario(
            ONLINE, Kind.CONFERENCE, (_p("external user", location=INTERNET),), host=Host.ONLINE
        ),
        signalling="internet",
        media="internet",
    ),
    # Anslut till konferens baserad på annat företags lokala server | Klient i ditt nätverk och
    # konferensserver i tredjepartsdatacenter. | Internet | Internet | Anm.: inga data passerar
    # genom Microsofts moln.
    "online-row6-conference-other-company": Row(
        Scenario(ONLINE, Kind.CONFERENCE, (_p("internal user"),), host=Host.OTHER_COMPANY),
        signalling="internet",
        media="internet",
    ),
    # PSTN-samtal | Klient i kundnätverk och Cloud PBX-servrar i Office 365-molnet |
    # ExpressRoute | ExpressRoute
    "online-row7-pstn-internal": Row(
        Scenario(ONLINE, Kind.PSTN, (_p("internal user"),)),
        signalling="peering",
        media="peering",
    ),
    # PSTN-samtal | Klient på internet och Cloud PBX-servrar i Office 365-molnet | Internet |
    # Internet | Anm.: ... även om en Online Edge-server behövs för anslutningen.
    "online-row8-pstn-internet": Row(
        Scenario(ONLINE, Kind.PSTN, (_p("external user", location=INTERNET),)),
        signalling="internet",
        media="internet",
    ),
    # -- Skype for Business Hybrid -------------------------------------------------------
    # Peer-to-peer-samtal | Två klienter, båda i kundens nätverk och lokalt baserade | Lokal |
    # lokal
    "hybrid-row1-p2p-on-premises": Row(
        Scenario(
            HYBRID,
            Kind.P2P,
            (_p("user A", home=Home.ON_PREMISES), _p("user B", home=Home.ON_PREMISES)),
        ),
        signalling="local",
        media="local",
    ),
    # Peer-to-peer-samtal | Två klienter, båda ansluter från kundnätverket. En är baserad
    # online, den andra är lokalt baserad. | Online-användare: ExpressRoute / Lokal användare:
    # lokal | lokal
    "hybrid-row2-p2p-online-and-on-premises": Row(
        Scenario(
            HYBRID,
            Kind.P2P,
            (_p("online user"), _p("on-premises user", home=Home.ON_PREMISES)),
        ),
        signalling={"online user": "peering", "on-premises user": "local"},
        media="local",
    ),
    # Peer-to-peer-samtal till en användare i en federerad organisation | Två klienter, lokal
    # användare i kundens nätverk (internt) och onlineanvändare i federerat företags nätverk
    # (federerat). | Intern användare: lokal / Federerad användare: ExpressRoute | Internet
    # eller ExpressRoute (beror på om en onlinebaserad eller lokal Edge-server används) |
    # Anm.: ICE-förhandling erbjuder både online- (onlineanvändare) och lokala Edge-servrar
    # (lokal användare) för anslutning.
    "hybrid-row3-p2p-federated": Row(
        Scenario(
            HYBRID,
            Kind.P2P,
            (
                _p("internal user", home=Home.ON_PREMISES),
                _p("federated user", federated=True),
            ),
            firewall_blocks_p2p=True,
        ),
        signalling={"internal user": "local", "federated user": "peering"},
        media=[
            {"route": "internet", "condition": "the on-premises edge relays the media"},
            {"route": "peering", "condition": "the online edge relays the media"},
        ],
    ),
    # Anslutning till konferenssamtal av användare i kundnätverk (konferens schemalagd av
    # Online-användare) | Lokal användare i ditt nätverk och konferensserver i Office
    # 365-molnet. | ExpressRoute | ExpressRoute
    "hybrid-row4-conference-online-organiser": Row(
        Scenario(
            HYBRID,
            Kind.CONFERENCE,
            (_p("on-premises user", home=Home.ON_PREMISES),),
            host=Host.ONLINE,
        ),
        signalling="peering",
        media="peering",
    ),
    # PSTN-samtal | Lokal användare i ditt nätverk och lokalt Skype för företag-datacenter. |
    # Lokal | Lokal
    "hybrid-row5-pstn-on-premises": Row(
        Scenario(HYBRID, Kind.PSTN, (_p("on-premises user", home=Home.ON_PREMISES),)),
        signalling="local",
        media="local",
    ),
    # -- Skype for Business with Cloud Connector -----------------------------------------
    # PSTN-samtal | Onlineanvändare i ditt nätverk via Cloud Connector Edition. | lokal | lokal
    # (the prose: "the signal turns in the Office 365 cloud and ends in the Cloud Connector")
    "cce-row1-pstn-internal": Row(
        Scenario(CCE, Kind.PSTN, (_p("online user"),)),
        signalling="local",
        media="local",
    ),
    # PSTN-samtal | Onlineanvändare som använder internet via Cloud Connector Edition. |
    # Internet | Internet | Anm.: internetanvändare ansluter via den Edge-server som ingår i
    # Cloud Connector.
    "cce-row2-pstn-internet": Row(
        Scenario(CCE, Kind.PSTN, (_p("online user", location=INTERNET),)),
        signalling="internet",
        media="internet",
    ),
}


@pytest.mark.parametrize("row_id", list(ROWS))
def test_row(row_id: str) -> None:
    row = ROWS[row_id]
    flow = derive(row.scenario)
    assert flow.signalling.compact() == row.signalling
    assert flow.media.compact() == row.media


def test_every_table_row_is_covered() -> None:
    tables = {name.split("-row")[0] for name in ROWS}
    assert tables == {"online", "hybrid", "cce"}
    assert sum(name.startswith("online-") for name in ROWS) == 8
    assert sum(name.startswith("hybrid-") for name in ROWS) == 5
    assert sum(name.startswith("cce-") for name in ROWS) == 2


def test_external_peer_media_goes_to_the_online_edge() -> None:
    # "Extern användare: Internet till Office 365 Edge-server."
    media = derive(ROWS["online-row2-p2p-internal-external"].scenario).media
    (option,) = media.options
    assert {entry.via for entry in option.routes} == {"online edge"}
    assert next(leg.target_place for leg in option.legs) is Place.CLOUD


def test_cce_internal_signalling_says_which_leg_the_summary_describes() -> None:
    flow = derive(ROWS["cce-row1-pstn-internal"].scenario)
    assert flow.signalling.note == cce_summary_note(Route.PEERING)
    assert "over the peering link" in flow.signalling.note
    without = Scenario(CCE, Kind.PSTN, (_p("online user"),), peering=False)
    assert "over the internet" in derive(without).signalling.note
    assert "Cloud Connector" in flow.signalling.described
    # The prose: the client's leg crosses the peering link and turns in the cloud.
    client_leg = flow.signalling.legs()[0]
    assert (client_leg.source_place, client_leg.route) == (Place.CUSTOMER, Route.PEERING)
    assert flow.signalling.legs()[-1].target == "gateway"
    # No other row needs such a note.
    others = [
        derive(row.scenario) for name, row in ROWS.items() if name != "cce-row1-pstn-internal"
    ]
    assert all(not flow.signalling.note and not flow.media.note for flow in others)


def _route_of(segments: tuple[Segment, ...]) -> Route:
    if Segment.PEERING in segments:
        return Route.PEERING
    if Segment.INTERNET in segments:
        return Route.INTERNET
    return Route.CLOUD if segments == (Segment.CLOUD,) else Route.LOCAL


@pytest.mark.parametrize("client", list(ClientLocation))
@pytest.mark.parametrize("peering", [True, False])
@pytest.mark.parametrize("bypass", [True, False])
def test_cloud_connector_rows_agree_with_hybridvoice_paths(
    client: ClientLocation, peering: bool, bypass: bool
) -> None:
    scenario = Scenario(
        CCE, Kind.PSTN, (_p("client", location=client),), peering=peering, bypass=bypass
    )
    flow = derive(scenario)
    ours = plan_pstn(client=client, peering=peering, bypass=bypass)
    for cell, path in ((flow.signalling, ours.signalling), (flow.media, ours.media)):
        assert [leg.route for leg in cell.legs()] == [_route_of(h.segments) for h in path.hops]
        assert len(cell.legs()) == len(path.hops)


def test_online_note_peering_to_online_edge_not_to_another_customers_edge() -> None:
    # Obs!: ExpressRoute används på mediavägen från användaren i ett företagsnätverk till en
    # Edge-server online, men används inte om Edge-servern för en annan kunds lokala
    # distribution används.
    to_online = derive(ROWS["online-row4-conference-internal"].scenario).media
    to_other = derive(ROWS["online-row6-conference-other-company"].scenario).media
    online_edge = [leg for leg in to_online.legs() if leg.target == "online edge"]
    other_edge = [leg for leg in to_other.legs() if leg.target == "other company's edge"]
    assert [leg.route for leg in online_edge] == [Route.PEERING]
    assert [leg.route for leg in other_edge] == [Route.INTERNET]
    assert Route.PEERING not in {leg.route for leg in to_other.legs()}


def test_without_peering_every_peering_route_becomes_internet() -> None:
    for row in ROWS.values():
        s = row.scenario
        without = Scenario(
            s.deployment, s.kind, s.parties, s.host, s.firewall_blocks_p2p, peering=False
        )
        for cell in (derive(without).signalling, derive(without).media):
            assert Route.PEERING not in {leg.route for leg in cell.legs()}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": Kind.P2P, "parties": (Party("a"),)}, "parties"),
        ({"kind": Kind.PSTN, "parties": (Party("a"), Party("b"))}, "parties"),
        ({"kind": Kind.CONFERENCE, "parties": (Party("a"),)}, "host"),
        ({"kind": Kind.PSTN, "parties": (Party("a"),), "host": Host.ONLINE}, "host"),
        ({"kind": Kind.PSTN, "parties": (Party("a", home=Home.ON_PREMISES),)}, "parties"),
        ({"kind": Kind.CONFERENCE, "parties": (Party("a"),), "host": Host.ON_PREMISES}, "host"),
    ],
)
def test_bad_scenarios_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScenarioError, match=f"^{field}: "):
        Scenario(ONLINE, **kwargs)  # type: ignore[arg-type]


def test_on_premises_edge_relays_media_to_an_online_conference() -> None:
    # "Lokal Edge-server med Office 365-baserade konferenser": a hybrid user on the internet
    # whose direct path is blocked; the on-premises edge relays, so the media comes back into
    # the customer network before it crosses the peering link to the cloud.
    user = Party("hybrid user", home=Home.ON_PREMISES, location=INTERNET)
    scenario = Scenario(HYBRID, Kind.CONFERENCE, (user,), host=Host.ONLINE, own_edge_relays=True)
    media = derive(scenario).media
    assert [(leg.target, leg.route) for leg in media.legs()] == [
        ("on-premises edge", Route.INTERNET),
        ("online edge", Route.PEERING),
        ("conference server (online)", Route.CLOUD),
    ]
    assert media.compact() == {
        "hybrid user -> on-premises edge": "internet",
        "on-premises edge -> online edge": "peering",
    }
    direct = derive(Scenario(HYBRID, Kind.CONFERENCE, (user,), host=Host.ONLINE)).media
    assert direct.compact() == "internet"


def test_own_edge_relays_needs_an_on_premises_user_and_an_online_conference() -> None:
    with pytest.raises(ScenarioError, match=r"^own_edge_relays: "):
        Scenario(ONLINE, Kind.CONFERENCE, (Party("a"),), host=Host.ONLINE, own_edge_relays=True)
