"""The media bypass decision: one row per reason, in check order, plus SDP extraction."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from hybridvoice.mediation.bypass import (
    CHECK_ORDER,
    BypassPolicy,
    ClientMedia,
    GatewayMedia,
    MediaMode,
    SubnetError,
    client_media_from_sdp,
    decide_bypass,
    parse_subnets,
)
from hybridvoice.sip.sdp import SessionDescription

SUBNETS = parse_subnets(["10.1.0.0/16", "10.1.2.0/24", "fd00:1::/48"])
ON = BypassPolicy(enabled=True, always_bypass=True, internal_subnets=SUBNETS)
GW = GatewayMedia("gw1", media_bypass=True, address="10.1.9.9")
INSIDE = ClientMedia("10.1.2.3", 50000, ("PCMU", "PCMA", "TELEPHONE-EVENT"))


def _decide(
    policy: BypassPolicy = ON,
    client: ClientMedia | None = INSIDE,
    *,
    via_edge: bool = False,
    gateway: GatewayMedia = GW,
) -> tuple[MediaMode, str]:
    decision = decide_bypass(policy, client=client, via_edge=via_edge, gateway=gateway)
    return decision.mode, decision.reason


ANCHOR = MediaMode.ANCHORED

TABLE = [
    pytest.param(
        {"policy": BypassPolicy(False, True, SUBNETS)},
        (ANCHOR, "bypass disabled in tenant network configuration"),
        id="tenant-disabled",
    ),
    pytest.param({"via_edge": True}, (ANCHOR, "external client via edge"), id="external-via-edge"),
    pytest.param(
        {"gateway": GatewayMedia("gw1", media_bypass=False)},
        (ANCHOR, "gateway gw1 has media bypass off"),
        id="gateway-bypass-off",
    ),
    pytest.param({"client": None}, (ANCHOR, "no client media address in SDP"), id="no-media"),
    pytest.param(
        {"client": ClientMedia("192.0.2.7", 50000)},
        (ANCHOR, "client 192.0.2.7 is not in the site's internal subnets"),
        id="client-outside",
    ),
    pytest.param(
        {"client": ClientMedia("client.example.com", 50000)},
        (ANCHOR, "client client.example.com is not in the site's internal subnets"),
        id="client-fqdn",
    ),
    pytest.param(
        {"client": ClientMedia("10.1.2.3", 50000, ("SILK", "OPUS"))},
        (ANCHOR, "no common codec: transcoding needed"),
        id="no-common-codec",
    ),
    pytest.param(
        {"client": ClientMedia("10.1.2.3", 50000, ("OPUS", "TELEPHONE-EVENT"))},
        (ANCHOR, "no common codec: transcoding needed"),
        id="dtmf-only-in-common",
    ),
    pytest.param(
        {"policy": BypassPolicy(True, False, SUBNETS), "gateway": GatewayMedia("gw1")},
        (
            ANCHOR,
            "AlwaysBypass off: client 10.1.2.3 in 10.1.2.0/24 and gateway gw1 (unknown address)"
            " are not in the same subnet",
        ),
        id="always-off-gateway-unknown",
    ),
    pytest.param(
        {"policy": BypassPolicy(True, False, SUBNETS)},
        (
            ANCHOR,
            "AlwaysBypass off: client 10.1.2.3 in 10.1.2.0/24 and gateway gw1 (10.1.9.9)"
            " are not in the same subnet",
        ),
        id="always-off-other-subnet",
    ),
    pytest.param(
        {
            "policy": BypassPolicy(True, False, SUBNETS),
            "gateway": GatewayMedia("gw1", address="10.1.2.200"),
        },
        (MediaMode.BYPASS, "bypass: internal client 10.1.2.3 in 10.1.2.0/24"),
        id="always-off-same-subnet",
    ),
    pytest.param(
        {}, (MediaMode.BYPASS, "bypass: internal client 10.1.2.3 in 10.1.2.0/24"), id="bypass"
    ),
    pytest.param(
        {"client": ClientMedia("10.1.7.7", 50000, ("pcma",))},
        (MediaMode.BYPASS, "bypass: internal client 10.1.7.7 in 10.1.0.0/16"),
        id="bypass-wider-subnet-lowercase-codec",
    ),
    pytest.param(
        {"client": ClientMedia("fd00:1::42", 50000)},
        (MediaMode.BYPASS, "bypass: internal client fd00:1::42 in fd00:1::/48"),
        id="bypass-ipv6",
    ),
    pytest.param(
        {"client": ClientMedia("::ffff:10.1.2.3", 50000)},
        (MediaMode.BYPASS, "bypass: internal client ::ffff:10.1.2.3 in 10.1.2.0/24"),
        id="bypass-ipv4-mapped",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), TABLE)
def test_decision_table(changes: dict[str, Any], expected: tuple[MediaMode, str]) -> None:
    assert _decide(**changes) == expected


def test_checks_run_in_documented_order() -> None:
    # every check fails at once: the first in CHECK_ORDER names the reason
    everything_wrong: dict[str, Any] = {
        "client": ClientMedia("192.0.2.1", 1, ("OPUS",)),
        "via_edge": True,
        "gateway": GatewayMedia("gw1", media_bypass=False),
    }
    off = BypassPolicy(False, False, SUBNETS)
    assert CHECK_ORDER[0] == "tenant bypass disabled"
    assert _decide(off, **everything_wrong)[1].startswith("bypass disabled")
    assert _decide(ON, **everything_wrong)[1] == "external client via edge"


def test_decision_carries_subnet_and_flag() -> None:
    decision = decide_bypass(ON, client=INSIDE, via_edge=False, gateway=GW)
    assert decision.bypass
    assert decision.subnet == ipaddress.ip_network("10.1.2.0/24")
    assert not decide_bypass(ON, client=None, via_edge=False, gateway=GW).bypass


def test_policy_membership() -> None:
    assert ON.is_internal("10.1.255.1")
    assert ON.is_internal("[fd00:1::1]")
    assert not ON.is_internal("10.2.0.1")
    assert not ON.is_internal("not-an-address")
    assert ON.subnet_of("10.1.2.9") == ipaddress.ip_network("10.1.2.0/24")


@pytest.mark.parametrize("bad", ["10.1.0.1/16", "10.1.0.0/33", "banana", ""])
def test_parse_subnets_rejects(bad: str) -> None:
    with pytest.raises(SubnetError):
        parse_subnets([bad])


OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 10.1.2.3\r\n"
    "s=-\r\n"
    "c=IN IP4 10.1.2.3\r\n"
    "t=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "m=audio 50004 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
)


def test_client_media_from_sdp_session_connection() -> None:
    media = client_media_from_sdp(SessionDescription.parse(OFFER))
    assert media == ClientMedia("10.1.2.3", 50004, ("PCMU", "PCMA", "TELEPHONE-EVENT"))


def test_client_media_from_sdp_media_level_connection_wins() -> None:
    sdp = OFFER.replace("a=rtpmap", "c=IN IP4 10.1.7.8\r\na=rtpmap")
    media = client_media_from_sdp(SessionDescription.parse(sdp))
    assert media is not None and media.address == "10.1.7.8"


def test_client_media_from_sdp_hold_and_no_audio() -> None:
    hold = OFFER.replace("c=IN IP4 10.1.2.3", "c=IN IP4 0.0.0.0")
    assert client_media_from_sdp(SessionDescription.parse(hold)) is None
    no_audio = OFFER.replace("m=audio 50004", "m=audio 0")
    assert client_media_from_sdp(SessionDescription.parse(no_audio)) is None


def test_sdp_to_decision() -> None:
    client = client_media_from_sdp(SessionDescription.parse(OFFER))
    decision = decide_bypass(ON, client=client, via_edge=False, gateway=GW)
    assert decision.mode is MediaMode.BYPASS
