"""The proxy core on loopback (RFC 3261 §16, RFC 5658): real UserAgents and raw endpoints on
both sides of a :class:`Proxy`, over UDP and TCP.

Covered: §16.3 (483, OPTIONS with Max-Forwards 0), §16.4 (Route processing, admit), §16.6
(Record-Route so in-dialog requests cross the proxy both ways, double Record-Route across
transports), §16.7 (1xx/2xx forwarding, best response, 401 challenge, 486), §16.10 (CANCEL),
parallel forking, serial failover, the provisional timeout (the adapter's loop timer), local
and async decisions. The core's timers on a fake clock (Timer C, group timeouts, the wait after
a CANCEL) are in ``tests/sip/test_proxy_core.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from ua_harness import ANSWER, FAST, OFFER, WAIT, Side, open_side, run

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.proxy import Decision, Forward, Proxy, Target
from hybridvoice.net.transport import Destination, Source, Transport
from hybridvoice.net.ua import Call, CallFailedError
from hybridvoice.sip import Headers, Request, Response, parse_uri
from hybridvoice.sip.session import Cause, Disconnected, Ringing
from hybridvoice.sip.transaction import ClientTransaction, TransactionTimeout

Route = Callable[[Request, Source], "Decision | Awaitable[Decision]"]
Admit = Callable[[Request, Source], "Response | None"]


class Policy:
    """A policy whose ``route`` and ``admit`` each test sets."""

    def __init__(self) -> None:
        self.route_fn: Route = lambda request, source: Forward(())
        self.admit_fn: Admit = lambda request, source: None
        self.routed: list[Request] = []
        self.admitted: list[str] = []

    def route(self, request: Request, source: Source) -> Decision | Awaitable[Decision]:
        self.routed.append(request)
        return self.route_fn(request, source)

    def admit(self, request: Request, source: Source) -> Response | None:
        self.admitted.append(request.method)
        return self.admit_fn(request, source)


@dataclass
class Net:
    proxy: Proxy
    policy: Policy
    endpoint: Endpoint
    udp: Transport
    tcp: Transport
    alice: Side
    bobs: list[Side]

    def dest(self, kind: str = "UDP") -> Destination:
        transport = self.udp if kind == "UDP" else self.tcp
        return Destination(kind, "127.0.0.1", transport.local[1])

    def target(self, bob: Side) -> Target:
        return Target(parse_uri(bob.uri()))

    def fork_to_every_bob(self) -> None:
        """Route every request to all bobs at once (one group, parallel forking)."""
        targets = tuple(self.target(bob) for bob in self.bobs)
        self.policy.route_fn = lambda request, source: Forward((targets,))

    def call(self, user: str = "bob") -> Call:
        return self.alice.ua.invite(
            f"sip:{user}@example.com",
            from_="<sip:alice@example.com>",
            sdp=OFFER,
            destination=self.dest(),
        )


@contextlib.asynccontextmanager
async def network(bobs: int = 1, bob_kind: str = "UDP") -> AsyncIterator[Net]:
    """alice (UDP) -> proxy (UDP and TCP) -> ``bobs`` UAS of ``bob_kind``."""
    endpoint = Endpoint(timers=FAST)
    udp = await endpoint.listen("UDP", "127.0.0.1", 0)
    tcp = await endpoint.listen("TCP", "127.0.0.1", 0)
    policy = Policy()
    proxy = Proxy(endpoint, policy, timer_c=30.0)
    alice = Side(*await open_side("UDP"))
    sides = [Side(*await open_side(bob_kind)) for _ in range(bobs)]
    try:
        yield Net(proxy, policy, endpoint, udp, tcp, alice, sides)
    finally:
        for side in (alice, *sides):
            side.ua.close()
            await side.endpoint.close()
        proxy.close()
        await endpoint.close()


async def incoming(side: Side) -> Call:
    return await asyncio.wait_for(side.phone.incoming.get(), WAIT)


async def answered_call(net: Net, bob: Side) -> tuple[Call, Call]:
    a = net.call()
    b = await incoming(bob)
    b.ring()
    assert await a.wait_for(Ringing, WAIT) == Ringing(None)
    b.answer(ANSWER)
    await a.answered(WAIT)
    await b.answered(WAIT)
    return a, b


async def until(condition: Callable[[], object]) -> None:
    """Wait until ``condition()`` holds (messages still in flight), at most ``WAIT``."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


