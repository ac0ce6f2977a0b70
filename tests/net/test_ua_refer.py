"""REFER and Replaces between two real UserAgents on loopback (RFC 3515 §2.4, RFC 3420,
RFC 4488, RFC 3891 §3)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import ua_harness
from ua_harness import WAIT, open_sides, run

from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import Call
from hybridvoice.sip import Headers, Request, parse_uri
from hybridvoice.sip.dialog import DialogId
from hybridvoice.sip.headers import CSeq
from hybridvoice.sip.refer import ReferError, Replaces
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    Refer,
    ReferNotify,
    ReferResult,
)


def sdp(port: int) -> bytes:
    return (
        f"v=0\r\no=hv 1 {port} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


class Side(ua_harness.Side):
    def uri(self, user: str = "bob") -> str:
        host, port = self.transport.local
        return f"sip:{user}@{host}:{port}"


def sides(n: int) -> contextlib.AbstractAsyncContextManager[list[Side]]:
    return open_sides(Side, n)


async def call_up(caller: Side, callee: Side, user: str = "bob") -> tuple[Call, Call]:
    a = caller.ua.invite(callee.uri(user), from_="<sip:alice@example.com>", sdp=sdp(6000))
    b = await asyncio.wait_for(callee.phone.incoming.get(), WAIT)
    b.answer(sdp(7000))
    assert isinstance(await a.answered(WAIT), Answered)
    assert isinstance(await b.answered(WAIT), Confirmed)
    return a, b


def test_refer_accepted_with_sipfrag_progress() -> None:
    async def main() -> None:
        async with sides(2) as (alice, bob):
            a, b = await call_up(alice, bob)
            assert "REFER" in a.session.peer_allow and "REFER" in b.session.peer_allow
            a.refer("sip:carol@example.com", referred_by=a.session.invite.from_)
            refer = await b.wait_for(Refer, WAIT)
            assert str(refer.refer_to.uri) == "sip:carol@example.com"
            assert refer.referred_by is not None and refer.replaces is None
            assert refer.subscription
            b.accept_refer()
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(202)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(100, False)
            b.notify_refer(180)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(180, False)
            b.notify_refer(200)
            assert await a.wait_for(ReferNotify, WAIT) == ReferNotify(200, True)
            a.bye()
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")

    run(main())


def test_refer_rejected() -> None:
    async def main() -> None:
        async with sides(2) as (alice, bob):
            a, b = await call_up(alice, bob)
            b.refer(alice.uri("carol"))
            await a.wait_for(Refer, WAIT)
            a.reject_refer(603)
            assert await b.wait_for(ReferResult, WAIT) == ReferResult(603)
            # the session goes on: a second REFER works
            b.refer(alice.uri("dave"), subscription=False)
            refer = await a.wait_for(Refer, WAIT)
            assert not refer.subscription
            a.accept_refer()
            assert await b.wait_for(ReferResult, WAIT) == ReferResult(202)
            with pytest.raises(ReferError, match="no accepted REFER"):
                a.notify_refer(200)
            b.bye()
            await a.ended(WAIT)

    run(main())


def test_refer_pending_when_the_call_ends_gets_481() -> None:
    async def main() -> None:
        async with sides(2) as (alice, bob):
            a, b = await call_up(alice, bob)
            a.refer("sip:carol@example.com")
            await b.wait_for(Refer, WAIT)
            b.bye()
            assert await a.wait_for(ReferResult, WAIT) == ReferResult(481)

    run(main())


def test_invite_with_replaces_matches_the_dialog() -> None:
    async def main() -> None:
        async with sides(3) as (alice, bob, carol):
            a, b = await call_up(alice, bob)
            # carol replaces alice in bob's call: the Replaces names bob's dialog as alice sees it
            ids = a.session.dialog_ids
            assert len(ids) == 1
            replaces = Replaces.of_dialog(ids[0])
            c = carol.ua.invite(
                bob.uri(), from_="<sip:carol@example.com>", sdp=sdp(8000),
                headers=[("Replaces", str(replaces)), ("Require", "replaces")],
            )  # fmt: skip
            new = await asyncio.wait_for(bob.phone.incoming.get(), WAIT)
            assert new.replaces is b
            new.answer(sdp(7002))
            b.bye()
            assert isinstance(await c.answered(WAIT), Answered)
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            c.bye()
            await new.ended(WAIT)

    run(main())


@pytest.mark.parametrize(
    ("mangle", "status"),
    [("unknown", 481), ("early-only", 486), ("malformed", 400)],
)
def test_invite_with_replaces_refused(mangle: str, status: int) -> None:
    async def main() -> None:
        async with sides(3) as (alice, bob, carol):
            a, b = await call_up(alice, bob)
            ids = a.session.dialog_ids[0]
            if mangle == "unknown":
                value = str(Replaces.of_dialog(DialogId("nope@x", ids.local_tag, "x")))
            elif mangle == "early-only":
                value = str(Replaces.of_dialog(ids, early_only=True))
            else:
                value = f"{ids.call_id};to-tag={ids.remote_tag}"
            c = carol.ua.invite(
                bob.uri(), from_="<sip:carol@example.com>", sdp=sdp(8000),
                headers=[("Replaces", value)],
            )  # fmt: skip
            ended = await c.ended(WAIT)
            assert ended.status == status
            assert bob.phone.incoming.empty()
            a.bye()
            await b.ended(WAIT)

    run(main())


def test_out_of_dialog_refer_and_notify_get_481() -> None:
    async def main() -> None:
        async with sides(2) as (alice, bob):
            for method in ("REFER", "NOTIFY"):
                h = Headers()
                h.add("Max-Forwards", 70)
                h.add("From", "<sip:alice@example.com>;tag=x1")
                h.add("To", f"<{bob.uri()}>")
                h.add("Call-ID", f"ood-{method}@127.0.0.1")
                h.add("CSeq", CSeq(1, method))
                h.add("Refer-To", "<sip:carol@example.com>")
                h.add("Event", "refer")
                request = Request(method, parse_uri(bob.uri()), h)
                host, port = bob.transport.local
                response = await alice.endpoint.request(request, Destination("UDP", host, port))
                assert response.status == 481

    run(main())
