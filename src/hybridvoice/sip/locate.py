"""Locating SIP servers (RFC 3263), sans-IO.

Client usage, RFC 3263 §4:

* §4.1 transport selection: the URI's ``transport`` parameter; a numeric TARGET (UDP, or TLS
  for SIPS); an explicit port (likewise); otherwise NAPTR, keeping the services of supported
  transports (``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``; ``SIP+D2S``/``SIPS+D2S`` and RFC 7118
  ``SIP+D2W``/``SIPS+D2W`` only when SCTP or WebSocket is supported), in order then
  preference, each replacement resolved with SRV; with no usable NAPTR, SRV for
  ``_sips._tcp``, ``_sip._tcp`` and ``_sip._udp`` (only ``_sips`` for a SIPS URI).
* §4.2 port and address: SRV records ordered by priority with RFC 2782 weighted random choice
  (:func:`order_srv`); a target of "." means the service is decidedly not available (and
  then there is no A/AAAA fallback); with no SRV at all, A/AAAA of the TARGET on the default
  port of the chosen transport (5060, 5061 for TLS). Addresses follow ``families``:
  IPv4 first by default, because over UDP an unreachable IPv6 path costs a whole
  transaction timeout (RFC 3261 Timer B/F, 32 s) before failover, with no Happy Eyeballs.
* §4.3 failover: :class:`TargetList` hands out the targets in order; after a transport error,
  a 503 or a timeout the caller marks the target failed and takes the next one;
  :class:`FailedTargets` keeps failed targets at the back of later lists for a while.
* §4.4 stateless proxies: give the :class:`Locator` an ``rng`` seeded from the request
  (e.g. the branch) and the same request always gets the same target.

Server usage, RFC 3263 §5 with RFC 3261 §18.2.2 and RFC 3581 §4: :func:`response_route`.

The :class:`Locator` never does I/O: it hands out :class:`DnsQuery` objects, takes
:class:`DnsAnswer` objects back (any resolver can drive it), and in the end gives the ordered
:class:`Target` list. :class:`DnsCache` keeps answers for their TTL (RFC 1035 §3.2.1; negative
answers for a fixed time, RFC 2308 §5). Time is always the ``now`` argument.
"""

from __future__ import annotations

import ipaddress
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import ClassVar, Final, TypeAlias, TypeVar

DEFAULT_TRANSPORTS: Final = ("udp", "tcp", "tls")
"""Transports a client supports unless told otherwise."""

DEFAULT_FAMILIES: Final = (4, 6)
"""AddressRecord families in order of preference: IPv4, then IPv6 (see the module docstring)."""


class LocateError(Exception):
    """Base class of the errors raised while locating a SIP server (RFC 3263)."""


class UnsupportedTransportError(LocateError):
    """The request needs a transport this side does not support (RFC 3263 §4.1)."""


class LocatorStateError(LocateError):
    """A :class:`Locator` was given an answer to a query it has not asked, or asked twice."""


# --- value types ---------------------------------------------------------------------------


class RdType(StrEnum):
    """The DNS record types RFC 3263 uses."""

    NAPTR = "NAPTR"
    SRV = "SRV"
    A = "A"
    AAAA = "AAAA"


@dataclass(frozen=True, slots=True)
class LocateRequest:
    """What to locate: the parts of a SIP or SIPS URI that RFC 3263 §4 looks at.

    ``transport`` is the URI's transport parameter, ``secure`` is true for a SIPS URI (or when
    TLS is otherwise required), ``maddr`` overrides ``host`` as the TARGET (§4).
    """

    host: str
    port: int | None
    transport: str | None
    secure: bool
    maddr: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request: transport, numeric address and port (RFC 3263 §4.2).

    ``host`` is the DNS name the address came from (the SRV target or the TARGET). For TLS the
    identity to check is the domain of the request URI, not this name (RFC 5922 §4).
    """

    transport: str
    address: str
    port: int
    host: str


@dataclass(frozen=True, slots=True)
class DnsQuery:
    """A DNS question the :class:`Locator` wants answered. ``name`` has no final dot."""

    name: str
    rdtype: RdType


@dataclass(frozen=True, slots=True)
class Naptr:
    """A NAPTR record (RFC 3403 §4.1)."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: int


