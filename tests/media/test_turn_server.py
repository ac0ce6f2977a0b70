"""The sans-IO TURN server (RFC 8656) on a fake clock, with MRAS credentials."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridvoice.media.mras import MrasCredentials, MrasIssuer, MrasVerifier
from hybridvoice.media.stun import (
    Attr,
    Method,
    StunClass,
    StunMessage,
    channel_data,
    decode_xor_address,
    encode,
    encode_xor_address,
    fingerprint_ok,
    integrity_ok,
    long_term_key,
    parse,
    parse_channel_data,
)
from hybridvoice.media.turn import TurnServer
from hybridvoice.media.turn_state import (
    CloseRelay,
    OpenRelay,
    RelayPortRange,
    ToClient,
    ToPeer,
    TurnConfig,
)

SECRET = b"site-secret"
REALM = "edge.example.com"
EPOCH = 1_800_000_000.0  # wall clock of the fake world
CLIENT = ("198.51.100.7", 40000)
PEER = ("203.0.113.9", 5004)
EXTERNAL = "192.0.2.10"


class World:
    """A server on a fake clock (monotonic ``now`` from 1000, wall clock from EPOCH)."""

    def __init__(self, **config: object) -> None:
        self.now = 1000.0
        self.ports = RelayPortRange(50000, 50009)
        settings = TurnConfig(realm=REALM, external_ip=EXTERNAL, **config)  # type: ignore[arg-type]
        verifier = MrasVerifier(SECRET, wall=lambda: EPOCH + self.now - 1000.0)
        self.server = TurnServer(settings, verifier, self.ports, random.Random(7))
        self.rng = random.Random(1)
        self.nonce = ""
        self.creds: dict[str, MrasCredentials] = {}

    def tid(self) -> bytes:
        return self.rng.randbytes(12)

    def request(
        self,
        method: int,
        attrs: tuple[tuple[int, bytes], ...] = (),
        *,
        user: str = "alice",
        client: tuple[str, int] = CLIENT,
        password: str | None = None,
        username: str | None = None,
        tid: bytes | None = None,
    ) -> tuple[StunMessage, list[object]]:
        """Send an authenticated request (learning the nonce first if needed)."""
        if user not in self.creds:  # a client keeps its credentials
            self.creds[user] = MrasIssuer(SECRET).issue(user, EPOCH + self.now - 1000.0)
        creds = self.creds[user]
        name = username or creds.username
        key = long_term_key(name, REALM, password or creds.password)
        if not self.nonce:
            first = StunMessage(method, StunClass.REQUEST, self.tid(), attrs)
            challenge = self.one(self.server.from_client(encode(first), client, self.now))
            assert challenge.error_code()[0] == 401  # type: ignore[index]
            self.nonce = challenge.text(Attr.NONCE) or ""
        tid = tid or self.tid()
        auth = (
            (Attr.USERNAME, name.encode()),
            (Attr.REALM, REALM.encode()),
            (Attr.NONCE, self.nonce.encode()),
        )
        msg = StunMessage(method, StunClass.REQUEST, tid, (*attrs, *auth))
        actions = self.server.from_client(encode(msg, key, fingerprint=True), client, self.now)
        reply = next(parse(a.data) for a in actions if isinstance(a, ToClient))
        assert reply.transaction_id == tid
        if reply.cls == StunClass.SUCCESS:
            assert integrity_ok(reply, key) and fingerprint_ok(reply)
        return reply, list(actions)

    def one(self, actions: list[object]) -> StunMessage:
        assert len(actions) == 1 and isinstance(actions[0], ToClient)
        return parse(actions[0].data)

    def allocate(self, **kw: object) -> StunMessage:
        attrs = ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),)
        return self.request(Method.ALLOCATE, attrs, **kw)[0]  # type: ignore[arg-type]

    def permit(self, peer: tuple[str, int] = PEER, **kw: object) -> StunMessage:
        tid = self.tid()
        attrs = ((Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)),)
        return self.request(Method.CREATE_PERMISSION, attrs, tid=tid, **kw)[0]  # type: ignore[arg-type]

    def bind(self, number: int, peer: tuple[str, int] = PEER) -> StunMessage:
        tid = self.tid()
        attrs = (
            (Attr.CHANNEL_NUMBER, number.to_bytes(2, "big") + b"\0\0"),
            (Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)),
        )
        return self.request(Method.CHANNEL_BIND, attrs, tid=tid)[0]

    def send(self, data: bytes, peer: tuple[str, int] = PEER) -> list[object]:
        tid = self.tid()
        attrs = ((Attr.XOR_PEER_ADDRESS, encode_xor_address(peer, tid)), (Attr.DATA, data))
        msg = StunMessage(Method.SEND, StunClass.INDICATION, tid, attrs)
        return list(self.server.from_client(encode(msg), CLIENT, self.now))


def code(reply: StunMessage) -> int | None:
    error = reply.error_code()
    return None if error is None else error[0]


def test_first_allocate_is_challenged_with_realm_and_nonce() -> None:
    w = World()
    msg = StunMessage(Method.ALLOCATE, StunClass.REQUEST, w.tid(), ())
    reply = w.one(w.server.from_client(encode(msg), CLIENT, w.now))
    assert (reply.cls, code(reply)) == (StunClass.ERROR, 401)
    assert reply.text(Attr.REALM) == REALM and reply.text(Attr.NONCE)
    assert not reply.has(Attr.MESSAGE_INTEGRITY)
    assert w.server.counters["challenged"] == 1


def test_allocate_advertises_the_external_address_and_opens_a_relay_port() -> None:
    w = World()
    reply, actions = w.request(Method.ALLOCATE, ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),))
    assert reply.cls == StunClass.SUCCESS
    assert reply.xor_address(Attr.XOR_RELAYED_ADDRESS) == (EXTERNAL, 50000)
    assert reply.xor_address(Attr.XOR_MAPPED_ADDRESS) == CLIENT
    assert reply.uint32(Attr.LIFETIME) == 600
    assert actions[0] == OpenRelay(50000)
    assert w.server.next_deadline() == 1600.0


def test_allocate_retransmission_gets_the_same_answer_and_a_new_one_is_a_mismatch() -> None:
    w = World()
    tid = w.tid()
    first, _ = w.request(Method.ALLOCATE, ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),), tid=tid)
    again, actions = w.request(
        Method.ALLOCATE, ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),), tid=tid
    )
    assert again == first and len(actions) == 1
    assert code(w.allocate()) == 437
    assert w.server.counters["allocation_mismatch"] == 1


def test_lifetime_is_clamped_between_default_and_max() -> None:
    w = World()
    attrs = ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"), (Attr.LIFETIME, (99999).to_bytes(4, "big")))
    reply, _ = w.request(Method.ALLOCATE, attrs)
    assert reply.uint32(Attr.LIFETIME) == 3600
    reply, _ = w.request(Method.REFRESH, ((Attr.LIFETIME, (10).to_bytes(4, "big")),))
    assert reply.uint32(Attr.LIFETIME) == 600


def test_transport_and_family_checks() -> None:
    w = World()
    assert code(w.request(Method.ALLOCATE, ((Attr.REQUESTED_TRANSPORT, b"\x06\0\0\0"),))[0]) == 442
    assert code(w.request(Method.ALLOCATE)[0]) == 400
    attrs = (
        (Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),
        (Attr.REQUESTED_ADDRESS_FAMILY, b"\2\0\0\0"),
    )
    assert code(w.request(Method.ALLOCATE, attrs)[0]) == 440
    attrs = ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"), (Attr.RESERVATION_TOKEN, b"12345678"))
    assert code(w.request(Method.ALLOCATE, attrs)[0]) == 508
    assert w.server.allocations == 0


def test_unknown_comprehension_required_attribute_gets_420() -> None:
    w = World()
    msg = StunMessage(Method.ALLOCATE, StunClass.REQUEST, w.tid(), ((0x7777, b"x"),))
    reply = w.one(w.server.from_client(encode(msg), CLIENT, w.now))
    assert code(reply) == 420
    assert reply.get(Attr.UNKNOWN_ATTRIBUTES) == b"\x77\x77"


def test_forged_expired_and_stale() -> None:
    w = World()
    assert code(w.allocate(password="guessed")) == 401
    assert w.server.counters["integrity_failed"] == 1
    expired = f"{int(EPOCH) - 1}:alice"
    assert code(w.allocate(username=expired, password="x")) == 401
    assert w.server.counters["credentials_expired"] == 1
    assert code(w.allocate(username="alice", password="x")) == 401
    assert w.server.counters["credentials_malformed"] == 1
    w.now += 3600  # the nonce expires
    reply = w.allocate()
    assert code(reply) == 438 and reply.text(Attr.NONCE) != w.nonce
    assert w.server.counters["stale_nonce"] == 1
    w.nonce = reply.text(Attr.NONCE) or ""
    assert w.allocate().cls == StunClass.SUCCESS
    w.nonce = w.nonce[:-1] + ("0" if w.nonce[-1] != "0" else "1")  # a nonce we did not make
    assert code(w.permit()) == 438


def test_credentials_expire_by_the_wall_clock() -> None:
    w = World()
    creds = MrasIssuer(SECRET, ttl=60).issue("alice", EPOCH)
    assert w.allocate(username=creds.username, password=creds.password).cls == StunClass.SUCCESS
    w.now += 61
    reply = w.request(Method.REFRESH, username=creds.username, password=creds.password)[0]
    assert code(reply) == 401


def test_refresh_zero_deletes_and_releases_the_port() -> None:
    w = World()
    w.allocate()
    reply, actions = w.request(Method.REFRESH, ((Attr.LIFETIME, b"\0\0\0\0"),))
    assert reply.cls == StunClass.SUCCESS and reply.uint32(Attr.LIFETIME) == 0
    assert CloseRelay(50000) in actions
    assert w.server.allocations == 0 and w.ports.available == 10
    assert code(w.request(Method.REFRESH)[0]) == 437


def test_allocation_expires_at_its_lifetime() -> None:
    w = World()
    w.allocate()
    w.now = 1599.999
    assert w.server.expire(w.now) == []
    w.now = 1600.0
    assert w.server.expire(w.now) == [CloseRelay(50000)]
    assert w.server.next_deadline() is None
    assert w.server.counters["expired_allocations"] == 1


def test_permission_send_and_data_indications() -> None:
    w = World()
    w.allocate()
    assert w.send(b"early") == []  # no permission yet
    assert w.server.counters["no_permission"] == 1
    assert w.server.from_peer(50000, b"in", PEER, w.now) == []
    assert w.permit().cls == StunClass.SUCCESS
    assert w.send(b"hello") == [ToPeer(50000, b"hello", PEER)]
    (out,) = w.server.from_peer(50000, b"back", PEER, w.now)
    assert isinstance(out, ToClient) and out.addr == CLIENT
    data = parse(out.data)
    assert (data.method, data.cls) == (Method.DATA, StunClass.INDICATION)
    assert data.get(Attr.DATA) == b"back"
    assert data.xor_address(Attr.XOR_PEER_ADDRESS) == PEER
    # a permission is per IP: another port of the same peer host passes
    assert w.send(b"x", (PEER[0], 9)) == [ToPeer(50000, b"x", (PEER[0], 9))]
    # ... and lasts 300 s
    assert w.server.next_deadline() == 1300.0
    w.now = 1300.0
    w.server.expire(w.now)
    assert w.send(b"late") == []


def test_channel_bind_and_channel_data_both_ways() -> None:
    w = World()
    w.allocate()
    assert w.bind(0x4001).cls == StunClass.SUCCESS
    frame = channel_data(0x4001, b"rtp")
    assert w.server.from_client(frame, CLIENT, w.now) == [ToPeer(50000, b"rtp", PEER)]
    (out,) = w.server.from_peer(50000, b"pong", PEER, w.now)
    assert isinstance(out, ToClient) and parse_channel_data(out.data) == (0x4001, b"pong")
    # rebinding the same pair refreshes; another peer on the channel, or another channel for
    # the peer, is refused
    assert w.bind(0x4001).cls == StunClass.SUCCESS
    assert code(w.bind(0x4001, ("203.0.113.10", 1))) == 400
    assert code(w.bind(0x4002)) == 400
    assert code(w.bind(0x3FFF)) == 400
    assert code(w.bind(0x8000)) == 400


def test_channel_range_of_rfc_8656_when_legacy_numbers_are_off() -> None:
    w = World(legacy_channels=False)
    w.allocate()
    assert code(w.bind(0x5000)) == 400
    assert w.bind(0x4FFF).cls == StunClass.SUCCESS
    legacy = World()
    legacy.allocate()
    assert legacy.bind(0x7FFF).cls == StunClass.SUCCESS
    assert w.server.from_client(channel_data(0x4005, b"x"), CLIENT, w.now) == []
    assert w.server.counters["no_channel"] == 1


def test_channel_expires_after_600_seconds_and_permission_after_300() -> None:
    w = World()
    w.allocate()
    attrs = ((Attr.LIFETIME, (3600).to_bytes(4, "big")),)
    w.request(Method.REFRESH, attrs)
    w.bind(0x4001)
    w.now += 300
    w.server.expire(w.now)
    # the channel still exists but the permission lapsed: nothing passes until refreshed
    assert w.server.from_client(channel_data(0x4001, b"a"), CLIENT, w.now) == []
    w.permit()
    assert w.server.from_client(channel_data(0x4001, b"a"), CLIENT, w.now) == [
        ToPeer(50000, b"a", PEER)
    ]
    w.now += 300
    w.server.expire(w.now)
    assert w.server.from_client(channel_data(0x4001, b"a"), CLIENT, w.now) == []
    w.permit()  # the channel is gone: peer data comes back as Data indications
    (out,) = w.server.from_peer(50000, b"b", PEER, w.now)
    assert isinstance(out, ToClient) and parse(out.data).method == Method.DATA


@pytest.mark.parametrize(
    ("peer", "counter"),
    [
        (("127.0.0.1", 9), "peer_loopback"),
        (("169.254.1.1", 9), "peer_link_local"),
        ((EXTERNAL, 9), "peer_own"),
        (("10.0.0.5", 9), "peer_own"),
        (("0.0.0.0", 9), "peer_invalid"),
        (("224.0.0.1", 9), "peer_invalid"),
    ],
)
def test_peer_policy_refuses_with_403(peer: tuple[str, int], counter: str) -> None:
    w = World(own_addresses=frozenset({"10.0.0.5"}))
    w.allocate()
    assert code(w.permit(peer)) == 403
    assert w.server.counters[counter] == 1


def test_loopback_peers_when_allowed() -> None:
    w = World(allow_loopback_peers=True)
    w.allocate()
    assert w.permit(("127.0.0.1", 9)).cls == StunClass.SUCCESS


def test_peer_family_mismatch_is_443() -> None:
    w = World()
    w.allocate()
    assert code(w.permit(("2001:db8::1", 9))) == 443


def test_per_user_quota_is_486() -> None:
    w = World(user_quota=2)
    for port in (1, 2):
        assert w.allocate(client=("198.51.100.7", port)).cls == StunClass.SUCCESS
    assert code(w.allocate(client=("198.51.100.7", 3))) == 486
    assert w.allocate(client=("198.51.100.7", 4), user="bob").cls == StunClass.SUCCESS
    assert w.server.counters["quota"] == 1


def test_ports_exhausted_is_508() -> None:
    w = World()
    for port in range(10):
        w.allocate(client=("198.51.100.7", port), user=f"u{port}")
    assert code(w.allocate(client=("198.51.100.8", 1))) == 508


def test_another_username_on_an_allocation_is_441() -> None:
    w = World()
    w.allocate()
    assert code(w.permit(user="mallory")) == 441


def test_binding_request_answered_without_credentials() -> None:
    w = World()
    msg = StunMessage(Method.BINDING, StunClass.REQUEST, w.tid())
    reply = w.one(w.server.from_client(encode(msg, fingerprint=True), CLIENT, w.now))
    assert reply.cls == StunClass.SUCCESS and fingerprint_ok(reply)
    value = reply.get(Attr.XOR_MAPPED_ADDRESS)
    assert value is not None and decode_xor_address(value, msg.transaction_id) == CLIENT


def test_garbage_is_counted_not_raised() -> None:
    w = World()
    for junk in (b"", b"\x00", b"\x40\x01\x00\xff", b"\x01" * 40, bytes(20)):
        assert w.server.from_client(junk, CLIENT, w.now) == []
    assert w.server.from_peer(50007, b"x", PEER, w.now) == []
    assert w.server.counters["malformed"] >= 3


def test_close_releases_everything() -> None:
    w = World()
    w.allocate()
    w.allocate(client=("198.51.100.7", 2))
    assert sorted(a.port for a in w.server.close()) == [50000, 50001]  # type: ignore[attr-defined]
    assert w.ports.available == 10


def _server_after_setup() -> World:
    w = World(allow_loopback_peers=True)
    w.allocate()
    w.bind(0x4001)
    w.permit()
    return w


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
def test_fuzz_random_datagrams_never_raise(data: bytes) -> None:
    w = _server_after_setup()
    for actions in (
        w.server.from_client(data, CLIENT, w.now),
        w.server.from_client(b"\x00\x03" + data, CLIENT, w.now),
        w.server.from_client(b"\x40\x01" + data, CLIENT, w.now),
        w.server.from_peer(50000, data, PEER, w.now),
    ):
        assert all(isinstance(a, (ToClient, ToPeer, OpenRelay, CloseRelay)) for a in actions)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(
        [Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND]
    ),
    attrs=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    Attr.XOR_PEER_ADDRESS,
                    Attr.CHANNEL_NUMBER,
                    Attr.LIFETIME,
                    Attr.REQUESTED_TRANSPORT,
                    Attr.REQUESTED_ADDRESS_FAMILY,
                    Attr.EVEN_PORT,
                    Attr.DATA,
                    Attr.USERNAME,
                ]
            ),
            st.binary(max_size=24),
        ),
        max_size=5,
    ),
)
def test_fuzz_authenticated_requests_never_raise(
    method: int, attrs: list[tuple[int, bytes]]
) -> None:
    """Well-authenticated requests with arbitrary attribute values get an answer, or are
    dropped and counted as malformed (a fixed-size attribute of the wrong size); never an
    exception."""
    w = _server_after_setup()
    creds = w.creds["alice"]
    key = long_term_key(creds.username, REALM, creds.password)
    auth = (
        (Attr.USERNAME, creds.username.encode()),
        (Attr.REALM, REALM.encode()),
        (Attr.NONCE, w.nonce.encode()),
    )
    msg = StunMessage(method, StunClass.REQUEST, w.tid(), (*attrs, *auth))
    before = w.server.counters["malformed"]
    actions = w.server.from_client(encode(msg, key), CLIENT, w.now)
    replies = [parse(a.data) for a in actions if isinstance(a, ToClient)]
    if not replies:
        assert w.server.counters["malformed"] == before + 1
    else:
        assert replies[-1].transaction_id == msg.transaction_id


def test_even_port_reservation_gives_an_rtp_rtcp_pair() -> None:
    w = World()
    w.ports.allocate()  # 50000 taken: the pair must start at the next even port
    transport = (Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0")
    rtp, _ = w.request(Method.ALLOCATE, (transport, (Attr.EVEN_PORT, b"\x80")))
    assert rtp.xor_address(Attr.XOR_RELAYED_ADDRESS) == (EXTERNAL, 50002)
    token = rtp.get(Attr.RESERVATION_TOKEN)
    assert token is not None and len(token) == 8
    assert w.server.next_deadline() == 1030.0  # the reservation waits 30 s
    other = ("198.51.100.7", 40001)
    claim = (transport, (Attr.RESERVATION_TOKEN, token))
    rtcp, actions = w.request(Method.ALLOCATE, claim, client=other)
    assert rtcp.xor_address(Attr.XOR_RELAYED_ADDRESS) == (EXTERNAL, 50003)
    assert OpenRelay(50003) in actions
    again = w.request(Method.ALLOCATE, claim, client=("198.51.100.7", 3))[0]
    assert code(again) == 508
    both = (transport, (Attr.RESERVATION_TOKEN, token), (Attr.EVEN_PORT, b"\0"))
    assert code(w.request(Method.ALLOCATE, both, client=("198.51.100.7", 4))[0]) == 400


def test_unclaimed_reservation_is_released_after_30_seconds() -> None:
    w = World()
    transport = (Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0")
    reply, _ = w.request(Method.ALLOCATE, (transport, (Attr.EVEN_PORT, b"\x80")))
    token = reply.get(Attr.RESERVATION_TOKEN)
    assert token is not None and w.ports.available == 8
    w.now += 30
    assert w.server.expire(w.now) == []
    assert w.ports.available == 9 and w.server.counters["expired_reservations"] == 1
    late = (transport, (Attr.RESERVATION_TOKEN, token))
    assert code(w.request(Method.ALLOCATE, late, client=("198.51.100.7", 2))[0]) == 508


def test_even_port_without_reservation() -> None:
    w = World()
    w.ports.allocate()
    transport = (Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0")
    reply, _ = w.request(Method.ALLOCATE, (transport, (Attr.EVEN_PORT, b"\0")))
    assert reply.xor_address(Attr.XOR_RELAYED_ADDRESS) == (EXTERNAL, 50002)
    assert not reply.has(Attr.RESERVATION_TOKEN)


def test_expired_allocation_not_yet_swept_is_replaced() -> None:
    w = World()
    w.allocate()
    w.now += 600  # expired, expire() not called yet
    reply, actions = w.request(Method.ALLOCATE, ((Attr.REQUESTED_TRANSPORT, b"\x11\0\0\0"),))
    assert reply.cls == StunClass.SUCCESS
    assert actions[0] == CloseRelay(50000) and OpenRelay(50001) in actions


def test_peer_datagram_too_large_for_a_data_indication_is_dropped() -> None:
    w = World()
    w.allocate()
    w.permit()
    assert w.server.from_peer(50000, bytes(65500), PEER, w.now) == []
    assert w.server.counters["oversize"] == 1
    (out,) = w.server.from_peer(50000, bytes(1400), PEER, w.now)
    assert isinstance(out, ToClient)