async def failure(call: Call) -> Disconnected:
    with pytest.raises(CallFailedError):
        await call.answered(WAIT)
    return await call.ended(WAIT)


# --- basic call, Record-Route, in-dialog requests (§16.4, §16.6) ----------------------------


def test_call_through_the_proxy_with_record_route_both_directions() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(((net.target(bob),),))
            # the caller hangs up
            a, b = await answered_call(net, bob)
            rr = b.invite.headers.values("Record-Route")
            assert rr == [net.proxy.record_route(net.udp)]
            assert b.invite.max_forwards == 69 and str(b.invite.uri) == bob.uri()
            a.bye()
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "local")
            assert net.proxy.counters.requests_forwarded["BYE"] == 1
            # the callee hangs up
            a, b = await answered_call(net, bob)
            b.bye()
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "local")
            counters = net.proxy.counters
            await until(lambda: counters.responses_forwarded.get(200) == 4)  # the BYE's 200
            assert counters.requests_forwarded == {"INVITE": 2, "BYE": 2}
            assert counters.acks_forwarded == 2
            assert counters.responses_forwarded[200] == 4 and counters.responses_forwarded[180]
            assert net.policy.admitted.count("BYE") == 2 and net.policy.admitted.count("ACK") == 2
            assert len(net.policy.routed) == 2  # in-dialog requests never reach route()
            assert net.endpoint.parse_errors == 0

    run(main())


def test_double_record_route_from_udp_to_tcp() -> None:
    """RFC 5658: in on UDP, out on TCP: two Record-Route values, the TCP one on top, and the
    BYE finds its way in both directions."""

    async def main() -> None:
        async with network(bob_kind="TCP") as net:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(((net.target(bob),),))
            a, b = await answered_call(net, bob)
            rr = b.invite.headers.values("Record-Route")
            assert rr == [net.proxy.record_route(net.tcp), net.proxy.record_route(net.udp)]
            assert ";transport=tcp;lr" in rr[0]
            a.bye()
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            await a.ended(WAIT)
            a, b = await answered_call(net, bob)
            b.bye()
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            await b.ended(WAIT)
            assert net.proxy.counters.requests_forwarded == {"INVITE": 2, "BYE": 2}
            assert net.tcp.counters.messages_in > 0 and net.udp.counters.messages_in > 0

    run(main())


def test_admit_refuses_an_in_dialog_request() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            proxy = net.proxy
            net.policy.route_fn = lambda request, source: Forward(((net.target(bob),),))
            a, b = await answered_call(net, bob)
            untrusted = net.alice.transport.local[1]
            net.policy.admit_fn = lambda request, source: (
                proxy.response(request, 403) if source.port == untrusted else None
            )
            a.bye()
            await a.ended(WAIT)
            await until(lambda: proxy.counters.refused)
            assert proxy.counters.local_responses == {403: 1}
            assert proxy.counters.refused == 1
            assert "BYE" not in bob.endpoint.counters.requests_in
            assert "BYE" not in proxy.counters.requests_forwarded
            b.bye()  # the callee's BYE is let through
            await b.ended(WAIT)
            await until(lambda: proxy.counters.requests_forwarded.get("BYE"))
            assert proxy.counters.requests_forwarded["BYE"] == 1

    run(main())


# --- forking and failover -------------------------------------------------------------------


def test_parallel_forking_first_2xx_wins_and_the_other_branch_is_cancelled() -> None:
    async def main() -> None:
        async with network(bobs=2) as net:
            bob1, bob2 = net.bobs
            net.fork_to_every_bob()
            a = net.call()
            b1, b2 = await incoming(bob1), await incoming(bob2)
            b1.ring()
            b2.ring()
            await a.wait_for(Ringing, WAIT)
            b1.answer(ANSWER)
            await a.answered(WAIT)
            assert (await b2.ended(WAIT)).cause is Cause.CANCELLED
            await b1.answered(WAIT)
            assert net.proxy.counters.branches_cancelled == 1
            assert bob2.endpoint.counters.responses_out.get(487) == 1
            a.bye()
            await b1.ended(WAIT)

    run(main())


def test_serial_failover_after_503() -> None:
    async def main() -> None:
        async with network(bobs=2) as net:
            bob1, bob2 = net.bobs
            groups = ((net.target(bob1),), (net.target(bob2),))
            net.policy.route_fn = lambda request, source: Forward(groups)
            a = net.call()
            (await incoming(bob1)).reject(503)
            b2 = await incoming(bob2)
            b2.answer(ANSWER)
            await a.answered(WAIT)
            assert net.proxy.counters.failovers == 1
            assert 503 not in net.proxy.counters.responses_forwarded
            a.bye()
            await b2.ended(WAIT)

    run(main())


