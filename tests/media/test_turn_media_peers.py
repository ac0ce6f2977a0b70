"""A TURN client may relay to the edge's media anchoring ports on the appliance's own
address (an ICE relay candidate toward the anchored address), and to no other port there
(RFC 8656 §21.3 otherwise refuses the relay's own addresses)."""

from __future__ import annotations

from test_turn_server import EXTERNAL, World, code

from hybridvoice.media.stun import StunClass


def _world() -> World:
    return World(media_peers=frozenset({EXTERNAL}), media_peer_ports=(50000, 50099))


def test_permission_for_the_anchoring_address_and_channels_on_its_ports_only() -> None:
    w = _world()
    w.allocate()
    assert w.permit((EXTERNAL, 50010)).cls == StunClass.SUCCESS  # permissions are per IP
    assert w.bind(0x4000, (EXTERNAL, 50010)).cls == StunClass.SUCCESS
    assert code(w.bind(0x4001, (EXTERNAL, 5060))) == 403  # SIP, MRAS, anything else: no
    assert w.server.counters["peer_own"] == 1


def test_send_indications_to_other_ports_are_dropped_and_counted() -> None:
    w = _world()
    w.allocate()
    w.permit((EXTERNAL, 50010))
    sent = w.send(b"rtp", (EXTERNAL, 50010))
    assert len(sent) == 1
    assert w.send(b"probe", (EXTERNAL, 22)) == []
    assert w.server.counters["peer_own"] == 1


def test_without_media_peers_the_own_address_stays_refused() -> None:
    w = World()
    w.allocate()
    assert code(w.permit((EXTERNAL, 50010))) == 403
