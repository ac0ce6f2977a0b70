"""Call transfer through the mediation B2BUA with real UAs on both sides (RFC 3515, RFC 3891,
RFC 5589): REFER passed on (``EnableReferSupport`` on), performed by the mediation role (off:
the transferee ends up talking to the target, the referrer gets NOTIFY 200 and a BYE), and an
INVITE with Replaces taking a bridged leg's place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lab_harness import (
    ANSWER,
    CALLEE,
    NO_ANSWER,
    OFFER,
    WAIT,
    Peer,
    RoleLab,
    peer,
    run,
    running_role,
    sdp,
    settle,
)

from hybridvoice.media import Leg
from hybridvoice.mediation.transfer import route_of
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import Call
from hybridvoice.sip import SipUri, parse_uri
from hybridvoice.sip.refer import Replaces
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    Offer,
    Refer,
    ReferNotify,
    ReferResult,
)

PSTN_TARGET = "sip:+31207654321@contoso.com;user=phone"


@dataclass
class Lab(RoleLab):
    gateway: Peer

    def call_out(self, headers: tuple[tuple[str, object], ...] = (), offer: bytes = OFFER) -> Call:
        return self.cloud.ua.invite(
            f"sip:{CALLEE}@127.0.0.1:{self.edge}", from_="<sip:+31209876543@contoso.com>",
            sdp=offer, destination=Destination("UDP", "127.0.0.1", self.edge), headers=headers,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def lab(
    tmp_path: Path, *, refer: bool, history: bool = True, relay: bool = False
) -> AsyncIterator[Lab]:
    cloud, gateway = await peer(), await peer()
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Lab"},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": 0, "UDPPort": 0, "TLSPort": 0,
            "MediaPortStart": 40400, "MediaPortEnd": 40800, "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "TrunkConfiguration": {
            "OptionsIntervalSeconds": 60, "EnableReferSupport": refer,
            "ForwardCallHistory": history,
        },
        "Gateway1": {
            "IP": "127.0.0.1", "Port": gateway.port, "Protocol": "UDP", "VoiceRoutes": "All",
            "SendSipOptions": False, "FailoverTimeSeconds": NO_ANSWER,
        },
    }  # fmt: skip
    async with running_role(tmp_path, raw, cloud, [gateway], relay=relay) as role:
        yield Lab(role, cloud, gateway)


async def connect(lab_: Lab) -> tuple[Call, Call]:
    a = lab_.call_out()
    b = await lab_.gateway.next_call()
    b.answer(ANSWER)
    assert await a.answered(WAIT) == Answered(ANSWER)
    assert await b.answered(WAIT) == Confirmed(None)
    return a, b


def test_route_of() -> None:
    assert route_of(parse_uri(PSTN_TARGET)) == "+31207654321"
    assert route_of(parse_uri("tel:+31207654321")) == "+31207654321"
    assert route_of(parse_uri("sip:carol@contoso.com")) is None


def test_refer_passed_on_when_enabled(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=True) as lab_:
            a, b = await connect(lab_)
            a.refer(PSTN_TARGET, referred_by=a.invite.from_)
            refer = await b.wait_for(Refer, WAIT)
            assert str(refer.refer_to.uri) == PSTN_TARGET
            assert refer.referred_by is not None  # ForwardCallHistory
            b.accept_refer()
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(100, False)
            b.notify_refer(180)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(180, False)
            b.notify_refer(200)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(200, True)
            b.bye()  # the gateway completed the transfer on its own
            assert (await a.ended(WAIT)).cause is Cause.NORMAL
            await settle(lab_)

    run(main())


def test_refer_passed_on_and_rejected(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=True, history=False) as lab_:
            a, b = await connect(lab_)
            a.refer(PSTN_TARGET, referred_by=a.invite.from_)
            refer = await b.wait_for(Refer, WAIT)
            assert refer.referred_by is None  # no ForwardCallHistory: not forwarded
            b.reject_refer(603)
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(603)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_mediation_performs_blind_transfer_to_a_cloud_user(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=False) as lab_:
            a, b = await connect(lab_)
            a.refer("sip:carol@contoso.com")
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(100, False)
            target = await lab_.cloud.next_call()
            assert str(target.invite.uri) == "sip:carol@contoso.com"
            assert target.invite.body == ANSWER  # the transferee's SDP is offered
            target.ring()
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(180, False)
            target.answer(sdp(9000))
            offer = await b.wait_for(Offer, WAIT)  # the transferee is moved to the target
            assert offer.sdp == sdp(9000)
            b.accept_offer(ANSWER)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(200, True)
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert isinstance(await target.answered(WAIT), Confirmed)
            assert len(lab_.role.b2bua.bridges) == 1
            target.bye()  # the transferee and the target talk until one hangs up
            assert (await b.ended(WAIT)).side == "remote"
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await asyncio.sleep(0.1)
            causes = sorted(str(r.cause) for r in records.recent())
            assert len(causes) == 2 and "transferred" in causes

    run(main())


def test_mediation_performs_transfer_to_a_pstn_number(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=False) as lab_:
            a, b = await connect(lab_)
            a.refer(PSTN_TARGET)
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(100, False)
            target = await lab_.gateway.next_call()  # through the outbound router
            assert str(target.invite.uri).startswith("sip:+31207654321@127.0.0.1")
            target.answer(sdp(9002))
            offer = await b.wait_for(Offer, WAIT)
            assert offer.sdp == sdp(9002)
            b.accept_offer(ANSWER)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(200, True)
            await a.ended(WAIT)
            b.bye()
            assert (await target.ended(WAIT)).side == "remote"
            await settle(lab_)

    run(main())


def test_mediation_transfer_failure_is_notified_and_the_call_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=False) as lab_:
            a, b = await connect(lab_)
            a.refer("sip:carol@contoso.com")
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            target = await lab_.cloud.next_call()
            target.reject(486)
            notify = await a.wait_for(ReferNotify, WAIT)
            while notify.status == 100:
                notify = await a.wait_for(ReferNotify, WAIT)
            assert notify == ReferNotify(486, True)
            assert not a.disconnected and not b.disconnected
            b.bye()
            await a.ended(WAIT)
            await settle(lab_)

    run(main())


@pytest.mark.parametrize("relay", [False, True])
def test_invite_with_replaces_takes_the_legs_place(tmp_path: Path, relay: bool) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=True, relay=relay) as lab_:
            a = lab_.call_out()
            b = await lab_.gateway.next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            (dialog,) = a.session.dialog_ids
            headers = (("Replaces", str(Replaces.of_dialog(dialog))),)
            new = lab_.call_out(headers=headers, offer=sdp(6100))
            offer = await b.wait_for(Offer, WAIT)
            assert offer.sdp is not None and (relay or offer.sdp == sdp(6100))
            b.accept_offer(sdp(7100))
            answered = await new.answered(WAIT)
            assert isinstance(answered, Answered) and answered.sdp is not None
            assert relay or answered.sdp == sdp(7100)
            if relay:
                assert b"m=audio 7100" not in answered.sdp and b"m=audio 6100" not in offer.sdp
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert len(lab_.role.b2bua.bridges) == 1
            new.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_invite_with_unknown_replaces_gets_481(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=True) as lab_:
            a, b = await connect(lab_)
            headers = (("Replaces", "nope@x;to-tag=1;from-tag=2"),)
            new = lab_.call_out(headers=headers)
            assert (await new.ended(WAIT)).status == 481
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_mediation_performs_transfer_with_anchored_media(tmp_path: Path) -> None:
    """Anchored: the target gets the relay's address, the transferee keeps talking to the
    relay (no re-INVITE), and the relay's far side now points at the target."""

    async def main() -> None:
        async with lab(tmp_path, refer=False, relay=True) as lab_:
            a = lab_.call_out()
            b = await lab_.gateway.next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            a.refer("sip:carol@contoso.com")
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            target = await lab_.cloud.next_call()
            assert target.invite.body is not None and b"m=audio 7000" not in target.invite.body
            target.answer(sdp(9000))
            notify = await a.wait_for(ReferNotify, WAIT)
            while not notify.final:
                notify = await a.wait_for(ReferNotify, WAIT)
            assert notify == ReferNotify(200, True)
            await a.ended(WAIT)
            await target.answered(WAIT)
            assert not any(isinstance(e, Offer) for e in b.history)
            (bridge,) = lab_.role.b2bua.bridges
            assert bridge.relay_call is not None
            remotes = {bridge.relay_call.remote(leg) for leg in (Leg.A, Leg.B)}
            assert ("127.0.0.1", 9000) in {(r[0], r[1]) for r in remotes if r is not None}
            b.bye()
            await target.ended(WAIT)
            await settle(lab_)

    run(main())


