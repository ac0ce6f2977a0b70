"""The call-flow diagram (mgmt.callflow_svg): valid SVG for every scenario, each node inside
its segment's band, and a hop through a middle segment bending through that segment's band."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from hybridvoice.mgmt.callflow_svg import BANDS, callflow_svg
from hybridvoice.planning.callflow import ClientLocation
from hybridvoice.planning.explain import PlanScenario, plan_callflow
from hybridvoice.planning.segments import Segment

SVG = "{http://www.w3.org/2000/svg}"


def _inside(segment: Segment, x: float, y: float) -> bool:
    bx, by, bw, bh, _, _ = dict(BANDS)[segment]
    return bx <= x <= bx + bw and by <= y <= by + bh


def _draw(scenario: PlanScenario, client: ClientLocation, peering: bool) -> ET.Element:
    plan = plan_callflow(scenario, client=client, peering=peering, bypass=False)
    return ET.fromstring(callflow_svg((plan.signalling, plan.media), title="t <&> t"))


@pytest.mark.parametrize(
    ("scenario", "client", "peering"),
    list(itertools.product(list(PlanScenario), list(ClientLocation), [True, False])),
)
def test_nodes_sit_in_their_bands(
    scenario: PlanScenario, client: ClientLocation, peering: bool
) -> None:
    root = _draw(scenario, client, peering)
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert any(g.get("data-node") == "client" for g in nodes)
    for g in nodes:
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        x = float(rect.get("x", "0")) + float(rect.get("width", "0")) / 2
        y = float(rect.get("y", "0")) + float(rect.get("height", "0")) / 2
        assert _inside(Segment(g.get("data-segment")), x, y), g.get("data-node")
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text == "t <&> t"


@pytest.mark.parametrize(
    ("peering", "middle"), [(True, Segment.PEERING), (False, Segment.INTERNET)]
)
def test_a_hop_to_the_cloud_bends_through_the_segment_it_crosses(
    peering: bool, middle: Segment
) -> None:
    root = _draw(PlanScenario.PSTN, ClientLocation.INTERNAL, peering)
    (line,) = [
        p
        for p in root.iter(f"{SVG}polyline")
        if (p.get("data-from"), p.get("data-to")) == ("client", "online")
    ]
    points = [tuple(map(float, pair.split(","))) for pair in line.get("points", "").split()]
    assert len(points) == 3
    assert _inside(middle, *points[1])
    other = Segment.INTERNET if middle is Segment.PEERING else Segment.PEERING
    assert not _inside(other, *points[1])
