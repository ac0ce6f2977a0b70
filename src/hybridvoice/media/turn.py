"""A sans-IO TURN server (RFC 8656) over UDP with long-term credentials (RFC 8489 §9.2).

Inputs: a datagram from a client (:meth:`TurnServer.from_client`), a datagram that reached a
relay port from a peer (:meth:`TurnServer.from_peer`), and the time (:meth:`TurnServer.expire`
at :meth:`TurnServer.next_deadline`). Outputs: actions (:mod:`.turn_state`): send from the
listening socket, send from a relay socket, open or close a relay port.

- Binding (RFC 8489 §7.3): answered without authentication, with XOR-MAPPED-ADDRESS.
- Allocate (§7.2), Refresh (§7.3-§7.4: lifetime 0 deletes), CreatePermission (§9), ChannelBind
  (§12.1) need long-term credentials: a request without MESSAGE-INTEGRITY gets 401 with REALM
  and NONCE; a nonce we did not make or that has expired gets 438; an expired, malformed or
  unknown username or a wrong MESSAGE-INTEGRITY gets 401 (RFC 8489 §9.2.4). Responses carry
  MESSAGE-INTEGRITY with the same key, and FINGERPRINT when the request did.
- Send indications (§10.2) and ChannelData (§12.4) go to permitted peers from the relay port;
  peer datagrams go back as ChannelData when a channel is bound, else as Data indications
  (§10.3); from peers without a permission they are dropped (§10.3, §12.5).
- Channel numbers 0x4000-0x4FFF (RFC 8656 §12), or 0x4000-0x7FFF as RFC 5766 allowed when
  ``legacy_channels`` is on (the default: coturn's clients use that range).
- Lifetimes: allocation max(default, min(requested, max)) seconds; permissions 300 s;
  channels 600 s. Expiry is by ``now`` only; :meth:`TurnServer.next_deadline` says when.
- Security (§21): peer policy (403), per-user allocation quota (486), one allocation per
  client address (437), a username fixed per allocation (441), a request rate limit per
  source IP (:mod:`.turn_limits`, dropped unanswered), counters for every refusal.
- EVEN-PORT (§7.2): an even relay port; with the R bit the next port is kept 30 s for the
  Allocate that presents the RESERVATION-TOKEN returned (an RTP/RTCP pair of allocations).

The relay address advertised is the configured external address. Clients reach the server
over UDP or TCP (RFC 8656 §3.1; the adapter frames the stream, and :meth:`TurnServer.client_gone`
ends an allocation with its connection); relayed transport is UDP only: TCP allocations
(RFC 6062) and TLS listeners are not here yet. ChannelData has a fast path both ways
(:meth:`TurnServer.channel_route`, :meth:`TurnServer.peer_route`): the adapter parses the
4-byte header and asks only where the payload goes.
"""

from __future__ import annotations

import random
import types
from collections import Counter
from collections.abc import Callable
from typing import Final

from .mras import CredentialsRejectedError
from .stun import (
    ATTRIBUTE_NAMES,
    CHANNEL_MAX,
    CHANNEL_MIN,
    LEGACY_CHANNEL_MAX,
    Attr,
    Method,
    StunClass,
    StunError,
    StunMessage,
    channel_data,
    decode_xor_address,
    encode,
    encode_error_code,
    encode_unknown_attributes,
    encode_xor_address,
    integrity_ok,
    is_channel_data,
    parse,
    parse_channel_data,
)
from .turn_limits import SourceRateLimit
from .turn_state import (
    Action,
    Addr,
    Allocation,
    CloseRelay,
    Credentials,
    NonceBook,
    OpenRelay,
    PeerPolicy,
    RelayAllocator,
    ToClient,
    ToPeer,
    TurnConfig,
)

__all__ = ["REASONS", "TurnServer"]

UDP: Final = 17
#: The most a peer datagram may carry and still fit a Data indication (a 16-bit length).
MAX_DATA: Final = 0xFFFF - 64

