"""Properties of the call-flow model over every scenario it accepts (hypothesis): any scenario
either derives or is refused with a ScenarioError naming its field; each party's legs form
one unbroken chain; without peering no leg takes the peering route; a cell's compact form is
plain JSON; media of two clients inside one network, no firewall between them, stays local."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.planning.callflow import ClientLocation
from hybridvoice.planning.flows import Flow, derive
from hybridvoice.planning.principles import (
    Deployment,
    Home,
    Host,
    Kind,
    Party,
    Route,
    Scenario,
    ScenarioError,
)

parties = st.builds(
    Party,
    name=st.sampled_from(["a", "b"]),
    home=st.sampled_from(list(Home)),
    location=st.sampled_from(list(ClientLocation)),
    federated=st.booleans(),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario | ScenarioError:
    kind = draw(st.sampled_from(list(Kind)))
    count = 2 if kind is Kind.P2P else 1
    if draw(st.integers(0, 9)) == 0:  # now and then the wrong number of parties
        count = 3 - count
    people = (draw(parties), draw(parties))[:count]
    if count == 2:
        people = (people[0], Party("b", people[1].home, people[1].location, people[1].federated))
        people = (Party("a", people[0].home, people[0].location, people[0].federated), people[1])
    try:
        return Scenario(
            draw(st.sampled_from(list(Deployment))),
            kind,
            people,
            host=draw(st.sampled_from(list(Host)))
            if (kind is Kind.CONFERENCE) != draw(st.integers(0, 9).map(lambda n: n == 0))
            else None,
            firewall_blocks_p2p=draw(st.booleans()),
            peering=draw(st.booleans()),
            bypass=draw(st.booleans()),
            own_edge_relays=draw(st.integers(0, 5).map(lambda n: n == 0)),
        )
    except ScenarioError as exc:
        return exc


def _chains_unbroken(flow: Flow) -> None:
    for cell in (flow.signalling, flow.media):
        for option in cell.options:
            by_party: dict[str, list[tuple[str, str]]] = {}
            for leg in option.legs:
                by_party.setdefault(leg.party, []).append((leg.source, leg.target))
            for party, hops in by_party.items():
                if not party or len(hops) < 2:
                    continue
                assert all(a[1] == b[0] for a, b in itertools.pairwise(hops)), hops


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_scenario_derives_or_names_its_field(scenario: Scenario | ScenarioError) -> None:
    if isinstance(scenario, ScenarioError):
        field = str(scenario).split(":")[0]
        assert field in {"parties", "host", "own_edge_relays"}, scenario
        return
    flow = derive(scenario)
    _chains_unbroken(flow)
    for cell in (flow.signalling, flow.media):
        json.dumps(cell.compact())
        assert cell.options and all(option.routes for option in cell.options)
        if not scenario.peering:
            assert Route.PEERING not in {leg.route for leg in cell.legs()}


@given(st.sampled_from(list(Deployment)), st.booleans())
def test_two_internal_clients_without_a_firewall_talk_directly(
    deployment: Deployment, peering: bool
) -> None:
    flow = derive(Scenario(deployment, Kind.P2P, (Party("a"), Party("b")), peering=peering))
    assert flow.media.compact() == "local"
