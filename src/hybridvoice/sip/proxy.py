"""The transaction-stateful proxy core of RFC 3261 §16 (and RFC 5658 double Record-Route), sans-IO.

:class:`ProxyCore` sits above the transaction layer the way a session sits above dialogs. It is
driven by calls only, each given ``now`` (seconds, monotonic): requests from server
transactions (:meth:`~ProxyCore.receive_request`), ACKs and stray responses, the routing
policy's decision (:meth:`~ProxyCore.route_decided`), the outcomes of the branches' client
transactions (:meth:`~ProxyCore.branch_response`, :meth:`~ProxyCore.branch_timeout`,
:meth:`~ProxyCore.branch_failed`) and timer firings (:meth:`~ProxyCore.handle_timers`). It
returns what to do as actions (:meth:`~ProxyCore.actions`): :class:`AskRoute`,
:class:`SendRequest`, :class:`SendResponse`, :class:`SendDirect`, :class:`CancelBranch`,
:class:`SendAck`, :class:`ForwardStray`; and when it next needs a timer firing
(:meth:`~ProxyCore.next_deadline`). Sources, destinations and our network interfaces are
opaque objects here; what the core needs to know about them it asks a :class:`ProxyNetwork`
(which of our interfaces a URI names, the policy's admission, the next hop of an in-dialog
request).

* §16.3 request validation: :func:`~hybridvoice.sip.validate.check_proxy_request`.
* §16.4 Route processing: the top Route is removed when it names one of our interfaces, and a
  second one of ours with it (RFC 5658 §3.2); a remaining Route, or a To tag, makes the request
  an in-dialog one (admitted, then forwarded to the first Route, else the Request-URI; loose
  routing, §16.12); anything else is routed by the policy (:class:`AskRoute`).
* §16.6 forwarding: a copy per branch with the target's Request-URI, Max-Forwards decremented
  (70 when absent), the policy's headers; :class:`SendRequest` says whether to Record-Route
  (step 4: the values name our interfaces, which the adapter knows; two of them when the
  request leaves on another interface than it came in on, RFC 5658 §4). Timer C (step 11) runs
  per INVITE branch and is reset by every provisional response.
* §16.7 responses: 1xx (not 100) forwarded at once, every 2xx forwarded at once (step 5, later
  ones straight back the way the INVITE came, §16.11), the best final response otherwise (step
  6: 6xx, then the lowest class, 401/407/415/420/484 preferred among 4xx; a branch's 503 goes
  up as 500; 401 and 407 carry the challenges of every branch, step 7). A 2xx or 6xx cancels
  the pending branches (step 10, §16.10).
* Serial failover (the routing policy's, not the RFC's): a group with no usable final response
  (only statuses in ``failover``, timeouts, transport errors; §16.8 and §16.9 count the last two
  as 408 and 503) moves on to the next group; when none is left the core answers ``exhausted``.
  ``timeout`` cancels a group without a final response in time, ``provisional_timeout`` a
  branch without any response.
* §16.8 Timer C: on expiry the branch is cancelled and counts as a 408.
* §16.10 CANCEL: answered 200, every pending branch cancelled; the INVITE gets the branches'
  final response (487), or a local 487 when none comes within ``cancel_wait`` (64*T1), at once
  when the policy is still deciding (its decision is then ignored).
* §16.11: ACKs for 2xx go on statelessly by Route / Request-URI; stray 2xx by the next Via.

Hot path: requests and responses are reused (responses go up with our Via popped in place);
one copy of the request per branch; one heap entry per armed timer, moved lazily (a deadline
that moves later keeps its entry, which is re-pushed when it comes due).
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Sequence
from typing import Final, Generic, TypeVar

from ._proxy_types import (
    Action,
    AskRoute,
    Branch,
    CancelBranch,
    Context,
    ForwardLike,
    ForwardStray,
    InDialog,
    Listener,
    ProxyCounters,
    ProxyNetwork,
    SendAck,
    SendDirect,
    SendRequest,
    SendResponse,
    TargetLike,
)
from .errors import ParseError
from .headers import Address
from .message import REASON_PHRASES, Request, Response, make_response
from .transaction import ClientState, ClientTransaction, ServerState, ServerTransaction
from .validate import KNOWN_METHODS, UasPolicy, check_proxy_request

__all__ = [
    "DEFAULT_CHECKS",
    "Action",
    "AskRoute",
    "Branch",
    "CancelBranch",
    "Context",
    "ForwardLike",
    "ForwardStray",
    "InDialog",
    "Listener",
    "ProxyCore",
    "ProxyCounters",
    "ProxyNetwork",
    "SendAck",
    "SendDirect",
    "SendRequest",
    "SendResponse",
    "TargetLike",
]

_log = logging.getLogger("hybridvoice.sip.proxy")

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

# What a branch's timer is waiting for.
_WAIT_1XX: Final = 1  # provisional_timeout: no response at all yet
_TIMER_C: Final = 2  # Timer C (§16.6 step 11)
_CANCELLING: Final = 3  # cancelled upstream: waiting cancel_wait for the branch's final response

#: The branch timer's table: phase -> (counter to count the expiry in, CANCEL the branch).
#: Whatever the phase, the branch then counts as a 408 (§16.8).
_EXPIRY: Final[dict[int, tuple[str | None, bool]]] = {
    _WAIT_1XX: ("provisional_timeouts", True),
    _TIMER_C: ("timer_c", True),
    _CANCELLING: (None, False),  # its CANCEL went already
}

S = TypeVar("S")


def _rank(status: int) -> int:
    """§16.7 step 6, lower is better: 6xx, 3xx, preferred 4xx, 4xx, 5xx."""
    if status >= 600:
        return 0
    if status >= 500:
        return 40
    if status >= 400:
        return 20 if status in _PREFERRED_4XX else 30
    return 10


class ProxyCore(Generic[S]):
    """The §16 proxy core; ``S`` is the adapter's type for where a request came from.

    ``timer_c`` is §16.6 step 11's Timer C (more than 3 minutes by the RFC; 180 s by default);
    ``cancel_wait`` how long a cancelled branch may take to send its final response (64*T1);
    ``checks`` what §16.3 validates against; ``rng`` makes the To tags of local responses
    reproducible. ``counters`` is shared with the adapter, which counts what it sent.
    """

    def __init__(
        self,
        network: ProxyNetwork[S],
        *,
        checks: UasPolicy = DEFAULT_CHECKS,
        timer_c: float = 180.0,
        cancel_wait: float = 32.0,
        rng: random.Random | None = None,
        counters: ProxyCounters | None = None,
    ) -> None:
        self.network = network
        self.checks = checks
        self.timer_c = timer_c
        self.cancel_wait = cancel_wait
        self.counters = counters or ProxyCounters()
        self.listener: Listener | None = None
        self._rng = rng or random.Random()
        self._actions: list[Action] = []
        self._heap: list[tuple[float, int, Branch | Context]] = []
        self._seq = 0
        self._stale = 0  # heap entries known to be stale

    # --- output -------------------------------------------------------------------------

    def actions(self) -> Sequence[Action]:
        """The actions to carry out, in order (and forget them)."""
        actions = self._actions
        if not actions:
            return ()
        self._actions = []
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timers` must next be called, or None."""
        heap = self._heap
        while heap:
            when, _, item = heap[0]
            if when != item.armed:  # stale: moved earlier, disarmed or fired
                heapq.heappop(heap)
                self._stale -= 1
                continue
            if item.deadline > when:  # moved later since pushed
                heapq.heappop(heap)
                self._push(item, item.deadline)
                continue
            return when
        return None

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

    def _tag(self) -> str:
        return f"{self._rng.getrandbits(48):012x}"

    # --- input: requests (§16.3, §16.4, §16.10, §16.11) -------------------------------------

    def receive_request(
        self, server_tx: ServerTransaction, request: Request, source: S, now: float
    ) -> None:
        """A request in a new server transaction: §16.3 validation, §16.4 Route processing,
        then admission (in-dialog) or :class:`AskRoute`; a CANCEL per §16.10."""
        if request.method == "CANCEL":
            self._on_cancel(server_tx, request, now)
            return
        try:
            error = check_proxy_request(request, policy=self.checks, to_tag=self._tag())
            if error is not None:
                self._local(server_tx, error)
                return
            route, via = self._strip_own_routes(request)
            to = request.to
            in_dialog = route is not None or (to is not None and to.tag is not None)
        except ParseError as exc:
            self._local(server_tx, self.response(request, 400, f"Bad Request ({exc})"[:80]))
            return
        if in_dialog:
            self._in_dialog(server_tx, request, source, route=route, via=via, now=now)
            return
        ctx = Context(server_tx, request, source)
        ctx.routing = True
        server_tx.tu_data = ctx
        self._actions.append(AskRoute(ctx, request, source))

    def receive_ack(self, request: Request, source: S, now: float) -> None:
        """§16.11: an ACK for a 2xx goes on statelessly, by Route or Request-URI."""
        try:
            max_forwards = request.max_forwards
            if max_forwards == 0:
                return
            route, via = self._strip_own_routes(request)
            hop = request.uri if route is None else route.uri
            if route is None and self.network.interface(hop) is not None:
                return  # an ACK for us: nothing to forward
            if self.network.admit(request, source) is not None:
                self.counters.refused += 1
                return
            request.headers.set(
                "Max-Forwards", "70" if max_forwards is None else str(max_forwards - 1)
            )
        except ParseError as exc:
            _log.info("ACK not forwarded: %s", exc)
            return
        self._actions.append(SendAck(request, hop, via))

    def receive_stray(self, response: Response, now: float) -> None:
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
        except ParseError as exc:
            _log.info("stray 2xx not forwarded: %s", exc)
            return
        if via is not None:
            self._actions.append(ForwardStray(response, via))

    def server_timeout(self, transaction: object, now: float) -> None:
        """A response could not go upstream (§17.2.4): give up the context's branches."""
        ctx = getattr(transaction, "tu_data", None)
        if isinstance(ctx, Context) and not ctx.final:
            ctx.final = ctx.stopped = True
            self._cancel_pending(ctx, wait=False, now=now)
            self._release(ctx)

    def _in_dialog(
        self,
        server_tx: ServerTransaction,
        request: Request,
        source: S,
        *,
        route: Address | None,
        via: object | None,
        now: float,
    ) -> None:
        """§16.4 with a Route left or a To tag: admit, then on to the Route or Request-URI,
        sent from ``via`` (the interface our Record-Route named) when known."""
        try:
            refusal = self.network.admit(request, source)
        except Exception:  # the policy's bug must not take the proxy down
            _log.exception("admission policy failed on %r", request)
            self.counters.policy_errors += 1
            refusal = self.response(request, 500)
        if refusal is not None:
            self.counters.refused += 1
            self._local(server_tx, refusal)
            return
        target = self.network.dialog_target(request.uri, None if route is None else route.uri, via)
        if target is None:  # a name, or not a SIP URI: no resolver here
            self._local(server_tx, self.response(request, 503))
            return
        ctx = Context(server_tx, request, source)
        server_tx.tu_data = ctx
        self._start(ctx, InDialog(((target,),)), now)

    def _on_cancel(self, server_tx: ServerTransaction, request: Request, now: float) -> None:
        """§16.10: 200 to the CANCEL, then cancel every pending branch."""
        self._local(server_tx, self.response(request, 200))
        invite_tx = server_tx.cancels
        ctx = None if invite_tx is None else invite_tx.tu_data
        if not isinstance(ctx, Context) or ctx.final or ctx.cancelled:
            return
        ctx.cancelled = ctx.stopped = True
        if ctx.routing:  # nothing forwarded yet: 487 now, the decision will be ignored
            self._complete(ctx, self.response(ctx.request, 487), local=True, now=now)
            return
        self._cancel_pending(ctx, wait=True, now=now)
        self._settle(ctx, now)

    # --- input: the routing decision ----------------------------------------------------

    def route_decided(self, ctx: Context, decision: ForwardLike | Response, now: float) -> None:
        """The policy's decision for :class:`AskRoute`'s request; ignored when the request
        was cancelled meanwhile (answered 487 already)."""
        ctx.routing = False
        if ctx.final:
            return
        if type(decision) is Response or isinstance(decision, Response):
            ctx.final = True
            ctx.server_tx.tu_data = None
            self._local(ctx.server_tx, decision)
            return
        self._start(ctx, decision, now)

    def route_failed(self, ctx: Context, now: float) -> None:
        """The policy raised: 500 (§16.7 has nothing better to say)."""
        self.counters.policy_errors += 1
        self.route_decided(ctx, self.response(ctx.request, 500), now)

    # --- forwarding (§16.6) -------------------------------------------------------------

    def _start(self, ctx: Context, forward: ForwardLike, now: float) -> None:
        request = ctx.request
        ctx.forward = forward
        max_forwards = request.max_forwards
        ctx.max_forwards = "70" if max_forwards is None else str(max_forwards - 1)
        ctx.record_route = forward.record_route and request.method in _RECORD_ROUTE_METHODS
        self._start_group(ctx, 0, now)

    def _start_group(self, ctx: Context, index: int, now: float) -> None:
        forward = ctx.forward
        assert forward is not None
        if ctx.deadline:
            self._disarm(ctx)
        ctx.group = index
        if index < len(forward.groups):
            for target in forward.groups[index]:
                self._send_branch(ctx, forward, target, now)
            timeout = forward.timeout
            if ctx.invite and timeout is not None and ctx.pending and not ctx.final:
                self._arm(ctx, now + timeout)
        self._settle(ctx, now)

    def _send_branch(
        self, ctx: Context, forward: ForwardLike, target: TargetLike, now: float
    ) -> None:
        request = ctx.request.copy()
        request.uri = target.uri
        headers = request.headers
        headers.set("Max-Forwards", ctx.max_forwards)
        for name, value in forward.headers:
            headers.add(name, value)
        branch = Branch(self, ctx)
        ctx.branches.append(branch)
        ctx.pending += 1
        if ctx.invite:
            provisional_timeout = forward.provisional_timeout
            if provisional_timeout is not None:
                branch.phase = _WAIT_1XX
                self._arm(branch, now + provisional_timeout)
            else:
                branch.phase = _TIMER_C
                self._arm(branch, now + self.timer_c)
        self._actions.append(SendRequest(branch, request, target, ctx.record_route, ctx.source))

    # --- input: the branches' outcomes (§16.7, §16.8, §16.9) --------------------------------

    def branch_sent(self, branch: Branch, transaction: ClientTransaction) -> None:
        """:class:`SendRequest` went out in ``transaction``."""
        if branch.ctx is not None:
            branch.tx = transaction

    def branch_failed(self, branch: Branch, now: float) -> None:
        """:class:`SendRequest` could not go (no transport, no address): a 503 (§16.9)."""
        ctx = branch.ctx
        if ctx is None or branch.done:
            return
        self.counters.branch_transport_errors += 1
        self._record(ctx, branch, _TRANSPORT, None)
        self._settle(ctx, now)

    def branch_timeout(self, branch: Branch, reason: str, now: float) -> None:
        """The branch's client transaction timed out (``reason`` "transport": its transport
        failed): a 408 or a 503 (§16.8, §16.9)."""
        ctx = branch.ctx
        if ctx is None or branch.done:
            return
        if reason == "transport":
            self.counters.branch_transport_errors += 1
            self._record(ctx, branch, _TRANSPORT, None)
        else:
            self.counters.branch_timeouts += 1
            self._record(ctx, branch, _TIMEOUT, None)
        self._settle(ctx, now)

    def branch_response(self, branch: Branch, response: Response, now: float) -> None:
        """A response on the branch's INVITE or non-INVITE transaction (§16.7)."""
        ctx = branch.ctx
        status = response.status
        if status < 200:
            if ctx is None or branch.done:
                return
            branch.provisional = True
            if branch.phase in (_TIMER_C, _WAIT_1XX):
                branch.phase = _TIMER_C  # step 11: reset by every provisional response
                self._arm(branch, now + self.timer_c)
            if status != 100 and not ctx.final:
                response.headers.pop_first_value("Via")
                self._send_up(ctx.server_tx, response)
            return
        response.headers.pop_first_value("Via")
        if status < 300:
            if ctx is None or ctx.final:
                if branch.invite:
                    self._relay_2xx(branch.server_tx, response)  # step 5: every 2xx goes up
                return
            if not branch.done:
                self._record(ctx, branch, status, None)
            self._complete(ctx, response, local=False, now=now)
            return
        if ctx is None or branch.done:
            return
        self._record(ctx, branch, status, response)
        if status >= 600 and not ctx.stopped:
            ctx.stopped = True
            self._cancel_pending(ctx, wait=True, now=now)
        self._settle(ctx, now)

    def _record(self, ctx: Context, branch: Branch, status: int, response: Response | None) -> None:
        """The final outcome of a branch of the current group; a usable response may become
        the best one (§16.7 step 6)."""
        branch.done = True
        ctx.pending -= 1
        if branch.deadline:
            self._disarm(branch)
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

    def _settle(self, ctx: Context, now: float) -> None:
        """When the current group has no pending branch: answer, or try the next group."""
        if ctx.pending or ctx.final:
            return
        forward = ctx.forward
        assert forward is not None
        if ctx.best is not None:
            self._complete(ctx, ctx.best, local=False, now=now)
        elif ctx.stopped:
            self._complete(ctx, self.response(ctx.request, 487), local=True, now=now)
        elif ctx.group + 1 < len(forward.groups):
            self.counters.failovers += 1
            self._start_group(ctx, ctx.group + 1, now)
        else:
            extra = () if forward.retry_after is None else (("Retry-After", forward.retry_after),)
            response = self.response(ctx.request, forward.exhausted, headers=extra)
            self._complete(ctx, response, local=True, now=now)

    def _complete(self, ctx: Context, response: Response, *, local: bool, now: float) -> None:
        """Send the final response upstream, cancel what is pending (§16.7 step 10)."""
        ctx.final = True
        status = response.status
        if local:
            self._local(ctx.server_tx, response)
        else:
            if status == 503:  # §16.7 step 6: a 503 from downstream goes up as 500
                response.status, response.reason = 500, REASON_PHRASES[500]
            elif ctx.challenges is not None and status in (401, 407):
                _aggregate(response, ctx.challenges)
            if status < 300 and ctx.invite:
                self._relay_2xx(ctx.server_tx, response)
            else:
                self._send_up(ctx.server_tx, response)
        self._cancel_pending(ctx, wait=False, now=now)
        self._release(ctx)

    def _cancel_pending(self, ctx: Context, *, wait: bool, now: float) -> None:
        """CANCEL the pending INVITE branches (§16.10). With ``wait``, a branch that had a
        provisional response stays pending for its final response (``cancel_wait`` at most);
        the others are given up at once (their CANCEL goes when a 1xx comes, §9.1)."""
        for branch in ctx.branches:
            if branch.done:
                continue
            if ctx.invite:
                self._cancel(branch)
                if wait and branch.provisional:
                    branch.phase = _CANCELLING
                    self._arm(branch, now + self.cancel_wait)
                    continue
            self._record(ctx, branch, _TIMEOUT, None)

    def _cancel(self, branch: Branch) -> None:
        tx = branch.tx
        if tx is not None and tx.cancel is None and tx.state in _CANCELLABLE:
            self._actions.append(CancelBranch(tx))
            self.counters.branches_cancelled += 1

    def _release(self, ctx: Context) -> None:
        """The context is over: stop its timers and break the reference cycles (branch <->
        transaction, context <-> transaction) so that it is freed without the collector."""
        if ctx.deadline:
            self._disarm(ctx)
        for branch in ctx.branches:
            if branch.deadline:
                self._disarm(branch)
            branch.ctx = None
            branch.tx = None
        ctx.branches = []
        if ctx.server_tx.tu_data is ctx:
            ctx.server_tx.tu_data = None

    # --- sending upstream ---------------------------------------------------------------

    def _send_up(self, server_tx: ServerTransaction, response: Response) -> None:
        self._actions.append(SendResponse(server_tx, response, False))

    def _local(self, server_tx: ServerTransaction, response: Response) -> None:
        self._actions.append(SendResponse(server_tx, response, True))

    def _relay_2xx(self, server_tx: ServerTransaction, response: Response) -> None:
        """A 2xx to an INVITE: through the server transaction while it is open, else straight
        back the way the INVITE came (§16.7 step 5: every 2xx goes up)."""
        if server_tx.state in _OPEN_SERVER:
            self._actions.append(SendResponse(server_tx, response, False))
        elif server_tx.context is not None:
            self._actions.append(SendDirect(server_tx.context, response))

    # --- timers -------------------------------------------------------------------------

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at ``now``: branch timers (provisional timeout, Timer C, the
        wait after a CANCEL) and group timeouts."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, item = heapq.heappop(heap)
            if when != item.armed:
                self._stale -= 1
                continue
            item.armed = 0.0
            deadline = item.deadline
            if deadline > now:  # moved later since pushed
                self._push(item, deadline)
                continue
            item.deadline = 0.0
            if type(item) is Branch:
                self._branch_expired(item, now)
            else:
                assert isinstance(item, Context)
                self._group_expired(item, now)

    def _branch_expired(self, branch: Branch, now: float) -> None:
        ctx = branch.ctx
        if ctx is None or branch.done:
            return
        counter, cancel = _EXPIRY[branch.phase]
        if counter is not None:
            setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        if cancel:
            self._cancel(branch)
        self._record(ctx, branch, _TIMEOUT, None)
        self._settle(ctx, now)

    def _group_expired(self, ctx: Context, now: float) -> None:
        if ctx.final or ctx.stopped:
            return
        self.counters.group_timeouts += 1
        self._cancel_pending(ctx, wait=False, now=now)
        self._settle(ctx, now)

    def _arm(self, item: Branch | Context, when: float) -> None:
        """Deadline ``when`` for ``item``; its heap entry only moves earlier (lazy)."""
        item.deadline = when
        armed = item.armed
        if armed and armed <= when:
            return
        if armed:
            self._stale += 1
        self._push(item, when)

    def _disarm(self, item: Branch | Context) -> None:
        item.deadline = 0.0
        if item.armed:
            item.armed = 0.0
            self._stale += 1
            if self._stale > 256 and self._stale * 2 > len(self._heap):
                self._compact()

    def _push(self, item: Branch | Context, when: float) -> None:
        item.armed = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, item))

    def _compact(self) -> None:
        """Drop the stale heap entries (released contexts keep theirs until due otherwise)."""
        self._heap = [entry for entry in self._heap if entry[0] == entry[2].armed]
        heapq.heapify(self._heap)
        self._stale = 0

    # --- Route processing (§16.4) -------------------------------------------------------

    def _strip_own_routes(self, request: Request) -> tuple[Address | None, object | None]:
        """Remove the top Route when it is ours, and a second one of ours (RFC 5658 double
        Record-Route); return the Route left on top, if any, and the interface the last Route
        of ours named: the one toward the next hop (a dual-homed proxy sends from there)."""
        routes = request.route
        if not routes:
            return None, None
        interface = self.network.interface
        out = interface(routes[0].uri)
        if out is None:
            return routes[0], None
        headers = request.headers
        headers.pop_first_value("Route")
        rest = 1
        if len(routes) > 1:
            second = interface(routes[1].uri)
            if second is not None:
                headers.pop_first_value("Route")
                out, rest = second, 2
        return (routes[rest] if len(routes) > rest else None), out


def _aggregate(response: Response, challenges: list[Response]) -> None:
    """§16.7 step 7: the challenges of every 401/407 branch in the one going up."""
    headers = response.headers
    for other in challenges:
        if other is response:
            continue
        for name in _CHALLENGES:
            for value in other.headers.get_all(name):
                headers.add(name, value)