REASONS: Final = types.MappingProxyType(
    {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        420: "Unknown Attribute",
        437: "Allocation Mismatch",
        438: "Stale Nonce",
        440: "Address Family not Supported",
        441: "Wrong Credentials",
        442: "Unsupported Transport Protocol",
        443: "Peer Address Family Mismatch",
        486: "Allocation Quota Reached",
        508: "Insufficient Capacity",
    }
)

#: Requests that need credentials -> their handler (the one table of the server).
_AUTHENTICATED: Final = types.MappingProxyType(
    {
        Method.ALLOCATE: "_allocate",
        Method.REFRESH: "_refresh",
        Method.CREATE_PERMISSION: "_create_permission",
        Method.CHANNEL_BIND: "_channel_bind",
    }
)
_KNOWN_ATTRIBUTES: Final = frozenset(value for value, _ in ATTRIBUTE_NAMES)


class _RefusedError(Exception):
    """A request refused with ``code``; ``counter`` names the refusal (internal)."""

    def __init__(self, code: int, counter: str) -> None:
        super().__init__(code, counter)
        self.code = code
        self.counter = counter


def _lifetime(config: TurnConfig, msg: StunMessage) -> int:
    """An allocation's lifetime: max(default, min(requested, max)) seconds (RFC 8656 §7.2)."""
    requested = msg.uint32(Attr.LIFETIME)
    if requested is None:
        return config.default_lifetime
    return max(config.default_lifetime, min(requested, config.max_lifetime))


def _family(host: str) -> int:
    return 2 if ":" in host else 1