@dataclass(frozen=True, slots=True)
class Srv:
    """An SRV record (RFC 2782); a ``target`` of "." means "not available"."""

    priority: int
    weight: int
    port: int
    target: str
    ttl: int


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """An A or AAAA record: one IPv4 or IPv6 address."""

    address: str
    ttl: int


Record: TypeAlias = Naptr | Srv | AddressRecord
_R = TypeVar("_R", Naptr, Srv, AddressRecord)


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The answer to one :class:`DnsQuery`: its records, or none (NODATA or NXDOMAIN).

    The locator treats NXDOMAIN like NODATA and goes on with its other queries: some servers
    and load balancers answer NXDOMAIN for record types they do not serve.
    """

    records: tuple[Record, ...] = ()
    nxdomain: bool = False


NXDOMAIN: Final = DnsAnswer(nxdomain=True)
NODATA: Final = DnsAnswer()


# --- transports ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Transport:
    naptr_service: str
    srv_prefix: str | None  # None: no SRV name defined (WebSocket, RFC 7118)
    secure: bool
    reliable: bool
    default_port: int


_TRANSPORTS: Final[Mapping[str, _Transport]] = MappingProxyType(
    {
        # transport: NAPTR service, SRV prefix, secure, reliable, default port.
        # The order is the preference for the default transport (RFC 3263 §4.1).
        "udp": _Transport("SIP+D2U", "_sip._udp", False, False, 5060),
        "tcp": _Transport("SIP+D2T", "_sip._tcp", False, True, 5060),
        "tls": _Transport("SIPS+D2T", "_sips._tcp", True, True, 5061),
        "sctp": _Transport("SIP+D2S", "_sip._sctp", False, True, 5060),
        "tls-sctp": _Transport("SIPS+D2S", "_sips._sctp", True, True, 5061),
        "ws": _Transport("SIP+D2W", None, False, True, 80),
        "wss": _Transport("SIPS+D2W", None, True, True, 443),
    }
)
_SECURE_FORM: Final[Mapping[str, str]] = MappingProxyType(
    {"tcp": "tls", "sctp": "tls-sctp", "ws": "wss"}
)
_SRV_PREFERENCE: Final = ("tls", "tcp", "udp", "tls-sctp", "sctp")
_ADDRESS_RDTYPE: Final[Mapping[int, RdType]] = MappingProxyType({4: RdType.A, 6: RdType.AAAA})


def default_port(transport: str) -> int:
    """The default port of a transport: 5060, 5061 for TLS (RFC 3261 §19.1.2, RFC 3263 §4.2)."""
    return _transport(transport).default_port


def _transport(name: str) -> _Transport:
    try:
        return _TRANSPORTS[name.lower()]
    except KeyError:
        raise UnsupportedTransportError(f"unknown SIP transport {name!r}") from None


def _numeric(host: str) -> str | None:
    """The IP address in ``host`` (brackets allowed around IPv6), or None for a name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _domain(name: str) -> str:
    """A DNS name in lower case without its final dot; the root stays "."."""
    return name.rstrip(".").lower() or "."


# --- RFC 2782 ordering -----------------------------------------------------------------------


def order_srv(records: Iterable[Srv], rng: random.Random) -> list[Srv]:
    """Order SRV records as RFC 2782 says: by priority, then weighted random within a priority.

    Zero-weight records go first in each round, so they are picked only when the random draw
    is 0 (RFC 2782, "Usage rules").
    """
    remaining = sorted(records, key=lambda r: (r.priority, r.weight != 0))
    ordered: list[Srv] = []
    while remaining:
        group = [r for r in remaining if r.priority == remaining[0].priority]
        draw = rng.randint(0, sum(r.weight for r in group))
        running = 0
        for record in group:
            running += record.weight
            if running >= draw:
                break
        ordered.append(record)
        remaining.remove(record)
    return ordered


