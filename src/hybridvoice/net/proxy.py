"""A transaction-stateful SIP proxy core (RFC 3261 §16, RFC 5658 double Record-Route).

:class:`Proxy` is the transaction user of an :class:`~hybridvoice.net.endpoint.Endpoint`.
A :class:`ProxyPolicy` decides where initial requests go (a :class:`Forward`: groups of
:class:`Target` tried one after another, the targets of a group forked in parallel) or answers
them itself (a :class:`~hybridvoice.sip.message.Response`: registrar 200, 403, 404, 407...);
it also admits or refuses in-dialog requests and ACKs.

* §16.3 request validation: :func:`~hybridvoice.sip.validate.check_proxy_request` (400, 416,
  483, OPTIONS with Max-Forwards 0 answered 200, 420 for Proxy-Require).
* §16.4 Route processing: the top Route is removed when it is ours (one of our transports'
  addresses or Record-Route hosts), and a second one of ours with it (RFC 5658 §3.2). A
  remaining Route, or a To tag, makes the request an in-dialog one: ``policy.admit``, then
  forwarded to the first Route, else the Request-URI. Anything else goes to ``policy.route``.
* §16.6 forwarding: a copy per branch with the new Request-URI, Max-Forwards decremented (70
  when absent), Record-Route with ``lr`` for dialog-creating methods (two of them, outbound
  interface on top, when the request leaves on another transport than it came in on, RFC 5658
  §4), the policy's headers, our Via (added by the endpoint) and a new client transaction.
  Timer C (step 11) runs per INVITE branch and is reset by provisional responses.
* §16.7 responses: 1xx (not 100) forwarded at once, every 2xx forwarded at once (§16.7 step 5,
  later 2xx statelessly, §16.11), the best final response otherwise (step 6: 6xx, then the
  lowest class, 401/407/415/420/484 preferred among 4xx; a branch's 503 goes up as 500; 401
  and 407 carry the challenges of every branch, step 7). A 2xx or 6xx cancels the pending
  branches (step 10, §16.10 and §10).
* Serial failover (not in the RFC, the routing policy's): a group with no usable final
  response (only statuses in ``Forward.failover``, timeouts, transport errors; §16.8 and
  §16.9 treat the last two as 408 and 503) moves on to the next group; when none is left the
  proxy answers ``Forward.exhausted`` itself.
* §16.8 Timer C: on expiry the branch is cancelled and counts as a 408.
* §16.10 CANCEL: a CANCEL matching a pending INVITE (the transaction layer matches it, §9.2)
  is answered 200 and every pending branch is cancelled; the INVITE gets the branches' final
  response (487), or a local 487 when none comes within 64*T1 (at once when the policy is
  still deciding: its decision is then ignored).
* §16.11: stray 2xx retransmissions are forwarded statelessly by the next Via, ACKs for 2xx
  statelessly by the Route / Request-URI.

Hot path: the endpoint's parsed requests and responses are reused (responses go up with our
Via popped in place, no copy); one copy of the request per branch; a branch is its own client
transaction callback (no closure); one loop timer per INVITE branch, moved lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final, Protocol

from hybridvoice.sip.errors import LocalProtocolError, ParseError
from hybridvoice.sip.headers import Address
from hybridvoice.sip.message import REASON_PHRASES, Request, Response, make_response
from hybridvoice.sip.transaction import (
    ClientState,
    ClientTransaction,
    ServerState,
    ServerTransaction,
    TransactionTimeout,
)
from hybridvoice.sip.uri import SipUri, Uri
from hybridvoice.sip.validate import KNOWN_METHODS, UasPolicy, check_proxy_request

from .endpoint import Endpoint
from .transport import (
    RELIABLE,
    Destination,
    Source,
    Transport,
    TransportError,
    bare_host,
    response_address,
    via_host,
)
from .ua import destination_of

__all__ = [
    "DEFAULT_CHECKS",
    "Decision",
    "Forward",
    "Proxy",
    "ProxyCounters",
    "ProxyPolicy",
    "Target",
]

_log = logging.getLogger("hybridvoice.net.proxy")

#: §16.3: what the proxy itself supports (Proxy-Require, URI schemes, the OPTIONS answer).
DEFAULT_CHECKS: Final = UasPolicy(
    allowed_methods=tuple(sorted(KNOWN_METHODS)), schemes=("sip", "sips", "tel")
)
#: Methods whose forwarded requests get our Record-Route (§16.6 step 4, RFC 6665 §4.3).
_RECORD_ROUTE_METHODS: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
#: §16.7 step 6: preferred among 4xx.
_PREFERRED_4XX: Final = frozenset({401, 407, 415, 420, 484})
_CHALLENGES: Final = ("WWW-Authenticate", "Proxy-Authenticate")
#: client transaction states in which a CANCEL may be created (§9.1)
_CANCELLABLE: Final = (ClientState.CALLING, ClientState.PROCEEDING)
#: server transaction states in which a response may still be sent through it
_OPEN_SERVER: Final = (ServerState.TRYING, ServerState.PROCEEDING, ServerState.ACCEPTED)
#: what a timeout and a transport error count as (§16.8, §16.9)
_TIMEOUT: Final = 408
_TRANSPORT: Final = 503

# branch timer phases
_WAIT_1XX: Final = 1  # provisional_timeout: no response at all yet
_TIMER_C: Final = 2  # Timer C (§16.6 step 11)
_CANCELLING: Final = 3  # cancelled upstream: waiting 64*T1 for the branch's final response


@dataclass(frozen=True, slots=True)
class Target:
    """One branch: the new Request-URI and the next hop (None: from the URI, which then needs
    an IP host; ``transport=`` and the port are honoured, RFC 3263 §4 without DNS)."""

    uri: Uri
    destination: Destination | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward the request: ``groups`` are tried one after another, the targets within a
    group in parallel (§16.6 parallel forking).

    A group moves on to the next when it got no usable final response: only statuses in
    ``failover``, timeouts or transport errors. ``timeout`` (INVITE) cancels a group that has
    no final response in time; ``provisional_timeout`` (INVITE) fails a branch that got no
    response at all (100 Trying counts) in time, e.g. a dead next hop over UDP. When every
    group failed the proxy answers ``exhausted`` itself, with ``Retry-After: retry_after``
    when given. ``headers`` are added to every forwarded request (e.g. P-Asserted-Identity).
    """

    groups: Sequence[Sequence[Target]]
    failover: frozenset[int] = frozenset({408, 503, 504})
    timeout: float | None = None
    provisional_timeout: float | None = None
    exhausted: int = 408
    retry_after: int | None = None
    headers: Sequence[tuple[str, str]] = ()
    record_route: bool = True


