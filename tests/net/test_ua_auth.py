"""Client Digest authentication of the UA core on loopback (RFC 3261 §8.1.3.5, §22.2, §22.3;
RFC 7616; RFC 8760): a callee whose application challenges INVITEs with a real DigestServer,
over UDP and TCP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from ua_harness import ANSWER, FAST, OFFER, QUICK, WAIT, run

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import Source, Transport
from hybridvoice.net.ua import Call, CallFailedError, DigestCredentials, UserAgent
from hybridvoice.sip import Request, Response
from hybridvoice.sip.auth import Credentials, DigestServer, Password
from hybridvoice.sip.message import make_response
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.session import Answered, Cause, Confirmed, Disconnected, Ringing, State
from hybridvoice.sip.transaction import ServerTransaction
from hybridvoice.sip.uri import SipUri

KINDS = pytest.mark.parametrize("kind", ["UDP", "TCP"])
REALM = "hv.test"
GOOD = DigestCredentials("alice", "s3cret")


def lookup(username: str, realm: str, algorithm: str) -> Password | None:
    return Password("s3cret") if username == "alice" else None


class Gatekeeper:
    """The callee's application: challenges every INVITE without valid credentials (407 with
    Proxy-Authenticate, or 401 with WWW-Authenticate), queues the others."""

    def __init__(self, status: int = 407, realm: str = REALM, *, guard: bool = True) -> None:
        self.status = status
        self.guard = guard  # False: every call goes through
        self.server = DigestServer(realm, b"0123456789abcdef0123", algorithms=("SHA-256", "MD5"))
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()
        self.invites: list[Request] = []  # every INVITE that reached the application
        self.verdicts: list[str] = []

    @property
    def headers(self) -> tuple[str, str]:
        if self.status == 407:
            return "Proxy-Authenticate", "Proxy-Authorization"
        return "WWW-Authenticate", "Authorization"

    def check(self, request: Request) -> bool:
        value = request.headers.get(self.headers[1])
        if value is None:
            return False
        result = self.server.verify(
            Credentials.parse(value),
            method=request.method,
            body=request.body,
            now=asyncio.get_running_loop().time(),
            lookup=lookup,
            uri=str(request.uri),
        )
        self.verdicts.append(result.value)
        return result.ok

    def challenge(self) -> list[tuple[str, object]]:
        now = asyncio.get_running_loop().time()
        return [(self.headers[0], str(c)) for c in self.server.challenges(now)]

    def on_incoming_call(self, call: Call) -> None:
        self.invites.append(call.invite)
        if not self.guard or self.check(call.invite):
            self.incoming.put_nowait(call)
        else:
            call.reject(self.status, headers=self.challenge())

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False


class GuardedUA(UserAgent):
    """A callee that also challenges BYEs (before its session sees them) and keeps ACKs."""

    def __init__(self, endpoint: Endpoint, gate: Gatekeeper, **kwargs: Any) -> None:
        super().__init__(endpoint, gate, **kwargs)
        self.acks: list[Request] = []

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        gate = self.application
        assert isinstance(gate, Gatekeeper)
        if request.method == "BYE" and gate.guard and not gate.check(request):
            challenged = make_response(request, gate.status, headers=gate.challenge())
            endpoint.send_response(transaction, challenged)
            return
        super().on_request(endpoint, transaction, request)

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        self.acks.append(request)
        super().on_ack(endpoint, request, source)


@dataclass
class Peer:
    ua: UserAgent
    endpoint: Endpoint
    transport: Transport

    def uri(self, user: str = "bob") -> str:
        host, port = self.transport.local
        return f"sip:{user}@{host}:{port};transport={self.transport.kind.lower()}"


@contextlib.asynccontextmanager
async def pair(
    kind: str, status: int = 407, *, guard: bool = True
) -> AsyncIterator[tuple[Peer, Peer, Gatekeeper]]:
    caller_ep, callee_ep = Endpoint(timers=FAST), Endpoint(timers=FAST)
    gate = Gatekeeper(status, guard=guard)
    caller = UserAgent(caller_ep, config=QUICK, rng=random.Random())
    callee = GuardedUA(callee_ep, gate, config=QUICK, rng=random.Random())
    peers = [
        Peer(caller, caller_ep, await caller_ep.listen(kind, "127.0.0.1")),
        Peer(callee, callee_ep, await callee_ep.listen(kind, "127.0.0.1")),
    ]
    try:
        yield peers[0], peers[1], gate
    finally:
        for peer in peers:
            peer.ua.close()
            await peer.endpoint.close()


def place(alice: Peer, bob: Peer, credentials: DigestCredentials | None = GOOD) -> Call:
    return alice.ua.invite(
        bob.uri(), from_="<sip:alice@example.com>", sdp=OFFER, credentials=credentials
    )


@KINDS
@pytest.mark.parametrize("status", [407, 401])
def test_challenged_invite_is_answered(kind: str, status: int) -> None:
    async def main() -> None:
        async with pair(kind, status) as (alice, bob, gate):
            a = place(alice, bob)
            b = await asyncio.wait_for(gate.incoming.get(), WAIT)
            b.ring()
            await a.wait_for(Ringing, WAIT)
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            assert await b.answered(WAIT) == Confirmed(None)
            # the application never saw the challenge: no Disconnected, same Call object
            assert not any(isinstance(e, Disconnected) for e in a.history)
            assert a in alice.ua.calls and a.state is State.CONFIRMED
            assert alice.endpoint.counters.requests_out["INVITE"] == 2
            first, second = gate.invites
            assert first.call_id == second.call_id == a.call_id
            assert first.from_ is not None and second.from_ is not None
            assert first.from_.tag == second.from_.tag
            assert first.cseq is not None and second.cseq is not None
            assert (second.cseq.seq, second.cseq.method) == (first.cseq.seq + 1, "INVITE")
            assert first.top_via is not None and second.top_via is not None
            assert first.top_via.branch != second.top_via.branch
            assert second.body == first.body == OFFER
            header = gate.headers[1]
            assert header not in first.headers and "algorithm=SHA-256" in (
                second.headers.get(header) or ""
            )
            assert gate.verdicts == ["ok"]
            # the ACK for the 2xx carries the INVITE's credentials (§22.1, §13.2.2.4)
            assert isinstance(bob.ua, GuardedUA)
            ack = bob.ua.acks[-1]
            assert ack.headers.get(header) == second.headers.get(header)
            a.bye()  # challenged too, and sent again
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert bob.endpoint.counters.requests_in["BYE"] == 2

    run(main())


@KINDS
def test_wrong_password_fails_with_the_second_challenge(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob, gate):
            a = place(alice, bob, DigestCredentials("alice", "wrong"))
            with pytest.raises(CallFailedError) as failed:
                await a.answered(WAIT)
            assert failed.value.disconnected == Disconnected(Cause.REJECTED, 407, "remote")
            assert [e for e in a.history if isinstance(e, Disconnected)] == [
                failed.value.disconnected
            ]
            assert alice.endpoint.counters.requests_out["INVITE"] == 2
            assert len(gate.invites) == 2 and gate.verdicts == ["bad-response"]
            assert not alice.ua.calls

    run(main())


@KINDS
def test_without_credentials_the_challenge_ends_the_call(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob, _):
            a = place(alice, bob, None)
            assert await a.ended(WAIT) == Disconnected(Cause.REJECTED, 407, "remote")
            assert alice.endpoint.counters.requests_out["INVITE"] == 1

    run(main())


@KINDS
def test_credentials_for_another_realm_are_not_sent(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob, _):
            a = place(alice, bob, DigestCredentials("alice", "s3cret", realm="elsewhere"))
            assert await a.ended(WAIT) == Disconnected(Cause.REJECTED, 407, "remote")
            assert alice.endpoint.counters.requests_out["INVITE"] == 1

    run(main())


@KINDS
def test_cancel_after_the_retry_cancels_the_retried_invite(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob, gate):
            a = place(alice, bob)
            b = await asyncio.wait_for(gate.incoming.get(), WAIT)
            b.ring()
            await a.wait_for(Ringing, WAIT)
            a.cancel()
            assert await a.ended(WAIT) == Disconnected(Cause.CANCELLED, 487, "local")
            # the callee's transaction layer matched the CANCEL to the retried INVITE
            assert await b.ended(WAIT) == Disconnected(Cause.CANCELLED, 487, "remote")
            assert b.invite.cseq is not None and b.invite.cseq.seq == 2
            assert bob.endpoint.counters.requests_in["CANCEL"] == 1
            assert alice.endpoint.counters.requests_out["INVITE"] == 2

    run(main())


@KINDS
def test_a_challenge_after_cancel_is_not_answered(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob, gate):
            a = place(alice, bob)
            a.cancel()  # before any response: the 407 ends the call, nothing is sent again
            assert await a.ended(WAIT) == Disconnected(Cause.CANCELLED, 407, "local")
            assert alice.endpoint.counters.requests_out["INVITE"] == 1
            assert len(gate.invites) == 1

    run(main())


@KINDS
def test_challenged_bye_is_sent_again_with_credentials(kind: str) -> None:
    async def main() -> None:
        async with pair(kind) as (alice, bob, gate):
            a = place(alice, bob)
            b = await asyncio.wait_for(gate.incoming.get(), WAIT)
            b.answer(ANSWER)
            await a.answered(WAIT)
            await b.answered(WAIT)
            a.bye()
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            assert bob.endpoint.counters.requests_in["BYE"] == 2
            assert gate.verdicts == ["ok", "ok"]

    run(main())


class Forwarder(asyncio.DatagramProtocol):
    """A tiny stateless proxy on UDP (§16.11): pops its own Route (loose routing, §16.4),
    Record-Routes initial INVITEs, adds its Via with a branch derived from the request's,
    forwards to the next Route or the Request-URI, and sends responses back along the Vias.
    With ``gate`` it challenges initial INVITEs itself (407, §22.3) and drops their ACKs."""

    def __init__(self, gate: Gatekeeper | None = None) -> None:
        self.gate = gate
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[tuple[str, int]] = []  # (method, CSeq) of every request, in order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    @property
    def route(self) -> str:
        return f"<sip:127.0.0.1:{self.port};lr>"

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            message.headers.pop_first_value("Via")
            via = message.top_via
            assert via is not None
            self._send(message, via.host, via.port or 5060)
        else:
            self._forward(message)

    def _forward(self, request: Request) -> None:
        assert request.cseq is not None and request.to is not None
        key = (request.method, request.cseq.seq)
        if key not in self.seen:
            self.seen.append(key)
        routes = request.route
        if routes and isinstance(routes[0].uri, SipUri) and routes[0].uri.port == self.port:
            request.headers.pop_first_value("Route")
        initial = request.to.tag is None
        gate = self.gate
        if gate is not None and initial and request.method == "ACK":
            return  # the ACK for our own 407
        if gate is not None and initial and request.method == "INVITE" and not gate.check(request):
            via = request.top_via
            assert via is not None
            challenge = make_response(request, 407, to_tag="proxy", headers=gate.challenge())
            self._send(challenge, via.host, via.port or 5060)
            return
        if initial and request.method == "INVITE":
            request.headers.prepend("Record-Route", self.route)
        via = request.top_via
        assert via is not None and via.branch is not None
        branch = "z9hG4bK" + hashlib.sha256(via.branch.encode()).hexdigest()[:16]
        request.headers.prepend("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch}")
        routes = request.route
        hop = routes[0].uri if routes else request.uri
        assert isinstance(hop, SipUri)
        self._send(request, hop.host_bare, hop.port or 5060)

    def _send(self, message: Request | Response, host: str, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(bytes(message), (host, port))


@contextlib.asynccontextmanager
async def forwarder(gate: Gatekeeper | None = None) -> AsyncIterator[Forwarder]:
    loop = asyncio.get_running_loop()
    transport, proxy = await loop.create_datagram_endpoint(
        lambda: Forwarder(gate), local_addr=("127.0.0.1", 0)
    )
    proxy.transport = transport
    try:
        yield proxy
    finally:
        transport.close()


@pytest.mark.parametrize("challenge", [False, True])
def test_call_through_a_proxy_follows_the_record_route(challenge: bool) -> None:
    """§8.1.2: the first Route is the next hop; §12.1.2 / §12.2.1.1: the dialog's requests
    (ACK, BYE, either side's) follow the Record-Route; §22.3: the proxy's 407 is answered."""

    async def main() -> None:
        proxy_gate = Gatekeeper(407, "proxy.test") if challenge else None
        async with pair("UDP", guard=False) as (alice, bob, gate), forwarder(proxy_gate) as proxy:
            a = alice.ua.invite(
                bob.uri(),
                from_="<sip:alice@example.com>",
                sdp=OFFER,
                headers=[("Route", proxy.route)],
                credentials=GOOD if challenge else None,
            )
            b = await asyncio.wait_for(gate.incoming.get(), WAIT)
            record_route = b.invite.record_route
            assert not b.invite.route and [str(r) for r in record_route] == [proxy.route]
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            await b.answered(WAIT)  # the ACK came through the proxy
            assert a.session.dialog is not None and b.session.dialog is not None
            assert [str(r) for r in a.session.dialog.route_set] == [proxy.route]
            assert [str(r) for r in b.session.dialog.route_set] == [proxy.route]
            b.bye()  # the callee's request follows its route set too
            assert await a.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            first = [("INVITE", 1), ("ACK", 1)] if challenge else []
            n = 2 if challenge else 1
            assert proxy.seen == [*first, ("INVITE", n), ("ACK", n), ("BYE", 1)]
            assert alice.endpoint.counters.requests_out["INVITE"] == (2 if challenge else 1)

    run(main())


def test_proxy_and_callee_challenges_are_both_answered() -> None:
    """§22.3: a 407 from the proxy, then a 401 from the callee; the last INVITE carries
    Proxy-Authorization and Authorization, each for its realm."""

    async def main() -> None:
        async with (
            pair("UDP", 401) as (alice, bob, gate),
            forwarder(Gatekeeper(407, "proxy.test")) as proxy,
        ):
            a = alice.ua.invite(
                bob.uri(),
                from_="<sip:alice@example.com>",
                sdp=OFFER,
                headers=[("Route", proxy.route)],
                credentials=GOOD,
            )
            b = await asyncio.wait_for(gate.incoming.get(), WAIT)
            b.answer(ANSWER)
            await a.answered(WAIT)
            assert alice.endpoint.counters.requests_out["INVITE"] == 3
            last = b.invite
            assert last.cseq is not None and last.cseq.seq == 3
            assert 'realm="proxy.test"' in (last.headers.get("Proxy-Authorization") or "")
            assert f'realm="{REALM}"' in (last.headers.get("Authorization") or "")
            a.bye()
            await b.ended(WAIT)

    run(main())