# --- the locator -----------------------------------------------------------------------------


class _Phase(Enum):
    NAPTR = "naptr"
    SRV = "srv"
    ADDRESS = "address"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class _Hop:
    transport: str
    host: str
    port: int


class Locator:
    """Sans-IO RFC 3263 §4 client procedure for one request.

    Drive it with :meth:`pending` (queries that may all be sent at once) and :meth:`feed`
    until :attr:`done`, then read :meth:`result`. Phases run NAPTR -> SRV -> ADDRESS -> DONE;
    the transitions are the table ``_ADVANCE``. With a :class:`DnsCache`, fresh cached answers
    are used without asking and new answers are stored.
    """

    __slots__ = (
        "_answers",
        "_cache",
        "_default",
        "_fallback",
        "_families",
        "_hops",
        "_now",
        "_phase",
        "_request",
        "_rng",
        "_services",
        "_supported",
        "_target",
        "_targets",
    )

    def __init__(
        self,
        request: LocateRequest,
        *,
        rng: random.Random,
        supported: Iterable[str] = DEFAULT_TRANSPORTS,
        families: Iterable[int] = DEFAULT_FAMILIES,
        cache: DnsCache | None = None,
        now: float = 0.0,
    ) -> None:
        self._request = request
        self._rng = rng
        self._supported = frozenset(t.lower() for t in supported)
        self._families = tuple(families)
        if not self._families or any(f not in _ADDRESS_RDTYPE for f in self._families):
            raise ValueError(f"families must be a non-empty sequence of 4 and 6: {families!r}")
        self._cache = cache
        self._now = now
        self._target = _domain(request.maddr or request.host)
        # The transport parameter, else the §4.1 default (also the no-SRV fallback).
        self._default = (
            self._explicit_transport(request.transport)
            if request.transport
            else self._default_transport()
        )
        self._fallback = self._default
        self._phase = _Phase.DONE
        self._answers: dict[DnsQuery, DnsAnswer | None] = {}
        self._services: list[tuple[str, str]] = []
        self._hops: list[_Hop] = []
        self._targets: list[Target] = []
        self._start()
        self._settle()

    @property
    def done(self) -> bool:
        """True once the target list is known."""
        return self._phase is _Phase.DONE

    def pending(self) -> tuple[DnsQuery, ...]:
        """The queries of the current phase still waiting for an answer."""
        return tuple(q for q, a in self._answers.items() if a is None)

    def feed(self, query: DnsQuery, answer: DnsAnswer) -> None:
        """Give the answer to one pending query; the locator moves on when a phase is complete."""
        if query not in self._answers or self._answers[query] is not None:
            raise LocatorStateError(f"not waiting for an answer to {query}")
        self._answers[query] = answer
        if self._cache is not None:
            self._cache.put(query, answer, self._now)
        self._settle()

    def result(self) -> list[Target]:
        """The targets in the order to try them (RFC 3263 §4.3); empty if nothing was found."""
        if not self.done:
            raise LocatorStateError("the locator still has queries pending")
        return list(self._targets)

    # -- phases --

    def _start(self) -> None:
        """RFC 3263 §4.1: pick the first step from the request alone."""
        request = self._request
        numeric = _numeric(request.maddr or request.host)
        if numeric is not None:
            port = request.port if request.port is not None else default_port(self._default)
            self._targets = [Target(self._default, numeric, port, numeric)]
        elif request.port is not None:
            self._enter_address([_Hop(self._default, self._target, request.port)])
        elif request.transport:
            self._enter_srv(self._srv_names([self._default]))
        else:
            self._enter(_Phase.NAPTR, [DnsQuery(self._target, RdType.NAPTR)])

    def _after_naptr(self) -> None:
        """RFC 3263 §4.1: usable NAPTR records in order, else SRV for every transport."""
        records = self._records(DnsQuery(self._target, RdType.NAPTR), Naptr)
        usable = [(r, t) for r in records if (t := self._naptr_transport(r)) is not None]
        usable.sort(key=lambda pair: (pair[0].order, pair[0].preference))
        services = [(t, _domain(r.replacement)) for r, t in usable]
        if services:
            self._fallback = services[0][0]
        else:
            services = self._srv_names([t for t in _SRV_PREFERENCE if self._usable(t)])
        self._enter_srv(services)

    def _after_srv(self) -> None:
        """RFC 3263 §4.2: SRV targets in RFC 2782 order; no SRV at all -> A/AAAA of TARGET."""
        hops: list[_Hop] = []
        declined = False
        for transport, name in self._services:
            records = self._records(DnsQuery(name, RdType.SRV), Srv)
            available = [r for r in records if _domain(r.target) != "."]
            declined = declined or len(available) < len(records)
            hops += [
                _Hop(transport, _domain(r.target), r.port) for r in order_srv(available, self._rng)
            ]
        if not hops and not declined:
            hops = [_Hop(self._fallback, self._target, default_port(self._fallback))]
        self._enter_address(hops)

    def _after_address(self) -> None:
        """RFC 3263 §4.2-4.3: every address of every hop, in order, without duplicates."""
        seen: set[tuple[str, str, int]] = set()
        for hop in self._hops:
            for address in self._addresses(hop.host):
                if (hop.transport, address, hop.port) not in seen:
                    seen.add((hop.transport, address, hop.port))
                    self._targets.append(Target(hop.transport, address, hop.port, hop.host))
        self._enter(_Phase.DONE, [])

    _ADVANCE: ClassVar[dict[_Phase, Callable[[Locator], None]]] = {
        _Phase.NAPTR: _after_naptr,
        _Phase.SRV: _after_srv,
        _Phase.ADDRESS: _after_address,
    }

    # -- helpers --

    def _settle(self) -> None:
        while self._phase is not _Phase.DONE and None not in self._answers.values():
            self._ADVANCE[self._phase](self)

    def _enter(self, phase: _Phase, queries: list[DnsQuery]) -> None:
        self._phase = phase
        self._answers = dict.fromkeys(queries)
        if self._cache is not None:
            for query in self._answers:
                self._answers[query] = self._cache.get(query, self._now)

    def _srv_names(self, transports: list[str]) -> list[tuple[str, str]]:
        """(transport, SRV name) for each transport that has one (RFC 3263 §4.1)."""
        return [
            (t, f"{prefix}.{self._target}")
            for t in transports
            if (prefix := _TRANSPORTS[t].srv_prefix) is not None
        ]

    def _enter_srv(self, services: list[tuple[str, str]]) -> None:
        self._services = services
        self._enter(_Phase.SRV, [DnsQuery(name, RdType.SRV) for _, name in services])

    def _enter_address(self, hops: list[_Hop]) -> None:
        self._hops = hops
        names = dict.fromkeys(h.host for h in hops if _numeric(h.host) is None)
        self._enter(
            _Phase.ADDRESS,
            [DnsQuery(n, _ADDRESS_RDTYPE[f]) for n in names for f in self._families],
        )

    def _records(self, query: DnsQuery, kind: type[_R]) -> list[_R]:
        answer = self._answers.get(query)
        return [r for r in answer.records if isinstance(r, kind)] if answer else []

    def _addresses(self, host: str) -> list[str]:
        numeric = _numeric(host)
        if numeric is not None:
            return [numeric]
        found: list[str] = []
        for family in self._families:
            for record in self._records(DnsQuery(host, _ADDRESS_RDTYPE[family]), AddressRecord):
                address = _numeric(record.address)
                if address is not None and ipaddress.ip_address(address).version == family:
                    found.append(address)
        return found

    def _usable(self, transport: str) -> bool:
        return transport in self._supported and (
            _TRANSPORTS[transport].secure or not self._request.secure
        )

    def _naptr_transport(self, record: Naptr) -> str | None:
        """The transport of a NAPTR record usable here (RFC 3263 §4.1), or None."""
        if record.flags.lower() != "s" or _domain(record.replacement) == ".":
            return None
        service = record.service.upper()
        for name, info in _TRANSPORTS.items():
            if info.naptr_service == service and self._usable(name):
                return name
        return None

    def _explicit_transport(self, param: str) -> str:
        """RFC 3263 §4.1: the transport parameter; over SIPS, TCP means TLS (RFC 3261 §26.2.2)."""
        name = param.lower()
        if self._request.secure:
            name = _SECURE_FORM.get(name, name)
        if name not in _TRANSPORTS or not self._usable(name):
            raise UnsupportedTransportError(
                f"transport {param!r} is not usable here"
                + (" for a SIPS URI" if self._request.secure else "")
            )
        return name

    def _default_transport(self) -> str:
        """RFC 3263 §4.1: UDP for SIP (else TCP, TLS...), TLS for SIPS; as supported."""
        for name in _TRANSPORTS:
            if self._usable(name):
                return name
        raise UnsupportedTransportError("no supported transport can reach this URI")