def test_every_group_fails_the_exhausted_status_is_answered() -> None:
    async def main() -> None:
        async with network(bobs=2) as net:
            bob1, bob2 = net.bobs
            groups = ((net.target(bob1),), (net.target(bob2),))
            net.policy.route_fn = lambda request, source: Forward(
                groups, exhausted=503, retry_after=30
            )
            a = net.call()
            (await incoming(bob1)).reject(503)
            (await incoming(bob2)).reject(408)
            ended = await failure(a)
            assert ended.cause is Cause.REJECTED and ended.status == 503
            assert net.proxy.counters.local_responses == {503: 1}
            assert net.proxy.counters.failovers == 1

    run(main())


def test_a_503_that_is_not_a_failover_status_goes_up_as_500() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(
                ((net.target(bob),),), failover=frozenset()
            )
            a = net.call()
            (await incoming(bob)).reject(503)
            assert (await failure(a)).status == 500

    run(main())


def test_provisional_timeout_fails_over_from_a_dead_udp_hop() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            dead = Target(parse_uri("sip:bob@127.0.0.1:9;transport=udp"))  # discard: silent
            groups = ((dead,), (net.target(bob),))
            net.policy.route_fn = lambda request, source: Forward(groups, provisional_timeout=0.2)
            a = net.call()
            b = await incoming(bob)
            b.answer(ANSWER)
            await a.answered(WAIT)
            counters = net.proxy.counters
            assert counters.provisional_timeouts == 1 and counters.failovers == 1
            assert counters.branch_timeouts == 0  # failed over before Timer B
            a.bye()
            await b.ended(WAIT)

    run(main())


def test_a_target_with_no_transport_counts_as_a_transport_error() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            nowhere = Target(parse_uri("sip:bob@127.0.0.1:5060;transport=tls"))
            groups = ((nowhere,), (net.target(bob),))
            net.policy.route_fn = lambda request, source: Forward(groups)
            a = net.call()
            b = await incoming(bob)
            b.answer(ANSWER)
            await a.answered(WAIT)
            assert net.proxy.counters.branch_transport_errors == 1
            a.bye()
            await b.ended(WAIT)

    run(main())


def test_every_2xx_is_forwarded_the_caller_hangs_up_the_extra_one() -> None:
    """§16.7 step 5: two branches answer at once; both 2xx reach the caller, whose UA
    acknowledges the second and ends it with a BYE (§13.2.2.4), through the proxy."""

    async def main() -> None:
        async with network(bobs=2) as net:
            bob1, bob2 = net.bobs
            net.fork_to_every_bob()
            a = net.call()
            b1, b2 = await incoming(bob1), await incoming(bob2)
            b1.answer(ANSWER)
            b2.answer(ANSWER)
            await a.answered(WAIT)
            await b1.answered(WAIT)
            await b2.answered(WAIT)  # the ACK came through the proxy
            assert (await b2.ended(WAIT)).cause is Cause.NORMAL
            assert net.proxy.counters.responses_forwarded[200] >= 2
            a.bye()
            await b1.ended(WAIT)

    run(main())


def test_6xx_cancels_the_other_branches_and_goes_up() -> None:
    async def main() -> None:
        async with network(bobs=2) as net:
            bob1, bob2 = net.bobs
            targets = (net.target(bob1), net.target(bob2))
            groups = (targets, (net.target(bob1),))  # never tried: a 6xx ends the search
            net.policy.route_fn = lambda request, source: Forward(groups)
            a = net.call()
            b1, b2 = await incoming(bob1), await incoming(bob2)
            b2.ring()
            await a.wait_for(Ringing, WAIT)
            b1.reject(603)
            assert (await b2.ended(WAIT)).cause is Cause.CANCELLED
            ended = await failure(a)
            assert ended.cause is Cause.REJECTED and ended.status == 603
            assert net.proxy.counters.failovers == 0
            assert bob1.phone.incoming.empty()

    run(main())


# --- CANCEL (§16.10) ------------------------------------------------------------------------