class TurnServer:
    """The allocations of one relay and what to do with each datagram."""

    __slots__ = (
        "_by_client",
        "_by_port",
        "_counters",
        "_from_peer",
        "_from_peer_bytes",
        "_limit",
        "_nonces",
        "_per_user",
        "_policy",
        "_random",
        "_reservations",
        "_to_peer",
        "_to_peer_bytes",
        "allocator",
        "config",
        "credentials",
    )

    def __init__(
        self,
        config: TurnConfig,
        credentials: Credentials,
        allocator: RelayAllocator,
        rng: random.Random,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.allocator = allocator
        self._random: Callable[[int], bytes] = rng.randbytes
        self._nonces = NonceBook(rng.randbytes(16), config.nonce_lifetime)
        self._policy = PeerPolicy.of(config)
        self._limit = (
            SourceRateLimit(config.requests_per_second, config.request_burst)
            if config.requests_per_second > 0
            else None
        )
        self._by_client: dict[Addr, Allocation] = {}
        self._by_port: dict[int, Allocation] = {}
        self._per_user: Counter[str] = Counter()
        #: RESERVATION-TOKEN -> (reserved port, expiry)
        self._reservations: dict[bytes, tuple[int, float]] = {}
        self._counters: Counter[str] = Counter()
        #: the data path's counts, plain integers (folded into :attr:`counters`)
        self._to_peer = self._to_peer_bytes = self._from_peer = self._from_peer_bytes = 0

    # -- queries -------------------------------------------------------------------------
    @property
    def counters(self) -> Counter[str]:
        """Refusals and drops by kind, relayed packets and bytes (a snapshot)."""
        counts = Counter(self._counters)
        for name, value in (
            ("to_peer", self._to_peer),
            ("to_peer_bytes", self._to_peer_bytes),
            ("from_peer", self._from_peer),
            ("from_peer_bytes", self._from_peer_bytes),
        ):
            if value:
                counts[name] = value
        return counts

    @property
    def allocations(self) -> int:
        return len(self._by_client)

    def allocation(self, client: Addr) -> Allocation | None:
        return self._by_client.get(client)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has something to do (None: nothing allocated)."""
        times = [a.deadline() for a in self._by_client.values()]
        times.extend(expiry for _, expiry in self._reservations.values())
        return min(times, default=None)

    # -- inputs --------------------------------------------------------------------------
    def from_client(self, data: bytes, client: Addr, now: float) -> list[Action]:
        """A datagram from ``client`` to the listening port."""
        if is_channel_data(data):
            return self._channel_data(data, client, now)
        try:
            msg = parse(data)
        except StunError:
            self._counters["malformed"] += 1
            return []
        if msg.cls == StunClass.INDICATION:
            return self._send_indication(msg, client, now)
        if msg.cls != StunClass.REQUEST:
            self._counters["unexpected"] += 1
            return []
        if self._limit is not None and not self._limit.allow(client[0], now):
            self._counters["rate_limited"] += 1  # dropped: the client retransmits later
            return []
        if msg.method == Method.BINDING:
            mapped = encode_xor_address(client, msg.transaction_id)
            return [self._answer(msg, client, ((Attr.XOR_MAPPED_ADDRESS, mapped),), None)]
        handler = _AUTHENTICATED.get(msg.method)
        if handler is None:
            return [self._error(msg, client, 400, "bad_method", None)]
        unknown = tuple(k for k, _ in msg.attributes if k < 0x8000 and k not in _KNOWN_ATTRIBUTES)
        if unknown:
            listed = ((Attr.UNKNOWN_ATTRIBUTES, encode_unknown_attributes(unknown)),)
            return [self._error(msg, client, 420, "unknown_attribute", None, attrs=listed)]
        try:
            username, key = self._authenticate(msg, client, now)
        except _RefusedError as refused:
            attrs: tuple[tuple[int, bytes], ...] = (
                (Attr.REALM, self.config.realm.encode()),
                (Attr.NONCE, self._nonces.issue(now).encode()),
            )
            return [self._error(msg, client, refused.code, refused.counter, None, attrs=attrs)]
        try:
            actions: list[Action] = getattr(self, handler)(msg, client, username, key, now)
        except _RefusedError as refused:
            return [self._error(msg, client, refused.code, refused.counter, key)]
        except StunError:
            return [self._error(msg, client, 400, "bad_request", key)]
        return actions

    def from_peer(self, port: int, data: bytes, peer: Addr, now: float) -> list[Action]:
        """A datagram from ``peer`` that reached relay ``port``."""
        alloc = self._by_port.get(port)
        if alloc is None or alloc.expires <= now:
            self._counters["no_allocation"] += 1
            return []
        if not alloc.permitted(peer[0], now):
            self._counters["no_permission"] += 1
            return []
        if len(data) > MAX_DATA:
            self._counters["oversize"] += 1
            return []
        self._from_peer += 1
        self._from_peer_bytes += len(data)
        number = alloc.channel_to(peer, now)
        if number is not None:
            return [ToClient(channel_data(number, data), alloc.client)]
        tid = self._random(12)
        indication = StunMessage(
            Method.DATA,
            StunClass.INDICATION,
            tid,
            ((Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)), (Attr.DATA, data)),
        )
        return [ToClient(encode(indication), alloc.client)]

    # -- the data fast path (ChannelData both ways, RFC 8656 §12.4-§12.5) ---------------------
    def channel_route(
        self, client: Addr, number: int, size: int, now: float
    ) -> tuple[int, Addr] | None:
        """Where ChannelData of ``size`` payload bytes on channel ``number`` from ``client``
        goes: ``(relay port, peer)``, counted; None when :meth:`from_client` must decide
        (no allocation, channel or permission: it drops and counts). The adapter parses the
        4-byte header itself and sends the payload without building a message."""
        alloc = self._by_client.get(client)
        if alloc is None:
            return None
        bound = alloc.channels.get(number)
        if bound is None or bound[1] <= now:
            return None
        peer = bound[0]
        expiry = alloc.permissions.get(peer[0])
        if expiry is None or expiry <= now:
            return None
        self._to_peer += 1
        self._to_peer_bytes += size
        return alloc.port, peer

    def peer_route(self, port: int, peer: Addr, size: int, now: float) -> tuple[int, Addr] | None:
        """How ``size`` bytes from ``peer`` on relay ``port`` go back: ``(channel number,
        client)`` as ChannelData, counted; None when :meth:`from_peer` must decide (no live
        allocation, permission or channel: a Data indication, or a drop)."""
        alloc = self._by_port.get(port)
        if alloc is None or alloc.expires <= now or size > MAX_DATA:
            return None
        number = alloc.peer_channels.get(peer)
        if number is None or alloc.channels[number][1] <= now:
            return None
        expiry = alloc.permissions.get(peer[0])
        if expiry is None or expiry <= now:
            return None
        self._from_peer += 1
        self._from_peer_bytes += size
        return number, alloc.client

    def client_gone(self, client: Addr) -> list[Action]:
        """The client's connection closed (TCP, RFC 8656 §3.1): its allocation goes too."""
        alloc = self._by_client.get(client)
        if alloc is None:
            return []
        self._counters["closed_allocations"] += 1
        return [self._delete(alloc)]

    def expire(self, now: float) -> list[Action]:
        """Delete expired allocations, permissions and channel bindings."""
        actions: list[Action] = []
        for alloc in list(self._by_client.values()):
            if alloc.expires <= now:
                self._counters["expired_allocations"] += 1
                actions.append(self._delete(alloc))
            else:
                alloc.prune(now)
        for token, (port, expiry) in list(self._reservations.items()):
            if expiry <= now:
                del self._reservations[token]
                self.allocator.release(port)
                self._counters["expired_reservations"] += 1
        return actions

    def close(self) -> list[Action]:
        """Delete every allocation and reservation (shutdown)."""
        for port, _ in self._reservations.values():
            self.allocator.release(port)
        self._reservations.clear()
        return [self._delete(alloc) for alloc in list(self._by_client.values())]

    # -- authentication ------------------------------------------------------------------
    def _authenticate(self, msg: StunMessage, client: Addr, now: float) -> tuple[str, bytes]:
        if not (msg.has(Attr.MESSAGE_INTEGRITY) or msg.has(Attr.MESSAGE_INTEGRITY_SHA256)):
            raise _RefusedError(401, "challenged")
        try:
            username = msg.text(Attr.USERNAME)
            realm = msg.text(Attr.REALM)
            nonce = msg.text(Attr.NONCE)
        except StunError:
            raise _RefusedError(400, "bad_request") from None
        if username is None or realm is None or nonce is None:
            raise _RefusedError(400, "bad_request")
        if not self._nonces.check(nonce, now):
            raise _RefusedError(438, "stale_nonce")
        if realm != self.config.realm:
            raise _RefusedError(401, "wrong_realm")
        try:
            key = self.credentials.key(username, realm)
        except CredentialsRejectedError as rejected:
            raise _RefusedError(401, f"credentials_{rejected.reason}") from None
        if not integrity_ok(msg, key):
            raise _RefusedError(401, "integrity_failed")
        alloc = self._by_client.get(client)
        if alloc is not None and alloc.expires > now and alloc.username != username:
            raise _RefusedError(441, "wrong_credentials")
        return username, key

    # -- requests ------------------------------------------------------------------------
    def _allocate(
        self, msg: StunMessage, client: Addr, username: str, key: bytes, now: float
    ) -> list[Action]:
        actions: list[Action] = []
        existing = self._by_client.get(client)
        if existing is not None and existing.expires <= now:
            actions.append(self._delete(existing))  # expired, not yet swept
        elif existing is not None:
            if existing.tid == msg.transaction_id:
                return [ToClient(existing.response, client)]
            raise _RefusedError(437, "allocation_mismatch")
        transport = msg.get(Attr.REQUESTED_TRANSPORT)
        if transport is None:
            raise _RefusedError(400, "bad_request")
        if transport[0] != UDP:
            raise _RefusedError(442, "unsupported_transport")
        family = msg.get(Attr.REQUESTED_ADDRESS_FAMILY)
        token = msg.get(Attr.RESERVATION_TOKEN)
        even = msg.get(Attr.EVEN_PORT)
        if token is not None and (family is not None or even is not None):
            raise _RefusedError(400, "bad_request")
        if family is not None and family[0] != self.config.family:
            raise _RefusedError(440, "address_family")
        user = self.credentials.user_of(username)
        if self._per_user[user] >= self.config.user_quota:
            raise _RefusedError(486, "quota")
        port, new_token = self._relay_port(token, even, now)
        relayed = (self.config.external_ip, port)
        alloc = Allocation(client, username, user, key, port=port, relayed=relayed)
        alloc.expires = now + _lifetime(self.config, msg)
        self._by_client[client] = alloc
        self._by_port[port] = alloc
        self._per_user[user] += 1
        self._counters["allocations"] += 1
        tid = msg.transaction_id
        attrs: tuple[tuple[int, bytes], ...] = (
            (Attr.XOR_RELAYED_ADDRESS, encode_xor_address(relayed, tid)),
            (Attr.LIFETIME, int(alloc.expires - now).to_bytes(4, "big")),
            (Attr.XOR_MAPPED_ADDRESS, encode_xor_address(client, tid)),
        )
        if new_token is not None:
            attrs = (*attrs, (Attr.RESERVATION_TOKEN, new_token))
        answer = self._answer(msg, client, attrs, key)
        alloc.tid = tid
        alloc.response = answer.data
        actions += [OpenRelay(port), answer]
        return actions

    def _relay_port(
        self, token: bytes | None, even: bytes | None, now: float
    ) -> tuple[int, bytes | None]:
        """The relay port of a new allocation, and the RESERVATION-TOKEN of the next port when
        EVEN-PORT asked to reserve it (RFC 8656 §7.2 step 5-7)."""
        if token is not None:
            reserved = self._reservations.pop(token, None)
            if reserved is None:
                raise _RefusedError(508, "reservation_unknown")
            if reserved[1] <= now:
                self.allocator.release(reserved[0])
                raise _RefusedError(508, "reservation_unknown")
            return reserved[0], None
        if even is not None and even[0] & 0x80:
            port = self.allocator.allocate_pair()
            if port is None:
                raise _RefusedError(508, "insufficient_capacity")
            new_token = self._random(8)
            self._reservations[new_token] = (port + 1, now + self.config.reservation_lifetime)
            return port, new_token
        port = self.allocator.allocate(even is not None)
        if port is None:
            raise _RefusedError(508, "insufficient_capacity")
        return port, None

    def _refresh(
        self, msg: StunMessage, client: Addr, username: str, key: bytes, now: float
    ) -> list[Action]:
        alloc = self._live(client, now)
        family = msg.get(Attr.REQUESTED_ADDRESS_FAMILY)
        if family is not None and family[0] != self.config.family:
            raise _RefusedError(443, "peer_family")
        requested = msg.uint32(Attr.LIFETIME)
        actions: list[Action] = []
        if requested == 0:
            actions.append(self._delete(alloc))
            lifetime = 0
        else:
            lifetime = _lifetime(self.config, msg)
            alloc.expires = now + lifetime
        attrs = ((Attr.LIFETIME, lifetime.to_bytes(4, "big")),)
        actions.append(self._answer(msg, client, attrs, key))
        return actions

    def _create_permission(
        self, msg: StunMessage, client: Addr, username: str, key: bytes, now: float
    ) -> list[Action]:
        alloc = self._live(client, now)
        peers = [
            self._peer(value, msg.transaction_id) for value in msg.get_all(Attr.XOR_PEER_ADDRESS)
        ]
        if not peers:
            raise _RefusedError(400, "bad_request")
        for host, _ in peers:
            alloc.permissions[host] = now + self.config.permission_lifetime
        self._counters["permissions"] += len(peers)
        return [self._answer(msg, client, (), key)]

    def _channel_bind(
        self, msg: StunMessage, client: Addr, username: str, key: bytes, now: float
    ) -> list[Action]:
        alloc = self._live(client, now)
        number_value = msg.get(Attr.CHANNEL_NUMBER)
        peer_value = msg.get(Attr.XOR_PEER_ADDRESS)
        if number_value is None or peer_value is None:
            raise _RefusedError(400, "bad_request")
        number = int.from_bytes(number_value[:2], "big")
        top = LEGACY_CHANNEL_MAX if self.config.legacy_channels else CHANNEL_MAX
        if not CHANNEL_MIN <= number <= top:
            raise _RefusedError(400, "bad_channel")
        peer = self._peer(peer_value, msg.transaction_id)
        off_ports = self._policy.port_refusal(peer)
        if off_ports is not None:
            raise _RefusedError(403, off_ports)
        bound = alloc.channels.get(number)
        if bound is not None and bound[0] != peer:
            raise _RefusedError(400, "channel_in_use")
        other = alloc.peer_channels.get(peer)
        if other is not None and other != number:
            raise _RefusedError(400, "channel_in_use")
        alloc.channels[number] = (peer, now + self.config.channel_lifetime)
        alloc.peer_channels[peer] = number
        alloc.permissions[peer[0]] = now + self.config.permission_lifetime
        self._counters["channel_binds"] += 1
        return [self._answer(msg, client, (), key)]

    # -- data ----------------------------------------------------------------------------
    def _send_indication(self, msg: StunMessage, client: Addr, now: float) -> list[Action]:
        alloc = self._by_client.get(client)
        if msg.method != Method.SEND or alloc is None or alloc.expires <= now:
            self._counters["dropped_indication"] += 1
            return []
        peer_value = msg.get(Attr.XOR_PEER_ADDRESS)
        data = msg.get(Attr.DATA)
        try:
            peer = (
                None if peer_value is None else decode_xor_address(peer_value, msg.transaction_id)
            )
        except StunError:
            peer = None
        if peer is None or data is None:
            self._counters["dropped_indication"] += 1
            return []
        if not alloc.permitted(peer[0], now):
            self._counters["no_permission"] += 1
            return []
        off_ports = self._policy.port_refusal(peer)
        if off_ports is not None:
            self._counters[off_ports] += 1
            return []
        self._to_peer += 1
        self._to_peer_bytes += len(data)
        return [ToPeer(alloc.port, data, peer)]

    def _channel_data(self, data: bytes, client: Addr, now: float) -> list[Action]:
        alloc = self._by_client.get(client)
        try:
            number, payload = parse_channel_data(data)
        except StunError:
            self._counters["malformed"] += 1
            return []
        peer = None if alloc is None else alloc.channel_peer(number, now)
        if alloc is None or peer is None or not alloc.permitted(peer[0], now):
            self._counters["no_channel"] += 1
            return []
        self._to_peer += 1
        self._to_peer_bytes += len(payload)
        return [ToPeer(alloc.port, payload, peer)]

    # -- helpers -------------------------------------------------------------------------
    def _live(self, client: Addr, now: float) -> Allocation:
        alloc = self._by_client.get(client)
        if alloc is None or alloc.expires <= now:
            raise _RefusedError(437, "allocation_mismatch")
        return alloc

    def _peer(self, value: bytes, tid: bytes) -> Addr:
        """A peer address of a request, refused (403/443) by the policy."""
        peer = decode_xor_address(value, tid)
        if _family(peer[0]) != self.config.family:
            raise _RefusedError(443, "peer_family")
        reason = self._policy.refusal(peer[0])
        if reason is not None:
            raise _RefusedError(403, reason)
        return peer

    def _delete(self, alloc: Allocation) -> CloseRelay:
        del self._by_client[alloc.client]
        del self._by_port[alloc.port]
        self._per_user[alloc.user] -= 1
        if self._per_user[alloc.user] <= 0:
            del self._per_user[alloc.user]
        self.allocator.release(alloc.port)
        return CloseRelay(alloc.port)

    def _answer(
        self,
        msg: StunMessage,
        client: Addr,
        attrs: tuple[tuple[int, bytes], ...],
        key: bytes | None,
        cls: int = StunClass.SUCCESS,
    ) -> ToClient:
        attrs = (*attrs, (Attr.SOFTWARE, self.config.software.encode()))
        reply = StunMessage(msg.method, cls, msg.transaction_id, attrs)
        sha256 = key is not None and msg.has(Attr.MESSAGE_INTEGRITY_SHA256)
        data = encode(reply, key, sha256=sha256, fingerprint=msg.has(Attr.FINGERPRINT))
        return ToClient(data, client)

    def _error(
        self,
        msg: StunMessage,
        client: Addr,
        code: int,
        counter: str,
        key: bytes | None,
        *,
        attrs: tuple[tuple[int, bytes], ...] = (),
    ) -> ToClient:
        self._counters[counter] += 1
        error = ((Attr.ERROR_CODE, encode_error_code(code, REASONS.get(code, "Error"))),)
        return self._answer(msg, client, (*error, *attrs), key, StunClass.ERROR)