def test_mediation_transfer_to_a_failing_gateway_is_notified(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, refer=False) as lab_:
            a, b = await connect(lab_)
            a.refer(PSTN_TARGET)
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            target = await lab_.gateway.next_call()
            target.reject(503)  # a failover code, and no other gateway
            notify = await a.wait_for(ReferNotify, WAIT)
            while not notify.final:
                notify = await a.wait_for(ReferNotify, WAIT)
            assert notify.status >= 400
            assert not a.disconnected and not b.disconnected
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

    run(main())


def test_attended_transfer_across_the_b2bua(tmp_path: Path) -> None:
    """The cloud user talks to P (call 1) and consults C (call 2), both PSTN through us, then
    refers P to C with Replaces naming call 2: P gets a Replaces naming our leg toward C and
    our Contact; its INVITE with Replaces takes the cloud user's place in call 2."""

    async def main() -> None:
        async with lab(tmp_path, refer=True) as lab_:
            a1, p = await connect(lab_)
            a2, c = await connect(lab_)
            (consult,) = a2.session.dialog_ids
            a1.refer("sip:carol@contoso.com", replaces=Replaces.of_dialog(consult))
            refer = await p.wait_for(Refer, WAIT)
            (c_dialog,) = c.session.dialog_ids
            assert refer.replaces == Replaces.of_dialog(c_dialog)
            target = refer.refer_to.uri
            assert (
                isinstance(target, SipUri)
                and target.port == lab_.role.gateway_transports["UDP"].local[1]
            )
            p.accept_refer()
            assert await a1.wait_for(ReferResult, WAIT) == ReferResult(202)
            port = target.port
            new = lab_.gateway.ua.invite(
                target, from_="<sip:0612345678@gw.example>", sdp=sdp(6200),
                destination=Destination("UDP", "127.0.0.1", port),
                headers=[("Replaces", str(refer.replaces))],
            )  # fmt: skip
            offer = await c.wait_for(Offer, WAIT)
            assert offer.sdp == sdp(6200)
            c.accept_offer(ANSWER)
            assert await new.answered(WAIT) == Answered(ANSWER)
            assert await a2.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            p.notify_refer(200)
            assert (await a1.wait_for(ReferNotify, WAIT)).status == 100
            assert await a1.wait_for(ReferNotify, WAIT) == ReferNotify(200, True)
            a1.bye()
            await p.ended(WAIT)
            new.bye()
            await c.ended(WAIT)
            await settle(lab_)

    run(main())