def resolve_sync(
    request: LocateRequest,
    answer_fn: Callable[[DnsQuery], DnsAnswer],
    *,
    rng: random.Random,
    supported: Iterable[str] = DEFAULT_TRANSPORTS,
    families: Iterable[int] = DEFAULT_FAMILIES,
    cache: DnsCache | None = None,
    now: float = 0.0,
) -> list[Target]:
    """Run a :class:`Locator` to the end, answering each query with ``answer_fn`` (tests, tools)."""
    locator = Locator(
        request, rng=rng, supported=supported, families=families, cache=cache, now=now
    )
    while not locator.done:
        for query in locator.pending():
            locator.feed(query, answer_fn(query))
    return locator.result()


# --- caching and failover --------------------------------------------------------------------


class DnsCache:
    """DNS answers kept for their TTL (RFC 1035 §3.2.1), negative ones for ``negative_ttl``.

    RFC 2308 §5 would take the negative TTL from the SOA; a fixed value keeps the drivers
    simple. ``max_ttl`` caps absurd TTLs; at ``max_entries`` the oldest entries go first.
    """

    __slots__ = ("_entries", "_max_entries", "_max_ttl", "_negative_ttl")

    def __init__(
        self, *, negative_ttl: float = 30.0, max_ttl: float = 86400.0, max_entries: int = 10_000
    ) -> None:
        self._negative_ttl = negative_ttl
        self._max_ttl = max_ttl
        self._max_entries = max_entries
        self._entries: dict[DnsQuery, tuple[float, DnsAnswer]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: DnsQuery, now: float) -> DnsAnswer | None:
        """The cached answer to ``query`` if it has not expired at ``now``."""
        entry = self._entries.get(query)
        if entry is None:
            return None
        if now >= entry[0]:
            del self._entries[query]
            return None
        return entry[1]

    def put(self, query: DnsQuery, answer: DnsAnswer, now: float) -> None:
        """Keep ``answer`` until its smallest record TTL (or the negative TTL) runs out."""
        ttl = min(min((r.ttl for r in answer.records), default=self._negative_ttl), self._max_ttl)
        if ttl <= 0:
            return
        self._entries.pop(query, None)
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[query] = (now + ttl, answer)

    def _evict(self, now: float) -> None:
        for query in [q for q, (expires, _) in self._entries.items() if now >= expires]:
            del self._entries[query]
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]


