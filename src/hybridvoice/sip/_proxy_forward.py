"""The response contexts of the §16 proxy core (RFC 3261 §16.6-§16.8, §16.10): forwarding a
request to its branches, group after group, selecting the response that goes upstream, CANCEL,
and the branch and group timers. Driven by :class:`~hybridvoice.sip.proxy.ProxyCore`, which
owns request reception; see there for the whole picture.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from ._proxy_types import (
    Action,
    Branch,
    CancelBranch,
    Context,
    ForwardLike,
    Listener,
    ProxyCounters,
    SendDirect,
    SendRequest,
    SendResponse,
    TargetLike,
)
from .message import REASON_PHRASES, Response
from .transaction import ClientState, ClientTransaction, ServerState, ServerTransaction

__all__ = ["Forwarder"]

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
_EXPIRY: Final[Mapping[int, tuple[str | None, bool]]] = MappingProxyType(
    {
        _WAIT_1XX: ("provisional_timeouts", True),
        _TIMER_C: ("timer_c", True),
        _CANCELLING: (None, False),  # its CANCEL went already
    }
)


def _rank(status: int) -> int:
    """§16.7 step 6, lower is better: 6xx, 3xx, preferred 4xx, 4xx, 5xx."""
    if status >= 600:
        return 0
    if status >= 500:
        return 40
    if status >= 400:
        return 20 if status in _PREFERRED_4XX else 30
    return 10


class Forwarder:
    """The response contexts of one proxy core, their branches and timers (one heap, entries
    moved lazily). Actions go to ``out``; local responses are made by ``response``."""

    def __init__(
        self,
        *,
        timer_c: float,
        cancel_wait: float,
        counters: ProxyCounters,
        response: Callable[..., Response],
        listener: Listener | None,
    ) -> None:
        self.timer_c = timer_c
        self.cancel_wait = cancel_wait
        self.counters = counters
        self.listener = listener
        #: the actions not taken yet (:meth:`ProxyCore.actions` takes them; an adapter may
        #: look whether there are any without taking them)
        self.out: list[Action] = []
        self._response = response
        self._heap: list[tuple[float, int, Branch | Context]] = []
        #: heap entries pushed so far: a deadline earlier than all seen before comes with one
        self.pushes = 0
        self._stale = 0  # heap entries known to be stale

    # --- forwarding (§16.6) -------------------------------------------------------------

    def start(self, ctx: Context, forward: ForwardLike, now: float) -> None:
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
        self.settle(ctx, now)

    def _send_branch(
        self, ctx: Context, forward: ForwardLike, target: TargetLike, now: float
    ) -> None:
        request = ctx.request.copy()
        request.uri = target.uri
        headers = request.headers
        headers.set("Max-Forwards", ctx.max_forwards)
        for name, value in forward.headers:
            headers.add(name, value)
        branch = Branch(ctx, self.listener, now)
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
        self.out.append(SendRequest(branch, request, target, ctx.record_route, ctx.source))

    # --- input: the branches' outcomes (§16.7, §16.8, §16.9) --------------------------------

    def sent(self, branch: Branch, transaction: ClientTransaction) -> None:
        """:class:`SendRequest` went out in ``transaction``."""
        if branch.ctx is not None:
            branch.tx = transaction

    def failed(self, branch: Branch, now: float) -> None:
        """:class:`SendRequest` could not go (no transport, no address): a 503 (§16.9)."""
        ctx = branch.ctx
        if ctx is None or branch.done:
            return
        self.counters.branch_transport_errors += 1
        self._record(ctx, branch, _TRANSPORT, None)
        self.settle(ctx, now)

    def timed_out(self, branch: Branch, reason: str, now: float) -> None:
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
        self.settle(ctx, now)

    def received(self, branch: Branch, response: Response, now: float) -> None:
        """A response on the branch's INVITE or non-INVITE transaction (§16.7)."""
        ctx = branch.ctx
        status = response.status
        if status < 200:
            if ctx is None or branch.done:
                return
            branch.provisional = True
            phase = branch.phase
            if status != 100:
                if phase in (_TIMER_C, _WAIT_1XX):
                    branch.phase = _TIMER_C  # §16.7 step 2: a 101-199 resets Timer C
                    self._arm(branch, now + self.timer_c)
            elif phase == _WAIT_1XX:
                # a 100 proves the next hop alive but does not reset Timer C, which runs
                # from when the request was forwarded (§16.6 step 11)
                branch.phase = _TIMER_C
                self._arm(branch, branch.sent_at + self.timer_c)
            if status != 100 and not ctx.final:
                response.headers.pop_first_value("Via")
                self.out.append(SendResponse(ctx.server_tx, response, False))
            return
        response.headers.pop_first_value("Via")
        if status < 300:
            if ctx is None or ctx.final:
                if branch.invite:
                    self._relay_2xx(branch.server_tx, response)  # step 5: every 2xx goes up
                return
            if not branch.done:
                self._record(ctx, branch, status, None)
            self.complete(ctx, response, local=False, now=now)
            return
        if ctx is None or branch.done:
            return
        self._record(ctx, branch, status, response)
        if status >= 600 and not ctx.stopped:
            ctx.stopped = True
            self.cancel_pending(ctx, wait=True, now=now)
        self.settle(ctx, now)

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

    def settle(self, ctx: Context, now: float) -> None:
        """When the current group has no pending branch: answer, or try the next group."""
        if ctx.pending or ctx.final:
            return
        forward = ctx.forward
        assert forward is not None
        if ctx.best is not None:
            self.complete(ctx, ctx.best, local=False, now=now)
        elif ctx.stopped:
            self.complete(ctx, self._response(ctx.request, 487), local=True, now=now)
        elif ctx.group + 1 < len(forward.groups):
            self.counters.failovers += 1
            self._start_group(ctx, ctx.group + 1, now)
        else:
            extra = () if forward.retry_after is None else (("Retry-After", forward.retry_after),)
            response = self._response(ctx.request, forward.exhausted, headers=extra)
            self.complete(ctx, response, local=True, now=now)

    def complete(self, ctx: Context, response: Response, *, local: bool, now: float) -> None:
        """Send the final response upstream, cancel what is pending (§16.7 step 10)."""
        ctx.final = True
        status = response.status
        if local:
            self.out.append(SendResponse(ctx.server_tx, response, True))
        else:
            if status == 503:  # §16.7 step 6: a 503 from downstream goes up as 500
                response.status, response.reason = 500, REASON_PHRASES[500]
            elif ctx.challenges is not None and status in (401, 407):
                _aggregate(response, ctx.challenges)
            if status < 300 and ctx.invite:
                self._relay_2xx(ctx.server_tx, response)
            else:
                self.out.append(SendResponse(ctx.server_tx, response, False))
        self.cancel_pending(ctx, wait=False, now=now)
        self.release(ctx)

    def cancel_pending(self, ctx: Context, *, wait: bool, now: float) -> None:
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
            self.out.append(CancelBranch(tx))
            self.counters.branches_cancelled += 1

    def release(self, ctx: Context) -> None:
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

    def _relay_2xx(self, server_tx: ServerTransaction, response: Response) -> None:
        """A 2xx to an INVITE: through the server transaction while it is open, else straight
        back the way the INVITE came (§16.7 step 5: every 2xx goes up)."""
        if server_tx.state in _OPEN_SERVER:
            self.out.append(SendResponse(server_tx, response, False))
        elif server_tx.context is not None:
            self.out.append(SendDirect(server_tx.context, response))

    # --- timers -------------------------------------------------------------------------

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

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at ``now``: branch timers (provisional timeout, Timer C, the
        wait after a CANCEL) and group timeouts."""
        while self._heap and self._heap[0][0] <= now:  # (a firing may compact the heap)
            when, _, item = heapq.heappop(self._heap)
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
        self.settle(ctx, now)

    def _group_expired(self, ctx: Context, now: float) -> None:
        if ctx.final or ctx.stopped:
            return
        self.counters.group_timeouts += 1
        self.cancel_pending(ctx, wait=False, now=now)
        self.settle(ctx, now)

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
        self.pushes += 1
        heapq.heappush(self._heap, (when, self.pushes, item))

    def _compact(self) -> None:
        """Drop the stale heap entries (released contexts keep theirs until due otherwise)."""
        self._heap = [entry for entry in self._heap if entry[0] == entry[2].armed]
        heapq.heapify(self._heap)
        self._stale = 0


def _aggregate(response: Response, challenges: list[Response]) -> None:
    """§16.7 step 7: the challenges of every 401/407 branch in the one going up."""
    headers = response.headers
    for other in challenges:
        if other is response:
            continue
        for name in _CHALLENGES:
            for value in other.headers.get_all(name):
                headers.add(name, value)
