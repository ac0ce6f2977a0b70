"""Observed paths recorded by a running mediation role (lab_harness: the role on loopback
with a fake cloud side and fake gateways): inbound calls bypassed and anchored late (the edge
leg's re-offer moves it to the relay), and an outbound anchored call."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from lab_harness import ANSWER, OFFER, WAIT, Lab, lab, run, settle

from hybridvoice.media import Leg
from hybridvoice.mediation.bypass import BypassPolicy
from hybridvoice.mediation.records_observed import ObservedHop
from hybridvoice.sip.session import Answered, Offer

EXTERNAL = "198.51.100.7"


def sdp(port: int, host: str) -> bytes:
    return (f"v=0\r\no=t 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()  # fmt: skip


def internal_bypass(lab_: Lab) -> None:
    lab_.role.set_bypass(
        BypassPolicy(enabled=True, internal_subnets=(ipaddress.ip_network("127.0.0.0/8"),))
    )
    assert lab_.role.trunks is not None
    for gw in lab_.role.trunks:
        gw.config = gw.config.model_copy(update={"media_bypass": True})


def nodes(hops: tuple[ObservedHop, ...]) -> list[tuple[str, str]]:
    return [(h.source, h.target) for h in hops]


def test_inbound_bypassed_gateway_to_client(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            internal_bypass(lab_)
            a = lab_.call_in(lab_.gateways[0])
            b = await lab_.cloud.next_call()
            b.answer(ANSWER)
            assert isinstance(await a.answered(WAIT), Answered)
            assert lab_.role.records is not None
            record = lab_.role.records.live(a.call_id)
            assert record is not None and record.observed is not None
            sig, media = record.observed.signalling, record.observed.media
            assert nodes(sig) == [("gateway", "mediation"), ("mediation", "edge")]
            assert sig[0].target_port == lab_.gateway_side  # the role's gateway-side listener
            assert (sig[1].source_port, sig[1].target_port) == (lab_.edge, lab_.cloud.port)
            assert nodes(media) == [("gateway", "client")]
            assert media[0].source_port == 6000  # the gateway's offer, passed through
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_inbound_anchored_late_records_the_relay_the_re_offer_moves_to(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            internal_bypass(lab_)
            a = lab_.call_in(lab_.gateways[0])
            b = await lab_.cloud.next_call()
            assert b.invite.body == OFFER
            b.answer(sdp(7000, EXTERNAL))  # an internet client: anchored on its answer
            assert isinstance(await a.answered(WAIT), Answered)
            offer = await b.wait_for(Offer, WAIT)
            assert isinstance(offer, Offer)
            b.accept_offer(sdp(7002, EXTERNAL))
            relay, records = lab_.role.relay, lab_.role.records
            assert relay is not None and records is not None
            (relayed,) = relay.calls.values()
            record = records.live(a.call_id)
            assert record is not None and record.observed is not None
            media = record.observed.media
            assert nodes(media) == [("gateway", "mediation"), ("mediation", "client")]
            assert media[0].target_port == relayed.local(Leg.B)[1]  # the relay, gateway side
            assert media[1].source_port == relayed.local(Leg.A)[1]  # not the gateway's offer
            assert (media[1].target_host, media[1].target_port) == (EXTERNAL, 7000)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_outbound_anchored_without_the_online_services_vias(tmp_path: Path) -> None:
    """A call straight from the edge side (no online service in front): the hops the role
    saw, no client -> online hop made up."""

    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            a = lab_.call_out()
            b = await lab_.gateways[0].next_call()
            b.answer(ANSWER)
            assert isinstance(await a.answered(WAIT), Answered)
            await asyncio.sleep(0)
            assert lab_.role.records is not None
            record = lab_.role.records.live(a.call_id)
            assert record is not None and record.observed is not None
            assert nodes(record.observed.signalling) == [("edge", "mediation"),
                                                         ("mediation", "gateway")]  # fmt: skip
            assert nodes(record.observed.media) == [("client", "mediation"),
                                                    ("mediation", "gateway")]  # fmt: skip
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())