def _key(target: Target) -> tuple[str, str, int]:
    return (target.transport, target.address, target.port)


class FailedTargets:
    """Targets that failed recently (RFC 3263 §4.3), shared by the requests of one element.

    A failed target is held for ``hold`` seconds (default 32 s, RFC 3261 Timer B), or for the
    Retry-After of a 503 (RFC 3261 §21.5.4) when the caller gives it.
    """

    __slots__ = ("_hold", "_until")

    def __init__(self, *, hold: float = 32.0) -> None:
        self._hold = hold
        self._until: dict[tuple[str, str, int], float] = {}

    def mark(self, target: Target, now: float, *, retry_after: float | None = None) -> None:
        """Record that ``target`` failed at ``now``."""
        for key in [k for k, until in self._until.items() if now >= until]:
            del self._until[key]
        until = now + (self._hold if retry_after is None else retry_after)
        self._until[_key(target)] = max(until, self._until.get(_key(target), until))

    def is_failed(self, target: Target, now: float) -> bool:
        """True while ``target`` is held after a failure."""
        return now < self._until.get(_key(target), now)

    def clear(self, target: Target) -> None:
        """Forget a failure (for example after a successful OPTIONS ping)."""
        self._until.pop(_key(target), None)


class TargetList:
    """The targets of one request in the order to try them (RFC 3263 §4.3).

    Targets held in ``failed`` at ``now`` move to the back, kept as a last resort. After a
    transport error, a 503 or a timeout the caller calls :meth:`mark_failed` and :meth:`next`.
    """

    __slots__ = ("_failed", "_pending")

    def __init__(
        self, targets: Iterable[Target], *, failed: FailedTargets | None = None, now: float = 0.0
    ) -> None:
        self._failed = failed
        ordered = list(targets)
        if failed is not None:
            ordered.sort(key=lambda t: failed.is_failed(t, now))
        self._pending = deque(ordered)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def remaining(self) -> tuple[Target, ...]:
        """The targets not handed out yet."""
        return tuple(self._pending)

    def next(self) -> Target | None:
        """The next target to try, or None when the list is exhausted."""
        return self._pending.popleft() if self._pending else None

    def mark_failed(self, target: Target, now: float, *, retry_after: float | None = None) -> None:
        """``target`` failed: hold it in ``failed`` and drop its duplicates from this list."""
        if self._failed is not None:
            self._failed.mark(target, now, retry_after=retry_after)
        self._pending = deque(t for t in self._pending if _key(t) != _key(target))


