"""The asyncio adapter of the §16 proxy core (RFC 3261 §16, RFC 5658 double Record-Route).

:class:`Proxy` is the transaction user of an :class:`~hybridvoice.net.endpoint.Endpoint` and
drives a :class:`~hybridvoice.sip.proxy.ProxyCore` (contexts, branches, §16.7 response
selection, CANCEL, Timer C, failover groups; see there): it feeds the core the endpoint's
callbacks with ``now = loop.time()``, runs the policy's asynchronous ``route`` as a task and
feeds the decision back, carries out the core's actions through the endpoint, and keeps one
loop timer at the core's ``next_deadline()``, like aioquic's ``asyncio/protocol.py``.

A :class:`ProxyPolicy` decides where initial requests go (a :class:`Forward`: groups of
:class:`Target` tried one after another, the targets of a group forked in parallel) or answers
them itself (a :class:`~hybridvoice.sip.message.Response`: registrar 200, 403, 404, 407...);
it also admits or refuses in-dialog requests and ACKs.

What only the network side knows stays here: which addresses are ours (§16.4 Route
processing), our Record-Route values per transport and the two of RFC 5658 §4 when a request
leaves on another transport than it came in on (§16.6 step 4), the next hop's destination
(RFC 3263 §4 without DNS: an IP host, ``transport=`` and the port of the URI).

Hot path: the endpoint's parsed requests and responses are reused; a branch is its own client
transaction callback (no closure); one loop timer for the whole proxy, moved only earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol

from hybridvoice.sip.errors import LocalProtocolError, ParseError
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.proxy import (
    DEFAULT_CHECKS,
    AskRoute,
    Branch,
    CancelBranch,
    Context,
    ForwardStray,
    ProxyCore,
    ProxyCounters,
    SendAck,
    SendDirect,
    SendRequest,
    SendResponse,
)
from hybridvoice.sip.transaction import (
    ClientState,
    ClientTransaction,
    ServerTransaction,
    TransactionTimeout,
)
from hybridvoice.sip.uri import SipUri, Uri
from hybridvoice.sip.validate import UasPolicy

from .endpoint import Endpoint
from .names import NameLookup, named_destination
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
#: the requests whose forwarding is logged (debug): those that make or end a call
_LOGGED: Final = frozenset({"INVITE", "BYE", "CANCEL", "REFER"})

#: client transaction states in which a CANCEL may be created (§9.1)
_CANCELLABLE: Final = (ClientState.CALLING, ClientState.PROCEEDING)


# Target and Forward: slotted, read-only by contract but not frozen (a policy builds them for
# every initial request; a frozen dataclass's __init__ pays object.__setattr__ per field).
@dataclass(slots=True)
class Target:
    """One branch: the new Request-URI and the next hop (None: from the URI, which then needs
    an IP host; ``transport=`` and the port are honoured, RFC 3263 §4 without DNS)."""

    uri: Uri
    destination: Destination | None = None


@dataclass(slots=True)
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
#: ``hook(message, transport it leaves on)``: may change the message before it is sent
ForwardHook = Callable[[Request | Response, Transport | None], None]


class ProxyPolicy(Protocol):
    """The routing logic: the online service's registrar-backed routing, the edge's."""

    def route(self, request: Request, source: Source) -> Decision | Awaitable[Decision]:
        """An initial (out-of-dialog) request: where to, or the response to send."""
        ...

    def admit(self, request: Request, source: Source) -> Response | None:
        """An in-dialog request or an ACK: None lets it through, a Response refuses it (an
        ACK is dropped instead)."""
        ...


class _Network:
    """The core's :class:`~hybridvoice.sip.proxy.ProxyNetwork`: our addresses, our
    Record-Route values, the next hop of in-dialog requests, the policy's admission."""

    __slots__ = (
        "_ours", "_ours_for", "_record_routes", "_rr_hosts", "admit", "endpoint", "names",
        "policy",
    )  # fmt: skip

    def __init__(
        self,
        endpoint: Endpoint,
        policy: ProxyPolicy,
        rr_hosts: Mapping[Transport, str],
        names: NameLookup | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy
        #: the peers' FQDNs we may route in-dialog requests to without DNS (None: none)
        self.names = names
        #: the policy's, as it is (an in-dialog request or an ACK: None lets it through)
        self.admit: Callable[[Request, Source], Response | None] = policy.admit
        self._rr_hosts = dict(rr_hosts)
        self._record_routes: dict[int, str] = {}
        self._ours: dict[tuple[str, int], Transport] = {}
        self._ours_for = -1  # how many transports ``_ours`` was built from

    def interface(self, uri: Uri) -> Transport | None:
        """The transport of ours ``uri`` names, if any."""
        if type(uri) is not SipUri:
            return None
        if len(self.endpoint.transports) != self._ours_for:
            self._build_ours()
        port = uri.port
        if port is None:
            port = 5061 if uri.scheme == "sips" or uri.transport == "tls" else 5060
        return self._ours.get((uri.host_bare.lower(), port))

    def dialog_target(self, uri: Uri, route: Uri | None, via: object | None) -> Target | None:
        """§16.4 then §16.6: to ``route`` (or the Request-URI) from ``via`` when known."""
        transport: Transport | None = via  # type: ignore[assignment]
        destination = None
        if route is not None:
            try:
                destination = destination_of(route)
            except TransportError:
                destination = None
            if destination is None:  # a name: ours to map, else no resolver here
                destination = named_destination(route, self.names)
                if destination is None:
                    return None
        if destination is None and transport is not None:
            with contextlib.suppress(TransportError):  # a name: the branch reports it
                destination = destination_of(uri) or named_destination(uri, self.names)
        return Target(uri, _from(destination, transport))

    def record_route(self, transport: Transport) -> str:
        rr = self._record_routes.get(id(transport))
        if rr is None:
            host, port = transport.advertised
            host = self._rr_hosts.get(transport) or via_host(host)
            rr = f"<sip:{host}:{port};transport={transport.kind.lower()};lr>"
            self._record_routes[id(transport)] = rr
        return rr

    def _build_ours(self) -> None:
        ours: dict[tuple[str, int], Transport] = {}
        for transport in self.endpoint.transports:
            for host, port in (transport.local, transport.advertised):
                ours.setdefault((bare_host(host).lower(), port), transport)
            rr_host = self._rr_hosts.get(transport)
            if rr_host is not None:  # "user@host": the host is ours
                host = bare_host(rr_host.rpartition("@")[2]).lower()
                ours.setdefault((host, transport.advertised[1]), transport)
        self._ours = ours
        self._ours_for = len(self.endpoint.transports)


class Proxy:
    """A transaction-stateful proxy over ``endpoint`` (it becomes the endpoint's TU).

    ``record_route_hosts`` overrides the host written in our Record-Route per transport
    (default: the transport's advertised address), optionally with a user part
    (``user@host``); those hosts are also recognised as ours in Route headers. ``names``
    maps the FQDNs of peers that record-route by name (RFC 5922: a TLS peer's certificate
    name) to their addresses, for in-dialog requests and ACKs routed to them. ``checks`` is
    what §16.3 validates against. ``timer_c`` is §16.6 step 11's Timer C (more than 3
    minutes by the RFC; 180 s by default). ``rng`` makes the To tags of local responses
    reproducible. ``core`` is the sans-IO proxy core it drives.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        policy: ProxyPolicy,
        *,
        record_route_hosts: Mapping[Transport, str] | None = None,
        names: NameLookup | None = None,
        checks: UasPolicy = DEFAULT_CHECKS,
        timer_c: float = 180.0,
        rng: random.Random | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.endpoint = endpoint
        endpoint.tu = self
        #: where the forwarding of dialog-making and -ending requests is logged (debug): the
        #: role's own logger, so that ``--log-component edge=debug`` shows the edge's
        self.log = log or _log
        self.policy = policy
        self._network = _Network(endpoint, policy, record_route_hosts or {}, names)
        self.core: ProxyCore[Source] = ProxyCore(
            self._network,
            checks=checks,
            timer_c=timer_c,
            cancel_wait=endpoint.layer.config.timer_b,
            rng=rng,
            listener=self._on_outcome,
        )
        self.counters: ProxyCounters = self.core.counters
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Future[Decision]] = set()
        #: called with every request the proxy sends on and every response it sends (its
        #: own answers too) and the transport it leaves on, before it is sent: the edge
        #: rewrites SDP there and frees a call's relay ports at its end
        #: (media anchoring, :mod:`hybridvoice.edge.anchor_io`); None: nothing
        self.forward_hook: ForwardHook | None = None
        self._take = self.core.actions
        self._next_deadline = self.core.next_deadline
        self._fw = self.core.forwarder
        self._pushes = 0  # the core's pushes when the timer was last looked at
        self._branch_response = self.core.branch_response
        self._handlers: dict[type, Callable[[Any], None]] = {
            SendRequest: self._send_request,
            SendResponse: self._send_response,
            CancelBranch: self._cancel,
            AskRoute: self._ask_route,
            SendAck: self._send_ack,
            SendDirect: self._send_direct,
            ForwardStray: self._forward_stray,
        }

    def close(self) -> None:
        """Stop the routing decisions still running and the timer (the endpoint is closed by
        its owner)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def checks(self) -> UasPolicy:
        """What §16.3 validates against."""
        return self.core.checks

    @property
    def timer_c(self) -> float:
        """§16.6 step 11's Timer C, seconds (for the branches forwarded from now on)."""
        return self.core.forwarder.timer_c

    @timer_c.setter
    def timer_c(self, value: float) -> None:
        self.core.forwarder.timer_c = value

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
        return self.core.response(request, status, reason, headers=headers)

    def record_route(self, transport: Transport) -> str:
        """Our Record-Route value on ``transport`` (§16.6 step 4, with ``lr``)."""
        return self._network.record_route(transport)

    def is_ours(self, uri: Uri) -> bool:
        """Whether ``uri`` names this proxy (a transport's address or Record-Route host)."""
        return self._network.interface(uri) is not None

    # --- the endpoint's TransactionUser protocol: into the core ---------------------------

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        """A request in a new server transaction (§16.3, §16.4, §16.10)."""
        source: Source = transaction.context  # type: ignore[assignment]
        self.core.receive_request(transaction, request, source, self._loop.time())
        self._run()

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        """§16.11: an ACK for a 2xx goes on statelessly, by Route or Request-URI."""
        self.core.receive_ack(request, source, self._loop.time())
        self._run()

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        """Responses of transactions we no longer track: a 2xx goes on statelessly."""
        self.on_stray_response(endpoint, response)

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        """§16.7 step 5 and §16.11: a 2xx to an INVITE matching no transaction (a
        retransmission, another fork's) is forwarded by the next Via; others are dropped."""
        self.core.receive_stray(response, self._loop.time())
        self._run()

    def on_timeout(
        self,
        endpoint: Endpoint,
        transaction: ClientTransaction | ServerTransaction,
        reason: str,
    ) -> None:
        """A response could not go upstream (§17.2.4): give up the context's branches."""
        self.core.server_timeout(transaction, self._loop.time())
        self._run()

    def _on_outcome(self, branch: Branch, tx: ClientTransaction, outcome: object) -> None:
        """A branch's client transaction callback (via the core's listener)."""
        if tx.cancels is not None:
            return  # the response to our CANCEL: the INVITE's own response tells (§9.1)
        if type(outcome) is Response:
            self._branch_response(branch, outcome, self._loop.time())
        else:
            assert isinstance(outcome, TransactionTimeout)
            self.core.branch_timeout(branch, outcome.reason, self._loop.time())
        self._run()

    def _routed(self, ctx: Context, task: asyncio.Future[Decision]) -> None:
        self._tasks.discard(task)
        now = self._loop.time()
        if task.cancelled() or task.exception() is not None:  # retrieved either way
            if not task.cancelled():
                _log.error("routing policy failed on %r", ctx.request, exc_info=task.exception())
            self.core.route_failed(ctx, now)
        else:
            self.core.route_decided(ctx, task.result(), now)
        self._run()

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timers(max(self._loop.time(), self._timer_at))
        self._run()

    # --- the core's actions: out through the endpoint -----------------------------------

    def _run(self) -> None:
        """Carry out the core's actions (those they cause too), then move the timer: only
        ever earlier (a deadline that moved later or went away makes it fire early, and
        harmlessly), so only when the core pushed a deadline since the last look."""
        fw = self._fw
        while fw.out:
            handlers = self._handlers
            for action in self._take():
                handlers[type(action)](action)
        pushes = fw.pushes
        if pushes == self._pushes and self._timer is not None:
            return
        self._pushes = pushes
        deadline = self._next_deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _ask_route(self, action: AskRoute) -> None:
        ctx = action.context
        try:
            decision = self.policy.route(action.request, action.source)  # type: ignore[arg-type]
        except Exception:  # the policy's bug must not take the proxy down
            _log.exception("routing policy failed on %r", action.request)
            self.core.route_failed(ctx, self._loop.time())
            return
        if isinstance(decision, (Forward, Response)):
            self.core.route_decided(ctx, decision, self._loop.time())
            return
        task = asyncio.ensure_future(decision)
        self._tasks.add(task)
        task.add_done_callback(partial(self._routed, ctx))

    def _send_request(self, action: SendRequest) -> None:
        """§16.6: Record-Route (steps 4, RFC 5658 §4), then a client transaction (step 8)."""
        request = action.request
        target: Target = action.target  # type: ignore[assignment]
        endpoint = self.endpoint
        try:
            destination = target.destination
            if destination is None:
                destination = destination_of(target.uri)
                if destination is None:
                    raise TransportError(f"no address for {target.uri} (needs DNS)")
            out = None
            if self.forward_hook is not None:
                out = endpoint.transport_for(destination)
                self._hooked(request, out)
            if action.record_route:
                network = self._network
                if out is None:
                    out = endpoint.transport_for(destination)
                source: Source = action.source  # type: ignore[assignment]
                inbound = source.transport
                headers = request.headers
                if out is not inbound:  # RFC 5658: one for each side, outbound on top
                    headers.prepend("Record-Route", network.record_route(inbound))
                headers.prepend("Record-Route", network.record_route(out))
            tx = endpoint.send_request(request, destination, action.branch)
        except TransportError as exc:
            _log.info("%s to %s not sent: %s", request.method, target.uri, exc)
            self.core.branch_failed(action.branch, self._loop.time())
            return
        self.core.branch_sent(action.branch, tx)
        counts = self.counters.requests_forwarded
        counts[request.method] = counts.get(request.method, 0) + 1
        if request.method in _LOGGED and self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s %s forwarded to %s", request.method, request.uri, destination)

    def _hooked(self, message: Request | Response, out: Transport | None) -> None:
        """The forward hook (set: the callers look) on ``message``; a hook that fails leaves
        the message as it was."""
        assert self.forward_hook is not None
        try:
            self.forward_hook(message, out)
        except Exception:
            _log.exception("forward hook failed on %s", getattr(message, "method", message))

    def _send_response(self, action: SendResponse) -> None:
        response = action.response
        if self.forward_hook is not None:  # local answers too: a 408/503 ends what it began
            source = action.transaction.context
            self._hooked(response, source.transport if isinstance(source, Source) else None)
        try:
            self.endpoint.send_response(action.transaction, response)
        except LocalProtocolError as exc:
            _log.info("%s not sent: %s", response.status, exc)
            return
        counters = self.counters
        counts = counters.local_responses if action.local else counters.responses_forwarded
        counts[response.status] = counts.get(response.status, 0) + 1

    def _send_direct(self, action: SendDirect) -> None:
        """A 2xx whose server transaction is over, back the way the INVITE came."""
        source = action.source
        if not isinstance(source, Source):
            return
        response = action.response
        if self.forward_hook is not None:
            self._hooked(response, source.transport)
        self.endpoint.send_direct(source, response)
        counts = self.counters.responses_forwarded
        counts[response.status] = counts.get(response.status, 0) + 1

    def _cancel(self, action: CancelBranch) -> None:
        tx = action.transaction
        if tx.cancel is None and tx.state in _CANCELLABLE:  # as when the core decided
            self.endpoint.cancel(tx)

    def _send_ack(self, action: SendAck) -> None:
        try:
            via: Transport | None = action.via  # type: ignore[assignment]
            hop = destination_of(action.hop) or named_destination(action.hop, self._network.names)
            destination = _from(hop, via)
            if destination is None:
                return
            if self.forward_hook is not None:  # an ACK may carry the answer (late offer)
                self._hooked(action.request, self.endpoint.transport_for(destination))
            self.endpoint.send_stateless(action.request, destination)
        except (ParseError, TransportError) as exc:
            _log.info("ACK not forwarded: %s", exc)
            return
        self.counters.acks_forwarded += 1

    def _forward_stray(self, action: ForwardStray) -> None:
        via = action.via
        try:
            host, port = response_address(via, via.transport in RELIABLE)
            transport = self.endpoint.transport_for(Destination(via.transport, host, port))
            if self.forward_hook is not None:
                self._hooked(action.response, transport)
            transport.send_message(action.response, host, port)
        except (ParseError, TransportError) as exc:
            _log.info("stray 2xx not forwarded: %s", exc)
            return
        self.counters.stray_forwarded += 1


def _from(destination: Destination | None, transport: Transport | None) -> Destination | None:
    """``destination`` sent from ``transport`` when it is of the same kind."""
    if destination is None or transport is None or transport.kind != destination.transport:
        return destination
    d = destination  # (the constructor: dataclasses.replace costs 5x, on every in-dialog hop)
    return Destination(d.transport, d.host, d.port, d.server_name, transport.local)
