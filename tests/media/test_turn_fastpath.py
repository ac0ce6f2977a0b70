"""The TURN server's ChannelData fast path (RFC 8656 §12.4-§12.5) and connection close
(§3.1) on a fake clock: the fast path agrees with the general entry points, counts the same,
and leaves every refusal to them."""

from __future__ import annotations

from test_turn_server import CLIENT, PEER, World

from hybridvoice.media.stun import channel_data
from hybridvoice.media.turn_state import CloseRelay, ToPeer


def test_channel_route_matches_the_general_path_and_counts() -> None:
    w = World()
    w.allocate()
    w.bind(0x4001)
    assert w.server.channel_route(CLIENT, 0x4001, 3, w.now) == (50000, PEER)
    assert w.server.from_client(channel_data(0x4001, b"rtp"), CLIENT, w.now) == [
        ToPeer(50000, b"rtp", PEER)
    ]
    counts = w.server.counters
    assert (counts["to_peer"], counts["to_peer_bytes"]) == (2, 6)


def test_channel_route_leaves_unknown_clients_channels_and_expiry_to_the_core() -> None:
    w = World()
    assert w.server.channel_route(CLIENT, 0x4001, 3, w.now) is None  # no allocation
    w.allocate()
    assert w.server.channel_route(CLIENT, 0x4001, 3, w.now) is None  # no channel
    w.bind(0x4001)
    assert w.server.channel_route(("198.51.100.8", 1), 0x4001, 3, w.now) is None
    w.now += 300.0  # the permission the binding made has expired, the channel has not
    assert w.server.channel_route(CLIENT, 0x4001, 3, w.now) is None
    w.now += 300.0  # and now the channel too
    assert w.server.channel_route(CLIENT, 0x4001, 3, w.now) is None
    assert w.server.counters["to_peer"] == 0


def test_peer_route_gives_channel_and_client_or_leaves_it_to_from_peer() -> None:
    w = World()
    assert w.server.peer_route(50000, PEER, 4, w.now) is None  # no allocation
    w.allocate()
    assert w.server.peer_route(50000, PEER, 4, w.now) is None  # no channel: an indication
    w.bind(0x4002)
    assert w.server.peer_route(50000, PEER, 4, w.now) == (0x4002, CLIENT)
    assert w.server.peer_route(50000, (PEER[0], 1), 4, w.now) is None  # another port
    assert w.server.peer_route(50000, PEER, 0x10000, w.now) is None  # too big: from_peer
    assert (w.server.counters["from_peer"], w.server.counters["from_peer_bytes"]) == (1, 4)
    w.now += 300.0
    assert w.server.peer_route(50000, PEER, 4, w.now) is None  # permission expired


def test_client_gone_deletes_its_allocation_and_gives_the_port_back() -> None:
    w = World()
    w.allocate()
    assert w.server.client_gone(("198.51.100.8", 1)) == []
    assert w.server.client_gone(CLIENT) == [CloseRelay(50000)]
    assert w.server.allocations == 0 and w.server.counters["closed_allocations"] == 1
    assert w.ports.available == 10