def test_cancel_from_the_caller_reaches_every_branch() -> None:
    async def main() -> None:
        async with network(bobs=2) as net:
            bob1, bob2 = net.bobs
            net.fork_to_every_bob()
            a = net.call()
            b1, b2 = await incoming(bob1), await incoming(bob2)
            b1.ring()
            b2.ring()
            await a.wait_for(Ringing, WAIT)
            a.cancel()
            assert (await b1.ended(WAIT)).cause is Cause.CANCELLED
            assert (await b2.ended(WAIT)).cause is Cause.CANCELLED
            ended = await a.ended(WAIT)
            assert ended.cause is Cause.CANCELLED
            assert net.proxy.counters.branches_cancelled == 2
            assert net.proxy.counters.responses_forwarded.get(487) == 1

    run(main())


def test_cancel_while_an_async_policy_decides() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            decide: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
            net.policy.route_fn = lambda request, source: decide
            a = net.call()
            await until(lambda: net.policy.routed)
            # the automatic 100 Trying lets the caller CANCEL (§9.1)
            await until(lambda: net.alice.endpoint.counters.responses_in.get(100))
            a.cancel()
            ended = await a.ended(WAIT)
            assert ended.cause is Cause.CANCELLED
            assert net.proxy.counters.local_responses == {200: 1, 487: 1}  # CANCEL, INVITE
            decide.set_result(Forward(((net.target(bob),),)))  # too late: ignored
            await asyncio.sleep(0)
            assert net.proxy.counters.requests_forwarded == {}

    run(main())


# --- local and async decisions, responses ---------------------------------------------------


def test_local_response_decision() -> None:
    async def main() -> None:
        async with network() as net:
            net.policy.route_fn = lambda request, source: net.proxy.response(request, 404)
            a = net.call()
            assert (await failure(a)).status == 404
            assert net.proxy.counters.local_responses == {404: 1}

    run(main())


def test_async_policy() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]

            async def route(request: Request, source: Source) -> Decision:
                await asyncio.sleep(0.01)  # a registrar lookup
                assert source.host == "127.0.0.1"
                return Forward(((net.target(bob),),))

            net.policy.route_fn = route
            a, b = await answered_call(net, bob)
            a.bye()
            await b.ended(WAIT)

    run(main())


def test_486_passes_through() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(((net.target(bob),),))
            a = net.call()
            (await incoming(bob)).reject(486)
            ended = await failure(a)
            assert ended.cause is Cause.REJECTED and ended.status == 486
            assert net.proxy.counters.responses_forwarded == {486: 1}

    run(main())


# --- raw requests ---------------------------------------------------------------------------

_numbers = itertools.count(1)


def raw_request(method: str, uri: str, max_forwards: int = 70) -> Request:
    n = next(_numbers)
    headers = Headers.of(
        [
            ("Max-Forwards", max_forwards),
            ("To", f"<{uri}>"),
            ("From", f"<sip:raw@example.com>;tag=raw{n}"),
            ("Call-ID", f"raw-{n}@example.com"),
            ("CSeq", f"1 {method}"),
            ("Contact", "<sip:raw@127.0.0.1>"),
        ]
    )
    request = Request(method, parse_uri(uri), headers)
    request.body = b""
    return request


async def final_response(endpoint: Endpoint, request: Request, dest: Destination) -> Response:
    done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    def on(_: ClientTransaction, outcome: Response | TransactionTimeout) -> None:
        if isinstance(outcome, Response) and outcome.status >= 200 and not done.done():
            done.set_result(outcome)

    endpoint.send_request(request, dest, on)
    return await asyncio.wait_for(done, WAIT)


@contextlib.asynccontextmanager
async def raw_client() -> AsyncIterator[Endpoint]:
    endpoint = Endpoint(timers=FAST)
    await endpoint.listen("UDP", "127.0.0.1", 0)
    try:
        yield endpoint
    finally:
        await endpoint.close()


def test_max_forwards_zero() -> None:
    async def main() -> None:
        async with network() as net, raw_client() as client:
            message = raw_request("MESSAGE", "sip:bob@example.com", max_forwards=0)
            assert (await final_response(client, message, net.dest())).status == 483
            options = raw_request("OPTIONS", "sip:bob@example.com", max_forwards=0)
            assert (await final_response(client, options, net.dest())).status == 200
            assert net.policy.routed == []

    run(main())