# --- server usage ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseRoute:
    """Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4, RFC 3263 §5).

    ``reuse_connection``: a reliable transport; send on the connection the request came in on
    while it is open, else to the destination below. Exactly one of ``target`` (a numeric
    destination) and ``locate`` (a sent-by name to resolve with a :class:`Locator`, §5) is set.
    ``multicast_ttl`` is set for a multicast ``maddr``. Per RFC 3581 §4 a response to an
    rport request is sent from the address and port the request arrived on.
    """

    reuse_connection: bool
    target: Target | None
    locate: LocateRequest | None
    multicast_ttl: int | None = None


def response_route(
    *,
    transport: str,
    sent_by_host: str,
    sent_by_port: int | None = None,
    received: str | None = None,
    rport: int | None = None,
    maddr: str | None = None,
    ttl: int | None = None,
) -> ResponseRoute:
    """Where to send a response, from the top Via as the server has completed it.

    ``transport`` is the Via's transport (``UDP``, ``TCP``, ``TLS``...), ``received`` and
    ``rport`` the values the server filled in (RFC 3261 §18.2.1, RFC 3581 §4), ``maddr`` and
    ``ttl`` the Via parameters. Order of RFC 3261 §18.2.2: reliable transport -> received (or
    sent-by) on the sent-by port; maddr -> there, sent-by port; received -> there, rport or
    sent-by port; else sent-by, resolved by RFC 3263 §5 if it is a name.
    """
    name = transport.lower()
    info = _transport(name)
    port = sent_by_port
    multicast_ttl: int | None = None
    if info.reliable:
        host = received or sent_by_host
    elif maddr:
        host = maddr
        numeric = _numeric(maddr)
        if numeric is not None and ipaddress.ip_address(numeric).is_multicast:
            multicast_ttl = 1 if ttl is None else ttl
    else:
        host = received or sent_by_host
        port = rport if rport is not None else sent_by_port
    numeric = _numeric(host)
    if numeric is None:
        request = LocateRequest(host, port, name, secure=info.secure)
        return ResponseRoute(info.reliable, None, request)
    port = info.default_port if port is None else port
    return ResponseRoute(info.reliable, Target(name, numeric, port, numeric), None, multicast_ttl)