# --- per-gateway EnableReferSupport ---------------------------------------------------------
@dataclass
class TwoGatewayLab(RoleLab):
    refer_on: Peer  # Gateway1, 127.0.0.1: numbers +31..., EnableReferSupport not set (trunk's)
    refer_off: Peer  # Gateway2, 127.0.0.2: numbers +32..., EnableReferSupport = false

    def call_out(self, number: str) -> Call:
        return self.cloud.ua.invite(
            f"sip:{number}@127.0.0.1:{self.edge}", from_="<sip:+31209876543@contoso.com>",
            sdp=OFFER, destination=Destination("UDP", "127.0.0.1", self.edge),
        )  # fmt: skip

    def call_in(self, gateway: Peer) -> Call:
        port = self.role.gateway_transports["UDP"].local[1]
        return gateway.ua.invite(
            f"sip:{CALLEE}@127.0.0.1:{port}", from_="<sip:+32612345678@gw.example>",
            sdp=OFFER, destination=Destination("UDP", "127.0.0.1", port),
        )  # fmt: skip


@contextlib.asynccontextmanager
async def two_gateways(tmp_path: Path) -> AsyncIterator[TwoGatewayLab]:
    cloud, on, off = await peer(), await peer(), await peer("127.0.0.2")
    gateway: dict[str, Any] = {"Protocol": "UDP", "SendSipOptions": False}
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Lab"},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": 0, "UDPPort": 0, "TLSPort": 0, "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"NL": "^\\+31", "BE": "^\\+32"},
        "TrunkConfiguration": {"OptionsIntervalSeconds": 60, "EnableReferSupport": True},
        "Gateway1": {**gateway, "IP": "127.0.0.1", "Port": on.port, "VoiceRoutes": "NL"},
        "Gateway2": {
            **gateway, "IP": "127.0.0.2", "Port": off.port, "VoiceRoutes": "BE",
            "EnableReferSupport": False,
        },
    }  # fmt: skip
    async with running_role(tmp_path, raw, cloud, [on, off], relay=False) as role:
        yield TwoGatewayLab(role, cloud, on, off)


