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
  per INVITE branch from when it is forwarded and is reset by every provisional response but
  a 100 (§16.7 step 2: 101-199).
* §16.7 responses: 1xx (not 100) forwarded at once, every 2xx forwarded at once (step 5, later
  ones straight back the way the INVITE came, §16.11), the best final response otherwise (step
  6: 6xx, then the lowest class, 401/407/415/420/484 preferred among 4xx; a branch's 503 goes
  up as 500; 401 and 407 carry the challenges of every branch, step 7). A 2xx or 6xx cancels
  the pending branches (step 10, §16.10).
* Serial failover (the routing policy's, not the RFC's): a group with no usable final response
  (only statuses in ``failover``, timeouts, transport errors; §16.8 and §16.9 count the last two
  as 408 and 503) moves on to the next group; when none is left the core answers ``exhausted``.
  ``timeout`` cancels a group without a final response in time, ``provisional_timeout`` a
  branch without any response (a 100 is one; Timer C then runs on from the forwarding).
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

import logging
import random
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

from ._proxy_forward import Forwarder
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
from .message import Request, Response, make_response
from .transaction import ClientTransaction, ServerTransaction
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
S = TypeVar("S")


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
        listener: Listener | None = None,
    ) -> None:
        self.network = network
        self.checks = checks
        self.counters = counters or ProxyCounters()
        self._rng = rng or random.Random()
        self._fw = Forwarder(
            timer_c=timer_c,
            cancel_wait=cancel_wait,
            counters=self.counters,
            response=self.response,
            listener=listener,
        )

        fw = self._fw
        self.next_deadline = fw.next_deadline
        self.handle_timers = fw.handle_timers
        self.branch_sent = fw.sent
        self.branch_failed = fw.failed
        self.branch_timeout = fw.timed_out
        self.branch_response = fw.received

    # The timer and branch inputs are the forwarder's own methods (no call in between: they
    # are on the hot path).

    #: When :meth:`handle_timers` must next be called (exactly), or None.
    next_deadline: Callable[[], float | None]
    #: Fire every timer due at ``now``: branch timers (provisional timeout, Timer C, the wait
    #: after a CANCEL) and group timeouts.
    handle_timers: Callable[[float], None]
    #: ``(branch, transaction)``: :class:`SendRequest` went out in client ``transaction``.
    branch_sent: Callable[[Branch, ClientTransaction], None]
    #: ``(branch, now)``: :class:`SendRequest` could not go (no transport, no address): a 503
    #: (§16.9).
    branch_failed: Callable[[Branch, float], None]
    #: ``(branch, reason, now)``: the branch's client transaction timed out (``reason``
    #: "transport": its transport failed): a 408 or a 503 (§16.8, §16.9).
    branch_timeout: Callable[[Branch, str, float], None]
    #: ``(branch, response, now)``: a response on the branch's client transaction (§16.7).
    branch_response: Callable[[Branch, Response, float], None]

    @property
    def forwarder(self) -> Forwarder:
        """The response contexts (``forwarder.timer_c`` applies to branches from now on)."""
        return self._fw

    # --- output -------------------------------------------------------------------------

    def actions(self) -> Sequence[Action]:
        """The actions to carry out, in order (and forget them)."""
        fw = self._fw
        actions = fw.out
        if not actions:
            return ()
        fw.out = []
        return actions

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
        self._fw.out.append(AskRoute(ctx, request, source))

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
        self._fw.out.append(SendAck(request, hop, via))

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
            self._fw.out.append(ForwardStray(response, via))

    def server_timeout(self, transaction: object, now: float) -> None:
        """A response could not go upstream (§17.2.4): give up the context's branches."""
        ctx = getattr(transaction, "tu_data", None)
        if isinstance(ctx, Context) and not ctx.final:
            ctx.final = ctx.stopped = True
            self._fw.cancel_pending(ctx, wait=False, now=now)
            self._fw.release(ctx)

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
        self._fw.start(ctx, InDialog(((target,),)), now)

    def _on_cancel(self, server_tx: ServerTransaction, request: Request, now: float) -> None:
        """§16.10: 200 to the CANCEL, then cancel every pending branch."""
        self._local(server_tx, self.response(request, 200))
        invite_tx = server_tx.cancels
        ctx = None if invite_tx is None else invite_tx.tu_data
        if not isinstance(ctx, Context) or ctx.final or ctx.cancelled:
            return
        ctx.cancelled = ctx.stopped = True
        if ctx.routing:  # nothing forwarded yet: 487 now, the decision will be ignored
            self._fw.complete(ctx, self.response(ctx.request, 487), local=True, now=now)
            return
        self._fw.cancel_pending(ctx, wait=True, now=now)
        self._fw.settle(ctx, now)

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
        self._fw.start(ctx, decision, now)

    def route_failed(self, ctx: Context, now: float) -> None:
        """The policy raised: 500 (§16.7 has nothing better to say)."""
        self.counters.policy_errors += 1
        self.route_decided(ctx, self.response(ctx.request, 500), now)

    def _local(self, server_tx: ServerTransaction, response: Response) -> None:
        self._fw.out.append(SendResponse(server_tx, response, True))

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
