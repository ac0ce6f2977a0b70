"""hybridvoice's own PSTN call paths by segment (planning.callflow, planning.segments)."""

from __future__ import annotations

import itertools

import pytest

from hybridvoice.planning.callflow import ClientLocation, Hop, Path, plan_pstn
from hybridvoice.planning.segments import Segment, Traffic, crossing

C, N, P, D = Segment.CUSTOMER, Segment.INTERNET, Segment.PEERING, Segment.CLOUD


@pytest.mark.parametrize(
    ("source", "target", "peering", "expected"),
    [
        (C, D, True, (C, P, D)),
        (C, D, False, (C, N, D)),
        (D, C, True, (D, P, C)),
        (D, C, False, (D, N, C)),
        (C, C, True, (C,)),
        (C, C, False, (C,)),
        (N, D, True, (N, D)),
        (N, D, False, (N, D)),
        (N, C, True, (N, C)),
        (C, N, False, (C, N)),
        (D, D, True, (D,)),
        (N, N, True, (N,)),
    ],
)
def test_crossing(
    source: Segment, target: Segment, peering: bool, expected: tuple[Segment, ...]
) -> None:
    assert crossing(source, target, peering=peering) == expected


def test_crossing_internet_to_peering_is_an_error() -> None:
    with pytest.raises(ValueError, match="peering"):
        crossing(N, P, peering=True)


def test_path_segments_merge_consecutive_repeats() -> None:
    path = Path(
        Traffic.MEDIA,
        (
            Hop("client", "edge", (N, C)),
            Hop("edge", "mediation", (C,)),
            Hop("mediation", "x", (C,)),
        ),
    )
    assert path.segments() == (N, C)
    assert path.nodes() == ("client", "edge", "mediation", "x")
    assert Path(Traffic.MEDIA, ()).segments() == ()


def _nodes(path: Path) -> tuple[str, ...]:
    return path.nodes()


@pytest.mark.parametrize("peering", [True, False])
@pytest.mark.parametrize("client", list(ClientLocation))
@pytest.mark.parametrize("bypass", [True, False])
def test_signalling_always_goes_through_the_cloud(
    client: ClientLocation, peering: bool, bypass: bool
) -> None:
    flow = plan_pstn(client=client, peering=peering, bypass=bypass)
    assert flow.signalling.traffic is Traffic.SIGNALLING
    assert _nodes(flow.signalling) == ("client", "online", "edge", "mediation", "gateway")
    first = C if client is ClientLocation.INTERNAL else N
    link = P if peering else N
    if client is ClientLocation.INTERNAL:
        assert flow.signalling.hops[0].segments == (C, link, D)
    else:
        assert flow.signalling.hops[0].segments == (N, D)
    assert flow.signalling.hops[1].segments == (D, link, C)
    assert flow.signalling.hops[2].segments == (C,)
    assert flow.signalling.hops[3].segments == (C,)
    assert flow.signalling.segments()[0] is first
    assert flow.signalling.segments()[-1] is C


def test_internal_bypass_media_goes_straight_to_the_gateway() -> None:
    flow = plan_pstn(client=ClientLocation.INTERNAL, peering=True, bypass=True)
    assert flow.bypassed
    assert flow.media.traffic is Traffic.MEDIA
    assert flow.media.hops == (Hop("client", "gateway", (C,)),)
    assert flow.media.segments() == (C,)


def test_internal_without_bypass_media_goes_through_mediation() -> None:
    flow = plan_pstn(client=ClientLocation.INTERNAL, peering=False, bypass=False)
    assert not flow.bypassed
    assert _nodes(flow.media) == ("client", "mediation", "gateway")
    assert flow.media.segments() == (C,)


@pytest.mark.parametrize(("peering", "bypass"), list(itertools.product([True, False], repeat=2)))
def test_internet_clients_never_bypass(peering: bool, bypass: bool) -> None:
    flow = plan_pstn(client=ClientLocation.INTERNET, peering=peering, bypass=bypass)
    assert not flow.bypassed
    assert _nodes(flow.media) == ("client", "edge", "mediation", "gateway")
    assert flow.media.hops[0].segments == (N, C)
    assert flow.media.segments() == (N, C)  # media never crosses the peering link or the cloud


@pytest.mark.parametrize(
    ("client", "peering", "bypass"),
    list(itertools.product(list(ClientLocation), [True, False], [True, False])),
)
def test_media_never_enters_the_cloud(client: ClientLocation, peering: bool, bypass: bool) -> None:
    flow = plan_pstn(client=client, peering=peering, bypass=bypass)
    assert D not in flow.media.segments()
    assert P not in flow.media.segments()
    assert (P in flow.signalling.segments()) is peering
