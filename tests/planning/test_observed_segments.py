"""The segment classifier (planning.observed): addresses to segments with the deployment's
``[Segments]`` settings and their defaults, hops to the segments crossed (over the peering
link when the cloud end is in the peering prefixes), and planned against observed."""

from __future__ import annotations

import pytest

from hybridvoice.cms.settings import SettingsError, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import lab_settings
from hybridvoice.mediation.records_observed import ObservedHop, ObservedPaths
from hybridvoice.planning.callflow import ClientLocation, plan_pstn
from hybridvoice.planning.observed import SegmentMap, classify, classify_hop, compare
from hybridvoice.planning.segments import Segment, Traffic

C, NET, P, K = Segment.CUSTOMER, Segment.INTERNET, Segment.PEERING, Segment.CLOUD


def settings(**segments: str) -> SegmentMap:
    raw = settings_raw(lab_settings())
    raw["Online"]["SIPAddresses"] = "127.64.0.1"
    raw["MediationServer"]["InternalSubnets"] = "127.0.0.0/16"
    raw["Segments"] = segments
    return SegmentMap.of(parse_settings(raw))


def test_defaults_are_the_internal_subnets_and_the_online_service() -> None:
    seg = settings()
    assert seg.segment("127.0.0.1") is C
    assert seg.segment("127.64.0.1") is K  # [Online] SIPAddresses
    assert seg.segment("127.128.0.1") is NET  # in no list: the internet
    assert seg.segment("") is None and seg.segment("edge.example") is None
    assert not seg.has_peering


def test_the_most_specific_prefix_wins() -> None:
    seg = SegmentMap.of(lab_settings())  # everything on 127.0.0.1: cloud /32 inside 127/8
    assert seg.segment("127.0.0.1") is K and seg.segment("127.0.0.2") is C
    seg = settings(CustomerSubnets="10.0.0.0/8", CloudAddresses="10.1.0.0/16")
    assert seg.segment("10.1.2.3") is K and seg.segment("10.2.0.1") is C


def test_a_peering_prefix_is_the_cloud_over_the_peering_link() -> None:
    seg = settings(PeeringPrefixes="127.64.0.0/24")
    assert seg.has_peering and seg.segment("127.64.0.1") is K
    hop = ObservedHop("client", "127.0.0.1", 40000, "online", "127.64.0.1", 5060, "online")
    assert classify_hop(hop, seg).segments == (C, P, K)
    assert classify_hop(hop, settings()).segments == (C, NET, K)
    internet = ObservedHop("client", "127.128.0.1", 1, "online", "127.64.0.1", 5060, "online")
    assert classify_hop(internet, settings()).segments == (NET, K)


def test_bad_segment_settings_name_the_key() -> None:
    raw = settings_raw(lab_settings())
    raw["Segments"] = {"PeeringPrefixes": "10.0.0.0/33"}
    with pytest.raises(SettingsError, match=r"Segments\.PeeringPrefixes.*not a subnet"):
        parse_settings(raw)


def _observed(client: str, media: list[tuple[str, str, str, str]]) -> ObservedPaths:
    sig = [("client", client, "online", "127.64.0.1"),
           ("online", "127.64.0.1", "edge", "127.0.0.1"),
           ("edge", "127.0.0.1", "mediation", "127.0.0.1"),
           ("mediation", "127.0.0.1", "gateway", "127.0.0.1")]  # fmt: skip
    return ObservedPaths(
        tuple(ObservedHop(a, ha, 1, b, hb, 2, "test") for a, ha, b, hb in sig),
        tuple(ObservedHop(a, ha, 1, b, hb, 2, "test") for a, ha, b, hb in media),
    )


@pytest.mark.parametrize(
    ("client", "bypass", "address", "media"),
    [
        (ClientLocation.INTERNAL, True, "127.0.0.1",
         [("client", "127.0.0.1", "gateway", "127.0.0.1")]),
        (ClientLocation.INTERNAL, False, "127.0.0.1",
         [("client", "127.0.0.1", "mediation", "127.0.0.1"),
          ("mediation", "127.0.0.1", "gateway", "127.0.0.1")]),
        (ClientLocation.INTERNET, False, "127.128.0.1",
         [("client", "127.128.0.1", "edge", "127.0.0.1"),
          ("edge", "127.0.0.1", "mediation", "127.0.0.1"),
          ("mediation", "127.0.0.1", "gateway", "127.0.0.1")]),
    ],
)  # fmt: skip
def test_observed_equals_planned_for_the_three_scenarios(
    client: ClientLocation, bypass: bool, address: str, media: list[tuple[str, str, str, str]]
) -> None:
    flow = classify(_observed(address, media), settings())
    plan = plan_pstn(client=client, peering=False, bypass=bypass)
    for traffic, planned in ((Traffic.SIGNALLING, plan.signalling), (Traffic.MEDIA, plan.media)):
        result = compare(planned, flow.path(traffic))
        assert result.ok, result.differences


def test_a_difference_is_named() -> None:
    # the online service's address outside the cloud's: its hops cross other segments
    flow = classify(_observed("127.0.0.1", []), settings(CloudAddresses="127.99.0.1"))
    plan = plan_pstn(client=ClientLocation.INTERNAL, peering=False, bypass=True)
    result = compare(plan.signalling, flow.path(Traffic.SIGNALLING))
    assert not result.ok
    assert result.differences[0] == (
        "planned client -> online (customer > internet > cloud), "
        "observed client -> online (customer > internet)"
    )
    media = compare(plan.media, flow.path(Traffic.MEDIA))
    assert media.differences == ("no media hops were observed",)
    hops = [("client", "127.0.0.1", "mediation", "127.0.0.1"),
            ("mediation", "127.0.0.1", "gateway", "127.0.0.1")]  # fmt: skip
    anchored = classify(_observed("127.0.0.1", hops), settings())
    differs = compare(plan.media, anchored.path(Traffic.MEDIA))
    assert differs.differences == (
        "planned nodes client -> gateway, observed client -> mediation -> gateway",
    )