#: What the policy decides for an initial request: forward it, or answer it with a Response.
Decision = Forward | Response


class ProxyPolicy(Protocol):
    """The routing logic: the online service's registrar-backed routing, the edge's."""

    def route(self, request: Request, source: Source) -> Decision | Awaitable[Decision]:
        """An initial (out-of-dialog) request: where to, or the response to send."""
        ...

    def admit(self, request: Request, source: Source) -> Response | None:
        """An in-dialog request or an ACK: None lets it through, a Response refuses it (an
        ACK is dropped instead)."""
        ...


@dataclass(slots=True)
class ProxyCounters:
    """Plain counters for the management layer."""

    requests_forwarded: dict[str, int] = field(default_factory=dict)
    responses_forwarded: dict[int, int] = field(default_factory=dict)
    local_responses: dict[int, int] = field(default_factory=dict)
    acks_forwarded: int = 0
    stray_forwarded: int = 0
    branches_cancelled: int = 0
    failovers: int = 0
    group_timeouts: int = 0
    provisional_timeouts: int = 0
    timer_c: int = 0
    branch_timeouts: int = 0
    branch_transport_errors: int = 0
    refused: int = 0
    policy_errors: int = 0


class _Context:
    """The response context of one forwarded request (§16.7): its server transaction, the
    branches of the current group and the best final response so far."""

    __slots__ = (
        "best",
        "best_rank",
        "branches",
        "cancelled",
        "challenges",
        "final",
        "forward",
        "group",
        "invite",
        "max_forwards",
        "pending",
        "record_route",
        "request",
        "routing",
        "server_tx",
        "source",
        "starting",
        "stopped",
        "timer",
    )

    def __init__(self, server_tx: ServerTransaction, request: Request, source: Source) -> None:
        self.server_tx = server_tx
        self.request = request
        self.source = source
        self.invite = request.method == "INVITE"
        self.forward: Forward | None = None
        self.branches: list[_Branch] = []
        self.pending = 0  # branches of the current group without a final outcome
        self.group = 0
        self.best: Response | None = None
        self.best_rank = 1000
        self.challenges: list[Response] | None = None
        self.final = False  # the final response went upstream
        self.stopped = False  # no more groups: CANCEL from upstream, or a 6xx
        self.cancelled = False  # CANCEL from upstream
        self.routing = False  # the policy is still deciding (async)
        self.starting = False  # branches of a group being sent
        self.max_forwards = "70"
        self.record_route = False
        self.timer: asyncio.TimerHandle | None = None