def test_non_invite_request_is_forwarded() -> None:
    async def main() -> None:
        async with network() as net, raw_client() as client:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(
                ((net.target(bob),),), headers=[("P-Asserted-Identity", "<sip:raw@example.com>")]
            )
            options = raw_request("OPTIONS", "sip:bob@example.com")
            response = await final_response(client, options, net.dest())
            assert response.status == 200 and len(response.via) == 1
            assert net.proxy.counters.requests_forwarded == {"OPTIONS": 1}

    run(main())


def test_401_challenge_passes_with_its_header() -> None:
    async def main() -> None:
        async with network() as net, raw_client() as client:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(((net.target(bob),),))
            invite = raw_request("INVITE", "sip:bob@example.com")
            pending = asyncio.ensure_future(final_response(client, invite, net.dest()))
            challenge = 'Digest realm="example.com", nonce="abc", algorithm=MD5'
            (await incoming(bob)).reject(401, headers=[("WWW-Authenticate", challenge)])
            response = await pending
            assert response.status == 401
            assert response.headers.get_all("WWW-Authenticate") == [challenge]
            assert len(response.via) == 1  # ours was removed

    run(main())


def test_in_dialog_request_to_a_host_name_fails() -> None:
    """No resolver here: an in-dialog request whose next hop is a host name cannot be sent
    (a transport error, §16.9) and is answered 408 after admit."""

    async def main() -> None:
        async with network() as net, raw_client() as client:
            bye = raw_request("BYE", "sip:bob@example.com")
            bye.headers.set("To", "<sip:bob@example.com>;tag=x")
            assert (await final_response(client, bye, net.dest())).status == 408
            assert net.policy.admitted == ["BYE"]

    run(main())


def test_407_challenges_of_every_branch_are_aggregated() -> None:
    """§16.7 step 7: the 407 that goes up carries the Proxy-Authenticate of both branches."""

    async def main() -> None:
        async with network(bobs=2) as net, raw_client() as client:
            bob1, bob2 = net.bobs
            net.fork_to_every_bob()
            invite = raw_request("INVITE", "sip:bob@example.com")
            pending = asyncio.ensure_future(final_response(client, invite, net.dest()))
            one = 'Digest realm="one.example.com", nonce="1"'
            two = 'Digest realm="two.example.com", nonce="2"'
            (await incoming(bob1)).reject(407, headers=[("Proxy-Authenticate", one)])
            (await incoming(bob2)).reject(407, headers=[("Proxy-Authenticate", two)])
            response = await pending
            assert response.status == 407
            assert sorted(response.headers.get_all("Proxy-Authenticate")) == [one, two]

    run(main())


class Strays:
    """A TU that keeps the responses matching none of its transactions."""

    def __init__(self) -> None:
        self.responses: asyncio.Queue[Response] = asyncio.Queue()

    def on_request(self, endpoint: Endpoint, transaction: object, request: Request) -> None:
        pass

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        pass

    def on_response(self, endpoint: Endpoint, transaction: object, response: Response) -> None:
        pass

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        self.responses.put_nowait(response)

    def on_timeout(self, endpoint: Endpoint, transaction: object, reason: str) -> None:
        pass


def test_stray_2xx_is_forwarded_by_the_next_via() -> None:
    """§16.11: a 2xx retransmission matching no transaction goes on by its next Via."""

    async def main() -> None:
        async with network() as net:
            strays = Strays()
            upstream = Endpoint(strays, timers=FAST)
            client = await upstream.listen("UDP", "127.0.0.1", 0)
            try:
                headers = Headers.of(
                    [
                        ("Via", f"SIP/2.0/UDP {net.udp.sent_by};branch=z9hG4bKproxy"),
                        ("Via", f"SIP/2.0/UDP {client.sent_by};branch=z9hG4bKuac;rport"),
                        ("From", "<sip:alice@example.com>;tag=a"),
                        ("To", "<sip:bob@example.com>;tag=b"),
                        ("Call-ID", "stray@example.com"),
                        ("CSeq", "1 INVITE"),
                        ("Content-Length", 0),
                    ]
                )
                net.proxy.on_stray_response(net.endpoint, Response(200, headers=headers))
                response = await asyncio.wait_for(strays.responses.get(), WAIT)
                assert response.status == 200 and len(response.via) == 1
                assert net.proxy.counters.stray_forwarded == 1
                ringing = Response(180, headers=headers.copy())
                net.proxy.on_stray_response(net.endpoint, ringing)  # not a 2xx: dropped
                assert net.proxy.counters.stray_forwarded == 1
            finally:
                await upstream.close()

    run(main())