def test_enable_refer_support_is_per_gateway(tmp_path: Path) -> None:
    """[TrunkConfiguration] EnableReferSupport on, Gateway2's own off: a cloud user's REFER
    goes on to Gateway1 but is performed by the mediation role on a call through Gateway2
    (Gateway2 never sees a REFER; the new INVITE goes to Gateway1, whose route matches)."""

    async def main() -> None:
        async with two_gateways(tmp_path) as lab_:
            # through Gateway1 (the trunk's setting): passed on
            a = lab_.call_out("+31201234567")
            b = await lab_.refer_on.next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            a.refer("sip:+31207654321@contoso.com;user=phone")
            refer = await b.wait_for(Refer, WAIT)
            b.reject_refer(603)
            assert refer.refer_to.uri == parse_uri("sip:+31207654321@contoso.com;user=phone")
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(603)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)

            # through Gateway2 (its own EnableReferSupport = false): performed
            a = lab_.call_out("+32201234567")
            b = await lab_.refer_off.next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            a.refer("sip:+31207654321@contoso.com;user=phone")
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            target = await lab_.refer_on.next_call()
            assert str(target.invite.uri).startswith("sip:+31207654321@127.0.0.1")
            target.answer(sdp(9002))
            offer = await b.wait_for(Offer, WAIT)  # the transferee moves to the target
            assert offer.sdp == sdp(9002)
            b.accept_offer(ANSWER)
            notify = await a.wait_for(ReferNotify, WAIT)
            while notify.status == 100:
                notify = await a.wait_for(ReferNotify, WAIT)
            assert notify == ReferNotify(200, True)
            await a.ended(WAIT)
            assert not any(isinstance(e, Refer) for e in b.history)
            b.bye()
            await target.ended(WAIT)
            await settle(lab_)

    run(main())


def test_gateway_refer_off_does_not_stop_refer_toward_the_cloud(tmp_path: Path) -> None:
    """Gateway2's EnableReferSupport = false says what Gateway2 accepts: a REFER *from*
    Gateway2 (its PSTN caller transferred) still goes on to the cloud side, per the trunk's
    setting."""

    async def main() -> None:
        async with two_gateways(tmp_path) as lab_:
            a = lab_.call_in(lab_.refer_off)
            b = await lab_.cloud.next_call()
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            a.refer("sip:carol@contoso.com")
            refer = await b.wait_for(Refer, WAIT)
            assert refer.refer_to.uri == parse_uri("sip:carol@contoso.com")
            b.accept_refer()
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            b.bye()
            await a.ended(WAIT)
            await settle(lab_)

    run(main())
