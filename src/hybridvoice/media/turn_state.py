"""TURN server state: configuration, actions, allocations, relay ports, peer policy, nonces.

- An allocation (RFC 8656 §2.2, §7) is keyed by the client's transport address (UDP only
  here: the 5-tuple's other parts are the one listener); it holds the relayed port, its
  expiry, the permissions (§9: one per peer IP, 300 s) and the channel bindings (§12:
  0x4000-0x4FFF, 600 s, each also refreshing the peer's permission).
- Relay ports come from an injected allocator (:class:`RelayAllocator`); :class:`RelayPortRange`
  is the plain one over a configured range, least recently used first. EVEN-PORT with the R
  bit (RFC 8656 §7.2, §18.7) takes an even port and keeps the next one for a later Allocate
  that presents the RESERVATION-TOKEN (§18.9): the RTP/RTCP pair, 2 ports per call.
- Peer policy (RFC 8656 §21.3, "Relaying to internal addresses"): no loopback, link-local,
  unspecified or multicast peers, and none of the appliance's own addresses, unless allowed.
- Nonces (RFC 8489 §9.2): stateless, ``<expiry hex>.<HMAC tag>`` under a per-process key
  from the injected randomness, stale after ``nonce_lifetime`` seconds (438).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = [
    "Action",
    "Addr",
    "Allocation",
    "CloseRelay",
    "Credentials",
    "NonceBook",
    "OpenRelay",
    "PeerPolicy",
    "RelayAllocator",
    "RelayPortRange",
    "ToClient",
    "ToPeer",
    "TurnConfig",
]

Addr = tuple[str, int]

DEFAULT_LIFETIME: Final = 600
MAX_LIFETIME: Final = 3600
PERMISSION_LIFETIME: Final = 300
CHANNEL_LIFETIME: Final = 600
NONCE_LIFETIME: Final = 3600
#: How long a port reserved by EVEN-PORT (R bit) waits for its RESERVATION-TOKEN (§14.6).
RESERVATION_LIFETIME: Final = 30


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """What the relay is told: realm, advertised address, lifetimes, quota and peer policy."""

    realm: str
    external_ip: str
    own_addresses: frozenset[str] = frozenset()
    allow_loopback_peers: bool = False
    allow_link_local_peers: bool = False
    allow_own_peers: bool = False
    user_quota: int = 10
    default_lifetime: int = DEFAULT_LIFETIME
    max_lifetime: int = MAX_LIFETIME
    permission_lifetime: int = PERMISSION_LIFETIME
    channel_lifetime: int = CHANNEL_LIFETIME
    nonce_lifetime: int = NONCE_LIFETIME
    reservation_lifetime: int = RESERVATION_LIFETIME
    #: accept RFC 5766 channel numbers 0x5000-0x7FFF too (coturn's turnutils_uclient uses them)
    legacy_channels: bool = True
    software: str = "hybridvoice"
    #: STUN requests per second per source IP (0: no limit) and the burst above that rate
    requests_per_second: float = 0.0
    request_burst: int = 50
    #: own addresses a client may relay to on ``media_peer_ports`` only: the edge's media
    #: anchoring relay, which a client's TURN allocation must reach (an ICE relay candidate)
    media_peers: frozenset[str] = frozenset()
    media_peer_ports: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.external_ip)
        if not 0 < self.default_lifetime <= self.max_lifetime:
            raise ValueError("lifetimes: 0 < default <= max")
        if self.user_quota < 1:
            raise ValueError("user quota must be at least 1")

    @property
    def family(self) -> int:
        """The relayed address family, as REQUESTED-ADDRESS-FAMILY codes it (1 IPv4, 2 IPv6)."""
        return 1 if ipaddress.ip_address(self.external_ip).version == 4 else 2


@dataclass(frozen=True, slots=True)
class ToClient:
    """Send ``data`` from the listening socket to the client at ``addr``."""

    data: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class ToPeer:
    """Send ``data`` from the relay socket of ``port`` to the peer at ``addr``."""

    port: int
    data: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class OpenRelay:
    """Start receiving on relay ``port`` (the allocator has reserved it)."""

    port: int


@dataclass(frozen=True, slots=True)
class CloseRelay:
    """Stop receiving on relay ``port``; the allocator has been given it back."""

    port: int


Action = ToClient | ToPeer | OpenRelay | CloseRelay


class RelayAllocator(Protocol):
    """Where relay ports come from (the adapter's allocator binds the socket too)."""

    def allocate(self, even: bool = False) -> int | None: ...

    def allocate_pair(self) -> int | None:
        """An even port P with P+1 reserved too (EVEN-PORT with the R bit)."""
        ...

    def release(self, port: int) -> None: ...


class Credentials(Protocol):
    """The long-term credential store (:class:`hybridvoice.media.mras.MrasVerifier`)."""

    def key(self, username: str, realm: str) -> bytes: ...

    def user_of(self, username: str) -> str: ...


class RelayPortRange:
    """Ports ``first..last``, handed out least recently used first."""

    __slots__ = ("_free", "_used", "first", "last")

    def __init__(self, first: int, last: int) -> None:
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"bad relay port range {first}-{last}")
        self.first = first
        self.last = last
        self._free: deque[int] = deque(range(first, last + 1))
        self._used: set[int] = set()

    @property
    def available(self) -> int:
        return len(self._free)

    def allocate(self, even: bool = False) -> int | None:
        for _ in range(len(self._free)):
            port = self._free.popleft()
            if not even or port % 2 == 0:
                self._used.add(port)
                return port
            self._free.append(port)
        return None

    def allocate_pair(self) -> int | None:
        for _ in range(len(self._free)):
            port = self._free.popleft()
            if port % 2 == 0 and port < self.last and port + 1 not in self._used:
                self._free.remove(port + 1)
                self._used.update((port, port + 1))
                return port
            self._free.append(port)
        return None

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.discard(port)
            self._free.append(port)


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """Which peer addresses the relay refuses (403), and why."""

    allow_loopback: bool = False
    allow_link_local: bool = False
    allow_own: bool = False
    own: frozenset[str] = field(default_factory=frozenset)
    #: own addresses allowed as peers on ``media_ports`` only (:attr:`TurnConfig.media_peers`)
    media: frozenset[str] = field(default_factory=frozenset)
    media_ports: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, config: TurnConfig) -> PeerPolicy:
        own = frozenset(str(ipaddress.ip_address(a)) for a in config.own_addresses)
        media = frozenset(str(ipaddress.ip_address(a)) for a in config.media_peers)
        return cls(
            config.allow_loopback_peers,
            config.allow_link_local_peers,
            config.allow_own_peers,
            own | {str(ipaddress.ip_address(config.external_ip))},
            media,
            config.media_peer_ports,
        )

    def port_refusal(self, peer: tuple[str, int]) -> str | None:
        """A media peer address (allowed by :meth:`refusal` for its IP) off its ports:
        ``peer_own``; None otherwise."""
        if peer[0] not in self.media or self.allow_own:
            return None
        first, last = self.media_ports
        return None if first <= peer[1] <= last else "peer_own"

    def refusal(self, host: str) -> str | None:
        """The counter name of the reason ``host`` is refused, or None when it is allowed."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return "peer_invalid"
        if ip.is_unspecified or ip.is_multicast:
            return "peer_invalid"
        if str(ip) in self.media:
            return None  # by port: port_refusal
        if ip.is_loopback:
            return None if self.allow_loopback else "peer_loopback"
        if ip.is_link_local:
            return None if self.allow_link_local else "peer_link_local"
        if str(ip) in self.own:
            return None if self.allow_own else "peer_own"
        return None


class NonceBook:
    """Stateless nonces: ``<expiry hex>.<tag>``, valid until the expiry (``now`` based)."""

    __slots__ = ("_key", "lifetime")

    def __init__(self, key: bytes, lifetime: int) -> None:
        self._key = key
        self.lifetime = lifetime

    def _tag(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:20]

    def issue(self, now: float) -> str:
        stamp = f"{int(now * 1000) + self.lifetime * 1000:x}"
        return f"{stamp}.{self._tag(stamp)}"

    def check(self, nonce: str, now: float) -> bool:
        """True for a nonce we made that has not expired; False otherwise (438)."""
        stamp, _, tag = nonce.partition(".")
        if not stamp or len(stamp) > 16 or not hmac.compare_digest(tag, self._tag(stamp)):
            return False
        try:
            return int(stamp, 16) > now * 1000
        except ValueError:
            return False


class Allocation:
    """One client's allocation (RFC 8656 §2.2)."""

    __slots__ = (
        "channels",
        "client",
        "expires",
        "key",
        "peer_channels",
        "permissions",
        "port",
        "relayed",
        "response",
        "tid",
        "user",
        "username",
    )

    def __init__(
        self, client: Addr, username: str, user: str, key: bytes, *, port: int, relayed: Addr
    ) -> None:
        self.client = client
        self.username = username
        self.user = user
        self.key = key
        self.port = port
        self.relayed = relayed
        self.expires = 0.0
        #: peer IP -> expiry
        self.permissions: dict[str, float] = {}
        #: channel number -> (peer, expiry), and the reverse
        self.channels: dict[int, tuple[Addr, float]] = {}
        self.peer_channels: dict[Addr, int] = {}
        #: the Allocate transaction and its success response (a retransmission gets it again)
        self.tid = b""
        self.response = b""

    def permitted(self, host: str, now: float) -> bool:
        expiry = self.permissions.get(host)
        return expiry is not None and expiry > now

    def channel_to(self, peer: Addr, now: float) -> int | None:
        number = self.peer_channels.get(peer)
        if number is None or self.channels[number][1] <= now:
            return None
        return number

    def channel_peer(self, number: int, now: float) -> Addr | None:
        bound = self.channels.get(number)
        if bound is None or bound[1] <= now:
            return None
        return bound[0]

    def prune(self, now: float) -> None:
        """Forget expired permissions and channel bindings."""
        for host in [h for h, expiry in self.permissions.items() if expiry <= now]:
            del self.permissions[host]
        for number in [n for n, (_, expiry) in self.channels.items() if expiry <= now]:
            peer = self.channels.pop(number)[0]
            self.peer_channels.pop(peer, None)

    def deadline(self) -> float:
        """The earliest moment something of this allocation expires."""
        times = [self.expires, *self.permissions.values()]
        times.extend(expiry for _, expiry in self.channels.values())
        return min(times)
