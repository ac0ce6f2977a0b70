"""The proxy core's data (RFC 3261 §16): what the policy and the adapter hand it, its
response contexts and branches, its counters and the actions it returns.

See :mod:`hybridvoice.sip.proxy` for the core itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .headers import Via
from .message import Request, Response
from .transaction import ClientTransaction, ServerTransaction
from .uri import Uri

__all__ = [
    "Action",
    "AskRoute",
    "Branch",
    "CancelBranch",
    "Context",
    "ForwardLike",
    "ForwardStray",
    "InDialog",
    "Listener",
    "ProxyCounters",
    "ProxyNetwork",
    "SendAck",
    "SendDirect",
    "SendRequest",
    "SendResponse",
    "TargetLike",
]

S_contra = TypeVar("S_contra", contravariant=True)


class TargetLike(Protocol):
    """One branch's target: the adapter's (it also names the next hop); the core reads the
    new Request-URI (§16.6 step 2)."""

    @property
    def uri(self) -> Uri: ...


class ForwardLike(Protocol):
    """The policy's decision to forward: ``groups`` tried one after another, the targets of a
    group in parallel; see the module docstring for the rest."""

    @property
    def groups(self) -> Sequence[Sequence[TargetLike]]: ...
    @property
    def failover(self) -> frozenset[int]: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def provisional_timeout(self) -> float | None: ...
    @property
    def exhausted(self) -> int: ...
    @property
    def retry_after(self) -> int | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, str]]: ...
    @property
    def record_route(self) -> bool: ...


@dataclass(slots=True)
class InDialog:
    """The plan of an in-dialog request (§16.4 then §16.6): one target, no Record-Route.
    Read-only by contract but not frozen: one is built for every in-dialog request (see the
    actions below)."""

    groups: Sequence[Sequence[TargetLike]]
    failover: frozenset[int] = frozenset({408, 503, 504})
    timeout: float | None = None
    provisional_timeout: float | None = None
    exhausted: int = 408
    retry_after: int | None = None
    headers: Sequence[tuple[str, str]] = ()
    record_route: bool = False


class ProxyNetwork(Protocol[S_contra]):
    """What the core asks of the adapter, synchronously: facts about our interfaces and the
    policy's admission of in-dialog requests."""

    def interface(self, uri: Uri) -> object | None:
        """The interface of ours ``uri`` names (an address or Record-Route host), or None."""
        ...

    def admit(self, request: Request, source: S_contra) -> Response | None:
        """An in-dialog request or an ACK: None lets it through, a Response refuses it."""
        ...

    def dialog_target(self, uri: Uri, route: Uri | None, via: object | None) -> TargetLike | None:
        """The target of an in-dialog request for Request-URI ``uri``: next hop ``route`` (the
        top Route left, None: the URI's), sent from interface ``via`` (the one our Record-Route
        named) when known. None when ``route`` names no reachable hop (answered 503)."""
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


class Context:
    """The response context of one forwarded request (§16.7): its server transaction, the
    branches of the current group and the best final response so far."""

    __slots__ = ("armed", "best", "best_rank", "branches", "cancelled", "challenges", "deadline",
                 "final", "forward", "group", "invite", "max_forwards", "pending", "record_route",
                 "request", "routing", "server_tx", "source", "stopped")  # fmt: skip

    def __init__(self, server_tx: ServerTransaction, request: Request, source: object) -> None:
        self.server_tx = server_tx
        self.request = request
        self.source = source
        self.invite = request.method == "INVITE"
        self.forward: ForwardLike | None = None
        self.branches: list[Branch] = []
        self.pending = 0  # branches of the current group without a final outcome
        self.group = 0
        self.best: Response | None = None
        self.best_rank = 1000
        self.challenges: list[Response] | None = None
        self.final = False  # the final response went upstream
        self.stopped = False  # no more groups: CANCEL from upstream, or a 6xx
        self.cancelled = False  # CANCEL from upstream
        self.routing = False  # the policy is still deciding
        self.max_forwards = "70"
        self.record_route = False
        self.deadline = 0.0  # the group timeout (0: none)
        self.armed = 0.0  # when its live heap entry is due (0: none)


class Branch:
    """One forwarded request. The adapter gives it to the branch's client transaction as the
    callback; calling it hands ``(branch, transaction, outcome)`` to the core's ``listener``."""

    __slots__ = ("armed", "ctx", "deadline", "done", "invite", "listener", "phase", "provisional",
                 "sent_at", "server_tx", "tx")  # fmt: skip

    def __init__(self, ctx: Context, listener: Listener | None, sent_at: float = 0.0) -> None:
        self.listener = listener
        self.ctx: Context | None = ctx  # None once the context is over
        self.server_tx = ctx.server_tx  # where a late 2xx goes
        self.invite = ctx.invite
        self.tx: ClientTransaction | None = None
        self.done = False  # final outcome known (or given up)
        self.provisional = False  # any response came (100 included)
        self.phase = 0
        self.deadline = 0.0  # when the branch timer fires (0: none)
        self.armed = 0.0  # when its live heap entry is due (0: none)
        self.sent_at = sent_at  # when the request was forwarded (Timer C's start, §16.6 step 11)

    def __call__(self, tx: ClientTransaction, outcome: object) -> None:
        listener = self.listener
        if listener is not None:
            listener(self, tx, outcome)


# --- actions --------------------------------------------------------------------------------
# Slotted dataclasses, read-only by contract but not frozen: several are built for every
# message, and a frozen dataclass's __init__ costs 3.5 times as much (object.__setattr__ per field).


@dataclass(slots=True)
class AskRoute:
    """Ask the routing policy about an initial request; answer with
    :meth:`ProxyCore.route_decided` (or :meth:`ProxyCore.route_failed`)."""

    context: Context
    request: Request
    source: object


@dataclass(slots=True)
class SendRequest:
    """Send ``request`` (already a copy: new Request-URI, Max-Forwards, the policy's headers)
    to ``target`` in a new client transaction whose callback is ``branch``; then tell the core
    :meth:`ProxyCore.branch_sent`, or :meth:`ProxyCore.branch_failed` when it could not go.
    With ``record_route``, first add our Record-Route (§16.6 step 4, RFC 5658 for a request
    that came from ``source`` on another interface)."""

    branch: Branch
    request: Request
    target: TargetLike
    record_route: bool
    source: object


@dataclass(slots=True)
class SendResponse:
    """Send ``response`` through server ``transaction``; ``local``: our own, not forwarded."""

    transaction: ServerTransaction
    response: Response
    local: bool


@dataclass(slots=True)
class SendDirect:
    """A 2xx to an INVITE whose server transaction is over: back to ``source`` directly."""

    source: object
    response: Response


@dataclass(slots=True)
class CancelBranch:
    """CANCEL the INVITE of ``transaction`` (§9.1, §16.10)."""

    transaction: ClientTransaction


@dataclass(slots=True)
class SendAck:
    """§16.11: send an ACK for a 2xx statelessly to the next hop ``hop`` (the top Route or the
    Request-URI), from interface ``via`` when known."""

    request: Request
    hop: Uri
    via: object | None


@dataclass(slots=True)
class ForwardStray:
    """§16.11: send a stray 2xx (our Via removed) statelessly as its top ``via`` says."""

    response: Response
    via: Via


Action = AskRoute | SendRequest | SendResponse | SendDirect | CancelBranch | SendAck | ForwardStray

#: what the adapter's listener gets: the branch, its transaction, the transaction's outcome
Listener = Callable[[Branch, ClientTransaction, object], None]