class _Branch:
    """One forwarded request; it is the callback of its client transaction (and of the
    CANCEL's, which it ignores)."""

    __slots__ = ("armed", "ctx", "deadline", "done", "phase", "provisional", "proxy", "server_tx",
                 "timer", "tx")  # fmt: skip

    def __init__(self, proxy: Proxy, ctx: _Context) -> None:
        self.proxy = proxy
        self.ctx: _Context | None = ctx  # None once the context is over
        self.server_tx = ctx.server_tx  # where a late 2xx goes
        self.tx: ClientTransaction | None = None
        self.done = False  # final outcome known (or given up)
        self.provisional = False  # any response came (100 included)
        self.phase = 0
        self.deadline = 0.0
        self.armed = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def __call__(self, tx: ClientTransaction, outcome: Response | TransactionTimeout) -> None:
        self.proxy._on_branch(self, tx, outcome)


def _rank(status: int) -> int:
    """§16.7 step 6, lower is better: 6xx, 3xx, preferred 4xx, 4xx, 5xx."""
    if status >= 600:
        return 0
    if status >= 500:
        return 40
    if status >= 400:
        return 20 if status in _PREFERRED_4XX else 30
    return 10


class Proxy:
    """A transaction-stateful proxy over ``endpoint`` (it becomes the endpoint's TU).

    ``record_route_hosts`` overrides the host written in our Record-Route per transport
    (default: the transport's advertised address); those hosts are also recognised as ours
    in Route headers. ``checks`` is what §16.3 validates against. ``timer_c`` is §16.6 step
    11's Timer C (more than 3 minutes by the RFC; 180 s by default). ``rng`` makes the To
    tags of local responses reproducible.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        policy: ProxyPolicy,
        *,
        record_route_hosts: Mapping[Transport, str] | None = None,
        checks: UasPolicy = DEFAULT_CHECKS,
        timer_c: float = 180.0,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        endpoint.tu = self
        self.policy = policy
        self.checks = checks
        self.timer_c = timer_c
        self.counters = ProxyCounters()
        self._rr_hosts = dict(record_route_hosts or {})
        self._rng = rng or random.Random()
        self._loop = asyncio.get_running_loop()
        self._cancel_wait = endpoint.layer.config.timer_b
        self._record_routes: dict[int, str] = {}
        self._ours: dict[tuple[str, int], Transport] = {}
        self._ours_for = -1  # how many transports ``_ours`` was built from
        self._tasks: set[asyncio.Future[Decision]] = set()

    def close(self) -> None:
        """Stop the routing decisions still running (the endpoint is closed by its owner)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    # --- helpers for policies ------------------------------------------------------------

    def response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, object]] = (),
    ) -> Response:
        """A local response to ``request`` with a fresh To tag (§8.2.6.2, §16.7 step 5)."""
        return make_response(request, status, reason, to_tag=self._tag(), headers=headers)

    def record_route(self, transport: Transport) -> str:
        """Our Record-Route value on ``transport`` (§16.6 step 4, with ``lr``)."""
        rr = self._record_routes.get(id(transport))
        if rr is None:
            host, port = transport.advertised
            host = self._rr_hosts.get(transport) or via_host(host)
            rr = f"<sip:{host}:{port};transport={transport.kind.lower()};lr>"
            self._record_routes[id(transport)] = rr
        return rr

    def is_ours(self, uri: Uri) -> bool:
        """Whether ``uri`` names this proxy (a transport's address or Record-Route host)."""
        return self._our_transport(uri) is not None

    def _our_transport(self, uri: Uri) -> Transport | None:
        """The transport of ours ``uri`` names, if any."""
        if type(uri) is not SipUri:
            return None
        if len(self.endpoint.transports) != self._ours_for:
            self._build_ours()
        port = uri.port
        if port is None:
            port = 5061 if uri.scheme == "sips" or uri.transport == "tls" else 5060
        return self._ours.get((uri.host_bare.lower(), port))

    def _build_ours(self) -> None:
        ours: dict[tuple[str, int], Transport] = {}
        for transport in self.endpoint.transports:
            for host, port in (transport.local, transport.advertised):
                ours.setdefault((bare_host(host).lower(), port), transport)
            rr_host = self._rr_hosts.get(transport)
            if rr_host is not None:
                ours.setdefault((bare_host(rr_host).lower(), transport.advertised[1]), transport)
        self._ours = ours
        self._ours_for = len(self.endpoint.transports)

    def _tag(self) -> str:
        return f"{self._rng.getrandbits(48):012x}"

    # --- the endpoint's TransactionUser protocol ------------------------------------------------

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        """§16.3 validation, §16.4 Route processing, then admit (in-dialog) or route."""
        if request.method == "CANCEL":
            self._on_cancel(transaction, request)
            return
        source = transaction.context
        assert isinstance(source, Source)
        try:
            error = check_proxy_request(request, policy=self.checks, to_tag=self._tag())
            if error is not None:
                self._local(transaction, error)
                return
            route, via = self._strip_own_routes(request)
            to = request.to
            in_dialog = route is not None or (to is not None and to.tag is not None)
        except ParseError as exc:
            self._local(transaction, self.response(request, 400, f"Bad Request ({exc})"[:80]))
            return
        if in_dialog:
            self._in_dialog(transaction, request, source, route, via)
            return
        try:
            decision = self.policy.route(request, source)
        except Exception:  # the policy's bug must not take the proxy down
            _log.exception("routing policy failed on %r", request)
            self.counters.policy_errors += 1
            self._local(transaction, self.response(request, 500))
            return
        if isinstance(decision, (Forward, Response)):
            self._apply(transaction, request, source, decision, None)
            return
        ctx = _Context(transaction, request, source)
        ctx.routing = True
        transaction.tu_data = ctx
        task = asyncio.ensure_future(decision)
        self._tasks.add(task)
        task.add_done_callback(partial(self._routed, ctx))

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        """§16.11: an ACK for a 2xx goes on statelessly, by Route or Request-URI."""
        try:
            max_forwards = request.max_forwards
            if max_forwards == 0:
                return
            route, via = self._strip_own_routes(request)
            hop = request.uri if route is None else route.uri
            if route is None and self.is_ours(hop):
                return  # an ACK for us: nothing to forward
            if self.policy.admit(request, source) is not None:
                self.counters.refused += 1
                return
            destination = _from(destination_of(hop), via)
            if destination is None:
                return
            request.headers.set(
                "Max-Forwards", "70" if max_forwards is None else str(max_forwards - 1)
            )
            self.endpoint.send_stateless(request, destination)
        except (ParseError, TransportError) as exc:
            _log.info("ACK not forwarded: %s", exc)
            return
        self.counters.acks_forwarded += 1

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        """Responses of transactions we no longer track: a 2xx goes on statelessly."""
        self.on_stray_response(endpoint, response)

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        """§16.7 step 5 and §16.11: a 2xx to an INVITE matching no transaction (a
        retransmission, another fork's) is forwarded by the next Via; others are dropped."""
        if not 200 <= response.status < 300:
            return
        try:
            cseq = response.cseq
            if cseq is None or cseq.method != "INVITE":
                return
            response.headers.pop_first_value("Via")
            via = response.top_via
            if via is None:
                return
            host, port = response_address(via, via.transport in RELIABLE)
            transport = endpoint.transport_for(Destination(via.transport, host, port))
            transport.send_message(response, host, port)
        except (ParseError, TransportError) as exc:
            _log.info("stray 2xx not forwarded: %s", exc)
            return
        self.counters.stray_forwarded += 1

    def on_timeout(
        self,
        endpoint: Endpoint,
        transaction: ClientTransaction | ServerTransaction,
        reason: str,
    ) -> None:
        """A response could not go upstream (§17.2.4): give up the context's branches."""
        ctx = transaction.tu_data
        if isinstance(ctx, _Context) and not ctx.final:
            ctx.final = ctx.stopped = True
            self._cancel_pending(ctx, wait=False)
            self._release(ctx)

    # --- initial requests -----------------------------------------------------------------

    def _routed(self, ctx: _Context, task: asyncio.Future[Decision]) -> None:
        self._tasks.discard(task)
        ctx.routing = False
        request = ctx.request
        failed = task.cancelled() or task.exception() is not None  # retrieved either way
        if failed:
            if not task.cancelled():
                _log.error("routing policy failed on %r", request, exc_info=task.exception())
            self.counters.policy_errors += 1
        if ctx.final:
            return  # cancelled meanwhile: answered 487 already
        decision = self.response(request, 500) if failed else task.result()
        self._apply(ctx.server_tx, request, ctx.source, decision, ctx)

    def _apply(
        self,
        transaction: ServerTransaction,
        request: Request,
        source: Source,
        decision: Decision,
        ctx: _Context | None,
    ) -> None:
        if type(decision) is not Forward:
            assert isinstance(decision, Response)
            if ctx is not None:
                ctx.final = True
                transaction.tu_data = None
            self._local(transaction, decision)
            return
        if ctx is None:
            ctx = _Context(transaction, request, source)
            transaction.tu_data = ctx
        self._start(ctx, decision)

    def _in_dialog(
        self,
        transaction: ServerTransaction,
        request: Request,
        source: Source,
        route: Address | None,
        via: Transport | None = None,
    ) -> None:
        """§16.4 with a Route left or a To tag: admit, then on to the Route or Request-URI,
        sent from ``via`` (the interface our Record-Route named) when known."""
        try:
            refusal = self.policy.admit(request, source)
        except Exception:  # the policy's bug must not take the proxy down
            _log.exception("admission policy failed on %r", request)
            self.counters.policy_errors += 1
            refusal = self.response(request, 500)
        if refusal is not None:
            self.counters.refused += 1
            self._local(transaction, refusal)
            return
        destination = None
        if route is not None:
            try:
                destination = destination_of(route.uri)
            except TransportError:
                destination = None
            if destination is None:  # a name, or not a SIP URI: no resolver here
                self._local(transaction, self.response(request, 503))
                return
        if destination is None and via is not None:
            with contextlib.suppress(TransportError):  # a name: _send_branch reports it
                destination = destination_of(request.uri)
        ctx = _Context(transaction, request, source)
        transaction.tu_data = ctx
        target = Target(request.uri, _from(destination, via))
        self._start(ctx, Forward(((target,),), record_route=False))

    def _on_cancel(self, transaction: ServerTransaction, request: Request) -> None:
        """§16.10: 200 to the CANCEL, then cancel every pending branch."""
        self._local(transaction, self.response(request, 200))
        invite_tx = transaction.cancels
        ctx = None if invite_tx is None else invite_tx.tu_data
        if not isinstance(ctx, _Context) or ctx.final or ctx.cancelled:
            return
        ctx.cancelled = ctx.stopped = True
        if ctx.routing:  # nothing forwarded yet: 487 now, the decision will be ignored
            self._complete(ctx, self.response(ctx.request, 487), local=True)
            return
        self._cancel_pending(ctx, wait=True)
        self._settle(ctx)

    # --- forwarding (§16.6) ---------------------------------------------------------------

    def _start(self, ctx: _Context, forward: Forward) -> None:
        request = ctx.request
        ctx.forward = forward
        max_forwards = request.max_forwards
        ctx.max_forwards = "70" if max_forwards is None else str(max_forwards - 1)
        ctx.record_route = forward.record_route and request.method in _RECORD_ROUTE_METHODS
        self._start_group(ctx, 0)

    def _start_group(self, ctx: _Context, index: int) -> None:
        forward = ctx.forward
        assert forward is not None
        if ctx.timer is not None:
            ctx.timer.cancel()
            ctx.timer = None
        ctx.group = index
        if index < len(forward.groups):
            ctx.starting = True
            for target in forward.groups[index]:
                self._send_branch(ctx, forward, target)
            ctx.starting = False
            timeout = forward.timeout
            if ctx.invite and timeout is not None and ctx.pending and not ctx.final:
                ctx.timer = self._loop.call_at(
                    self._loop.time() + timeout, self._on_group_timeout, ctx
                )
        self._settle(ctx)

    def _send_branch(self, ctx: _Context, forward: Forward, target: Target) -> None:
        request = ctx.request.copy()
        request.uri = target.uri
        headers = request.headers
        headers.set("Max-Forwards", ctx.max_forwards)
        branch = _Branch(self, ctx)
        ctx.branches.append(branch)
        ctx.pending += 1
        try:
            destination = target.destination
            if destination is None:
                destination = destination_of(target.uri)
                if destination is None:
                    raise TransportError(f"no address for {target.uri} (needs DNS)")
            if ctx.record_route:
                endpoint = self.endpoint
                out = endpoint.transport_for(destination)
                inbound = ctx.source.transport
                if out is not inbound:  # RFC 5658: one for each side, outbound on top
                    headers.prepend("Record-Route", self.record_route(inbound))
                headers.prepend("Record-Route", self.record_route(out))
            for name, value in forward.headers:
                headers.add(name, value)
            branch.tx = self.endpoint.send_request(request, destination, branch)
        except TransportError as exc:
            _log.info("%s to %s not sent: %s", request.method, target.uri, exc)
            self.counters.branch_transport_errors += 1
            self._record(ctx, branch, _TRANSPORT, None)
            return
        counts = self.counters.requests_forwarded
        counts[request.method] = counts.get(request.method, 0) + 1
        if ctx.invite and not branch.done:
            provisional_timeout = forward.provisional_timeout
            now = self._loop.time()
            if provisional_timeout is not None:
                branch.phase = _WAIT_1XX
                self._arm(branch, now + provisional_timeout)
            else:
                branch.phase = _TIMER_C
                self._arm(branch, now + self.timer_c)

    # --- responses (§16.7) ----------------------------------------------------------------

    def _on_branch(
        self, branch: _Branch, tx: ClientTransaction, outcome: Response | TransactionTimeout
    ) -> None:
        if tx.cancels is not None:
            return  # the response to our CANCEL: the INVITE's own response tells (§9.1)
        ctx = branch.ctx
        if type(outcome) is not Response:
            assert isinstance(outcome, TransactionTimeout)
            if ctx is not None and not branch.done:
                if outcome.reason == "transport":
                    self.counters.branch_transport_errors += 1
                    self._record(ctx, branch, _TRANSPORT, None)
                else:
                    self.counters.branch_timeouts += 1
                    self._record(ctx, branch, _TIMEOUT, None)
                self._settle(ctx)
            return
        status = outcome.status
        if status < 200:
            if ctx is None or branch.done:
                return
            branch.provisional = True
            if branch.phase in (_WAIT_1XX, _TIMER_C):
                branch.phase = _TIMER_C
                self._arm(branch, self._loop.time() + self.timer_c)
            if status != 100 and not ctx.final:
                outcome.headers.pop_first_value("Via")
                self._send_up(ctx.server_tx, outcome)
            return
        outcome.headers.pop_first_value("Via")
        if status < 300:
            if ctx is None or ctx.final:
                if tx.is_invite:
                    self._relay_2xx(branch.server_tx, outcome)
                return
            if not branch.done:
                self._record(ctx, branch, status, None)
            self._complete(ctx, outcome, local=False)
            return
        if ctx is None or branch.done:
            return
        self._record(ctx, branch, status, outcome)
        if status >= 600 and not ctx.stopped:
            ctx.stopped = True
            self._cancel_pending(ctx, wait=True)
        self._settle(ctx)

    def _record(
        self, ctx: _Context, branch: _Branch, status: int, response: Response | None
    ) -> None:
        """The final outcome of a branch of the current group; a usable response may become
        the best one (§16.7 step 6)."""
        branch.done = True
        ctx.pending -= 1
        if branch.timer is not None:
            branch.timer.cancel()
            branch.timer = None
        if response is None:
            return
        forward = ctx.forward
        assert forward is not None
        if status in forward.failover:
            return
        rank = _rank(status)
        if rank < ctx.best_rank:
            ctx.best, ctx.best_rank = response, rank
        if status in (401, 407):
            if ctx.challenges is None:
                ctx.challenges = []
            ctx.challenges.append(response)

    def _settle(self, ctx: _Context) -> None:
        """When the current group has no pending branch: answer, or try the next group."""
        if ctx.pending or ctx.starting or ctx.final:
            return
        forward = ctx.forward
        assert forward is not None
        if ctx.best is not None:
            self._complete(ctx, ctx.best, local=False)
        elif ctx.stopped:
            self._complete(ctx, self.response(ctx.request, 487), local=True)
        elif ctx.group + 1 < len(forward.groups):
            self.counters.failovers += 1
            self._start_group(ctx, ctx.group + 1)
        else:
            extra = () if forward.retry_after is None else (("Retry-After", forward.retry_after),)
            response = self.response(ctx.request, forward.exhausted, headers=extra)
            self._complete(ctx, response, local=True)

    def _complete(self, ctx: _Context, response: Response, *, local: bool) -> None:
        """Send the final response upstream, cancel what is pending (§16.7 step 10)."""
        ctx.final = True
        status = response.status
        if local:
            self._local(ctx.server_tx, response)
        else:
            if status == 503:  # §16.7 step 6: a 503 from downstream goes up as 500
                response.status, response.reason = 500, REASON_PHRASES[500]
            elif ctx.challenges is not None and status in (401, 407):
                self._aggregate(response, ctx.challenges)
            if status < 300 and ctx.invite:
                self._relay_2xx(ctx.server_tx, response)
            else:
                self._send_up(ctx.server_tx, response)
        self._cancel_pending(ctx, wait=False)
        self._release(ctx)

    @staticmethod
    def _aggregate(response: Response, challenges: list[Response]) -> None:
        """§16.7 step 7: the challenges of every 401/407 branch in the one going up."""
        headers = response.headers
        for other in challenges:
            if other is response:
                continue
            for name in _CHALLENGES:
                for value in other.headers.get_all(name):
                    headers.add(name, value)

    def _cancel_pending(self, ctx: _Context, *, wait: bool) -> None:
        """CANCEL the pending INVITE branches (§16.10). With ``wait``, a branch that had a
        provisional response stays pending for its final response (64*T1 at most); the
        others are given up at once (their CANCEL goes when a 1xx comes, §9.1)."""
        now = self._loop.time()
        for branch in ctx.branches:
            if branch.done:
                continue
            tx = branch.tx
            if ctx.invite and tx is not None and tx.cancel is None and tx.state in _CANCELLABLE:
                self.endpoint.cancel(tx)
                self.counters.branches_cancelled += 1
            if wait and branch.provisional and ctx.invite:
                branch.phase = _CANCELLING
                self._arm(branch, now + self._cancel_wait)
            else:
                self._record(ctx, branch, _TIMEOUT, None)

    def _release(self, ctx: _Context) -> None:
        """The context is over: stop its timers and break the reference cycles (branch <->
        transaction, context <-> transaction) so that it is freed without the collector."""
        if ctx.timer is not None:
            ctx.timer.cancel()
            ctx.timer = None
        for branch in ctx.branches:
            if branch.timer is not None:
                branch.timer.cancel()
                branch.timer = None
            branch.ctx = None
            branch.tx = None
        ctx.branches = []
        if ctx.server_tx.tu_data is ctx:
            ctx.server_tx.tu_data = None

    # --- sending upstream --------------------------------------------------------------------

    def _send_up(self, server_tx: ServerTransaction, response: Response) -> None:
        try:
            self.endpoint.send_response(server_tx, response)
        except LocalProtocolError as exc:
            _log.info("%s not forwarded: %s", response.status, exc)
            return
        counts = self.counters.responses_forwarded
        counts[response.status] = counts.get(response.status, 0) + 1

    def _relay_2xx(self, server_tx: ServerTransaction, response: Response) -> None:
        """A 2xx to an INVITE: through the server transaction while it is open, else straight
        back the way the INVITE came (§16.7 step 5: every 2xx goes up)."""
        if server_tx.state in _OPEN_SERVER:
            self._send_up(server_tx, response)
            return
        source = server_tx.context
        if not isinstance(source, Source):
            return
        self.endpoint.send_direct(source, response)
        counts = self.counters.responses_forwarded
        counts[response.status] = counts.get(response.status, 0) + 1

    def _local(self, server_tx: ServerTransaction, response: Response) -> None:
        try:
            self.endpoint.send_response(server_tx, response)
        except LocalProtocolError as exc:
            _log.info("%s not sent: %s", response.status, exc)
            return
        counts = self.counters.local_responses
        counts[response.status] = counts.get(response.status, 0) + 1

    # --- timers ----------------------------------------------------------------------------

    def _arm(self, branch: _Branch, when: float) -> None:
        """Branch deadline ``when``; the loop timer only moves earlier (lazy re-arming)."""
        branch.deadline = when
        timer = branch.timer
        if timer is not None:
            if branch.armed <= when:
                return
            timer.cancel()
        branch.armed = when
        branch.timer = self._loop.call_at(when, self._on_branch_timer, branch)

    def _on_branch_timer(self, branch: _Branch) -> None:
        branch.timer = None
        ctx = branch.ctx
        if ctx is None or branch.done:
            return
        if branch.deadline > branch.armed:  # moved later since armed
            branch.armed = branch.deadline
            branch.timer = self._loop.call_at(branch.deadline, self._on_branch_timer, branch)
            return
        phase = branch.phase
        if phase == _WAIT_1XX:
            self.counters.provisional_timeouts += 1
        elif phase == _TIMER_C:
            self.counters.timer_c += 1  # §16.8: cancel it, it counts as a 408
        tx = branch.tx
        cancellable = tx is not None and tx.cancel is None and tx.state in _CANCELLABLE
        if phase != _CANCELLING and cancellable:
            assert tx is not None
            self.endpoint.cancel(tx)
            self.counters.branches_cancelled += 1
        self._record(ctx, branch, _TIMEOUT, None)
        self._settle(ctx)

    def _on_group_timeout(self, ctx: _Context) -> None:
        ctx.timer = None
        if ctx.final or ctx.stopped:
            return
        self.counters.group_timeouts += 1
        self._cancel_pending(ctx, wait=False)
        self._settle(ctx)

    # --- Route processing (§16.4) --------------------------------------------------------

    def _strip_own_routes(self, request: Request) -> tuple[Address | None, Transport | None]:
        """Remove the top Route when it is ours, and a second one of ours (RFC 5658 double
        Record-Route); return the Route left on top, if any, and the transport the last Route
        of ours named: the interface toward the next hop (a dual-homed proxy sends there)."""
        routes = request.route
        if not routes:
            return None, None
        out = self._our_transport(routes[0].uri)
        if out is None:
            return routes[0], None
        headers = request.headers
        headers.pop_first_value("Route")
        rest = 1
        if len(routes) > 1:
            second = self._our_transport(routes[1].uri)
            if second is not None:
                headers.pop_first_value("Route")
                out, rest = second, 2
        return (routes[rest] if len(routes) > rest else None), out


def _from(destination: Destination | None, transport: Transport | None) -> Destination | None:
    """``destination`` sent from ``transport`` when it is of the same kind."""
    if destination is None or transport is None or transport.kind != destination.transport:
        return destination
    return dataclasses.replace(destination, local=transport.local)
