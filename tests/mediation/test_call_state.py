"""The mediation call's state machine on a fake clock: no sockets, no event loop.

The B2BUA is built over fake UAs whose calls record what the call did to them, and an
adapter that records the decisions (timers, relay ports) instead of carrying them out; the
test drives the machine with the legs' events, timer firings and the relay's answer, each
at an explicit ``now`` (RFC 3261 §13, §9, §14.1; RFC 3264 §8; RFC 3515; routing's fast
failover)."""

from __future__ import annotations

import ipaddress
from typing import Any, cast

import pytest
from call_fakes import (
    CALLEE,
    T0,
    Leg,
    World,
    call_out,
    invite,
    relay_call,
    sdp,
    world,
)

from hybridvoice.mediation.b2bua import Bridge
from hybridvoice.mediation.bypass import BypassPolicy, MediaMode
from hybridvoice.mediation.call_events import (
    FAILOVER,
    REOFFER,
    SOURCES,
    TRANSFER_FAILOVER,
    ArmTimer,
    BindRelay,
    CancelTimer,
    Hangup,
    Phase,
    PlaceLeg,
    ReleaseLeg,
    ReleaseRelay,
    SendOffer,
    Then,
)
from hybridvoice.mediation.call_state import TABLE
from hybridvoice.mediation.media_plan import INBOUND_PENDING, REOFFER_RETRY
from hybridvoice.net.transport import Source
from hybridvoice.sip.headers import Address
from hybridvoice.sip.refer import Refer
from hybridvoice.sip.sdp import SdpError
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Disconnected,
    Offer,
    OfferAnswered,
    OfferRejected,
    Ringing,
    State,
)
from hybridvoice.sip.uri import parse_uri


# --- the table ----------------------------------------------------------------------------------
def test_every_phase_has_its_transitions_in_the_one_table() -> None:
    assert {phase for phase, _, _ in TABLE} == set(Phase)
    assert all(kind is not ArmTimer for _, kind, _ in TABLE)  # decisions are not events
    # a leg's events are keyed by the leg they come from, sorted once by the dispatch
    assert {source for _, _, source in TABLE} == set(SOURCES)


# --- fast failover ------------------------------------------------------------------------------
def test_fast_failover_fires_at_exactly_t0_plus_10_s_and_places_the_next_gateway() -> None:
    w = world()
    bridge, a = call_out(w)
    (first,) = w.gateway.placed
    place, arm = w.adapter.actions
    assert isinstance(place, PlaceLeg) and place.side == "gateway" and place.callee == CALLEE
    assert place.gateway is not None and bridge.gateway is place.gateway
    assert arm == ArmTimer(FAILOVER, T0 + 10.0)
    assert bridge.phase is Phase.SETUP
    w.fire(bridge, FAILOVER, T0 + 10.0)
    assert first.names() == ["bye"]  # CANCEL of the unanswered INVITE
    second = w.gateway.placed[-1]
    assert second is not first and bridge.b is second
    again = w.adapter.actions[-2]
    assert isinstance(again, PlaceLeg) and again.gateway not in (None, place.gateway)
    assert w.adapter.timers == {FAILOVER: T0 + 20.0}  # the next attempt's own 10 s
    assert w.b2bua.stats.failovers == 1
    w.fire(bridge, FAILOVER, T0 + 20.0)  # no gateway left: the caller hears 503
    assert second.names() == ["bye"] and a.done == [("reject", 503)]
    assert bridge.phase is Phase.ENDED and w.b2bua.admission.active == 0


def test_a_fast_failover_timer_fired_early_is_armed_again_for_its_deadline() -> None:
    """uvloop rounds a timer to the millisecond, often down: the firing is before the
    deadline, and must neither fail over yet nor be lost."""
    w = world()
    bridge, _ = call_out(w)
    (first,) = w.gateway.placed
    w.adapter.timers.pop(FAILOVER)
    bridge.timer_fired(FAILOVER, T0 + 9.9996)
    assert w.adapter.timers == {FAILOVER: T0 + 10.0} and first.done == []
    w.fire(bridge, FAILOVER, T0 + 10.0)
    assert first.names() == ["bye"] and w.gateway.placed[-1] is not first


def test_a_provisional_before_the_deadline_cancels_the_fast_failover() -> None:
    w = world()
    bridge, a = call_out(w)
    (b,) = w.gateway.placed
    w.clock.now = T0 + 9.999
    w.event(bridge, b, Ringing(None))
    assert w.adapter.actions[-1] == CancelTimer(FAILOVER) and w.adapter.timers == {}
    assert bridge.phase is Phase.EARLY and a.done == [("ring", 180)]
    assert bridge.outbound is not None and bridge.outbound.deadline is None
    # a stale firing (the loop's handle raced the cancel) changes nothing
    bridge.timer_fired(FAILOVER, T0 + 10.0)
    assert w.gateway.placed == [b] and b.done == []
    w.event(bridge, b, Answered(sdp(7000)))
    assert bridge.phase is Phase.CONNECTED and a.names() == ["ring", "answer"]


def test_a_failover_code_places_the_next_gateway_at_once() -> None:
    w = world()
    bridge, _ = call_out(w)
    (first,) = w.gateway.placed
    w.clock.now = T0 + 1.5
    w.event(bridge, first, Disconnected(Cause.REJECTED, 503, "remote"))
    second = w.gateway.placed[-1]
    assert second is not first and bridge.b is second
    cancel, place, arm = w.adapter.actions[-3:]
    assert cancel == CancelTimer(FAILOVER) and isinstance(place, PlaceLeg)
    assert arm == ArmTimer(FAILOVER, T0 + 11.5)


# --- media: the re-offer waits for an event, not a delay ------------------------------------------
EXTERNAL = BypassPolicy(enabled=True, internal_subnets=(ipaddress.ip_network("10.0.0.0/8"),))


def inbound_anchored_late(w: World) -> tuple[Bridge, Leg, Leg]:
    """A gateway calls in (bypass possible: decided on the client's answer); the relay
    binds; the edge leg is placed with the gateway's offer unchanged."""
    req = invite(f"sip:{CALLEE}@127.0.0.1", "<sip:+31612345678@gw.example>", sdp(5000, "10.0.0.9"))
    a = Leg(req, True, State.INCOMING, source=Source(cast(Any, None), "127.0.0.2", 5060))
    w.gateway.calls.append(a)
    w.b2bua.incoming(cast(Any, a), "gateway")
    (bridge,) = w.b2bua.bridges
    assert bridge.decision is INBOUND_PENDING
    assert w.adapter.actions == [BindRelay(Then("inbound"))]
    bridge.relay_bound(relay_call(), Then("inbound"))
    (b,) = w.edge.placed
    place = w.adapter.actions[-1]
    assert isinstance(place, PlaceLeg) and place.side == "edge" and place.role == "b"
    assert b.invite.body == sdp(5000, "10.0.0.9")  # unchanged until the client answers
    return bridge, a, b


def test_the_reoffer_to_the_relay_goes_on_the_answer_itself() -> None:
    w = world(relay=True, bypass=EXTERNAL)
    bridge, a, b = inbound_anchored_late(w)
    b.state = State.CONFIRMED  # the session sent its ACK before it said Answered
    w.event(bridge, b, Answered(sdp(6000, "198.51.100.7")))  # a client outside: anchor
    assert bridge.decision is not None and bridge.decision.mode is MediaMode.ANCHORED
    assert a.names() == ["answer"] and b.names() == ["reinvite"]
    assert bridge.offer_from is b and not any(isinstance(x, ArmTimer) for x in w.adapter.actions)


def test_a_reoffer_refused_491_is_tried_again_after_the_retry_timer() -> None:
    w = world(relay=True, bypass=EXTERNAL)
    bridge, a, b = inbound_anchored_late(w)
    b.state = State.CONFIRMED
    w.event(bridge, b, Answered(sdp(6000, "198.51.100.7")))
    w.clock.now = T0 + 1.0
    w.event(bridge, b, OfferRejected(491))
    assert w.adapter.timers == {REOFFER: T0 + 1.0 + REOFFER_RETRY}
    # the gateway re-offers meanwhile: that offer goes first ...
    a.state = State.CONFIRMED
    w.event(bridge, a, Offer(sdp(5002)))
    assert bridge.offer_from is a and b.names() == ["reinvite", "reinvite"]
    w.fire(bridge, REOFFER, T0 + 1.0 + REOFFER_RETRY)  # ... so ours waits for it to end
    assert b.names() == ["reinvite", "reinvite"]
    w.event(bridge, b, OfferAnswered(sdp(6000, "198.51.100.7")))  # the gateway's is answered
    assert a.names() == ["answer", "accept_offer"]
    assert b.names() == ["reinvite", "reinvite", "reinvite"]  # ours, on that event
    assert bridge.offer_from is b


# --- transfer (REFER) ---------------------------------------------------------------------------
def connected(w: World) -> tuple[Bridge, Leg, Leg]:
    bridge, a = call_out(w)
    b = w.gateway.placed[-1]
    w.event(bridge, b, Answered(sdp(7000)))
    a.state = b.state = State.CONFIRMED
    assert bridge.phase is Phase.CONNECTED
    return bridge, a, b


def test_a_performed_transfer_places_a_leg_with_failover_then_swaps_it_in() -> None:
    w = world(refer=False)
    bridge, a, b = connected(w)
    w.clock.now = T0 + 30.0
    target = Address(parse_uri("sip:+31207654321@contoso.com;user=phone"))
    w.event(bridge, a, Refer(target, None, None))
    assert a.names() == ["answer", "accept_refer"]
    new = w.gateway.placed[-1]
    assert new is not b and w.adapter.timers[TRANSFER_FAILOVER] == T0 + 40.0
    place = w.adapter.actions[-2]
    assert isinstance(place, PlaceLeg) and place.role == "transfer"
    w.event(bridge, new, Ringing(None))
    assert TRANSFER_FAILOVER not in w.adapter.timers and a.done[-1] == ("notify_refer", 180)
    w.event(bridge, new, Answered(sdp(9000)))
    assert bridge.a is new and bridge.b is b  # the new leg took the referrer's place
    assert a.done[-2:] == [("notify_refer", 200), ("bye",)]
    w.event(
        bridge, a, Disconnected(Cause.NORMAL, None, "local")
    )  # the referrer's end: not the call's
    assert bridge.phase is Phase.CONNECTED and w.b2bua.bridges == {bridge}


def test_a_transfer_attempt_unanswered_fails_over_on_its_own_timer() -> None:
    w = world(refer=False)
    bridge, a, _ = connected(w)
    target = Address(parse_uri("sip:+31207654321@contoso.com;user=phone"))
    w.event(bridge, a, Refer(target, None, None))
    first = w.gateway.placed[-1]
    w.fire(bridge, TRANSFER_FAILOVER, T0 + 10.0)
    assert first.names() == ["bye"] and w.gateway.placed[-1] is not first
    assert bridge.a is a and bridge.phase is Phase.CONNECTED


# --- the end, from every phase: the slot is freed once ------------------------------------------
def _setup(w: World) -> tuple[Bridge, Leg]:
    return call_out(w)


def _early(w: World) -> tuple[Bridge, Leg]:
    bridge, a = call_out(w)
    w.event(bridge, w.gateway.placed[-1], Ringing(None))
    return bridge, a


def _connected(w: World) -> tuple[Bridge, Leg]:
    bridge, a, _ = connected(w)
    return bridge, a


def _relay_pending(w: World) -> tuple[Bridge, Leg]:
    bridge, a = call_out(w, sdp(6000, "198.51.100.7"))  # anchored: waits for its relay
    assert isinstance(w.adapter.actions[-1], BindRelay) and not w.gateway.placed
    return bridge, a


@pytest.mark.parametrize("phase", [_setup, _early, _connected, _relay_pending])
def test_ending_from_every_phase_frees_the_slot_once(phase: Any) -> None:
    w = world(relay=phase is _relay_pending, bypass=EXTERNAL)
    bridge, a = phase(w)
    admission, trunks = w.b2bua.admission, w.b2bua.trunks
    assert admission.active == 1
    cause = Cause.NORMAL if a.state is State.CONFIRMED else Cause.CANCELLED
    w.event(bridge, a, Disconnected(cause, None, "remote"))
    assert bridge.phase is Phase.ENDED and admission.active == 0
    assert w.adapter.timers == {} and not w.b2bua.bridges
    assert all(g.active_calls == 0 for g in trunks)
    for leg in w.gateway.placed:  # the callee's end comes after: nothing freed twice
        assert leg.names()[-1] == "bye"
        w.event(bridge, leg, Disconnected(Cause.CANCELLED, 487, "remote"))
    bridge.timer_fired(FAILOVER, T0 + 10.0)  # a stale timer of an ended call
    assert admission.active == 0 and w.b2bua.stats.failures == {}
    if phase is _relay_pending:  # the relay's ports come after the end: straight back
        late = relay_call()
        bridge.relay_bound(late, Then("place"))
        assert w.adapter.actions[-1] == ReleaseRelay(late)


def test_ending_during_a_transfer_frees_everything_once() -> None:
    w = world(refer=False)
    bridge, a, b = connected(w)
    target = Address(parse_uri("sip:+31207654321@contoso.com;user=phone"))
    w.event(bridge, a, Refer(target, None, None))
    new = w.gateway.placed[-1]
    assert TRANSFER_FAILOVER in w.adapter.timers
    w.event(bridge, b, Disconnected(Cause.NORMAL, None, "remote"))  # the transferee hangs up
    assert new.names() == ["bye"] and a.names()[-1] == "bye"
    assert bridge.phase is Phase.ENDED and w.adapter.timers == {}
    w.event(bridge, new, Disconnected(Cause.CANCELLED, 487, "remote"))
    w.event(bridge, a, Disconnected(Cause.NORMAL, None, "local"))
    assert w.b2bua.admission.active == 0 and w.b2bua.stats.failures == {}
    assert [g.active_calls for g in w.b2bua.trunks] == [0, 0]


# --- leg decisions: carried out by the adapter, in order; a refusal comes back -------------
def test_an_offer_the_other_leg_refuses_at_once_is_refused_to_the_offerer() -> None:
    """The callee's session cannot take a re-INVITE now (a race): the caller's offer gets
    488 (491 while the callee leg is still setting up), the call goes on, and the next
    offer passes (RFC 3261 §14.2)."""
    w = world()
    bridge, a, b = connected(w)
    b.busy = True
    w.event(bridge, a, Offer(sdp(6002)))
    assert "reinvite" not in b.names() and a.done[-1] == ("reject_offer", 488)
    failed = [x for x in w.adapter.leg_actions if isinstance(x, SendOffer)]
    assert failed == [SendOffer(cast(Any, b), sdp(6002), False, cast(Any, a))]
    assert bridge.offer_from is None and bridge.phase is Phase.CONNECTED
    b.busy = False
    w.event(bridge, a, Offer(sdp(6004)))
    assert b.done[-1] == ("reinvite", sdp(6004)) and bridge.offer_from is a


def test_our_reoffer_to_the_relay_refused_at_once_is_given_up() -> None:
    w = world(relay=True, bypass=EXTERNAL)
    bridge, a, b = inbound_anchored_late(w)
    b.state, b.busy = State.CONFIRMED, True
    w.event(bridge, b, Answered(sdp(6000, "198.51.100.7")))
    assert a.names() == ["answer"] and "reinvite" not in b.names()
    assert bridge.offer_from is None and bridge.plan is not None and bridge.plan.reoffer is None
    assert bridge.phase is Phase.CONNECTED and w.b2bua.stats.failures == {}


def test_a_legs_release_is_the_last_decision_of_its_end() -> None:
    """No next-loop-turn callback: the ended leg is let go (its handler dropped) right after
    the decisions its end made, in the same batch."""
    w = world()
    bridge, a, b = connected(w)
    w.event(bridge, a, Disconnected(Cause.NORMAL, None, "remote"))
    assert w.adapter.leg_actions[-2:] == [Hangup(cast(Any, b)), ReleaseLeg(cast(Any, a))]
    assert a.handler is None and b.handler is bridge  # b's own end releases it
    w.event(bridge, b, Disconnected(Cause.NORMAL, None, "local"))
    assert b.handler is None and w.b2bua.stats.failures == {}


def test_an_invite_with_replaces_and_bad_sdp_holds_no_transfer() -> None:
    """RFC 3891: the new leg's offer goes to the other leg through the relay; SDP we cannot
    parse is refused (the UA answers the failure) and the call is free for the next transfer
    (not stuck answering 491)."""
    w = world(relay=True, bypass=EXTERNAL)
    bridge, a = call_out(w, sdp(6000, "198.51.100.7"))  # anchored: waits for its relay
    bind = w.adapter.actions[-1]
    assert isinstance(bind, BindRelay)
    bridge.relay_bound(relay_call(), bind.then)
    b = w.gateway.placed[-1]
    b.state = State.CONFIRMED
    w.event(bridge, b, Answered(sdp(7000)))
    a.state = State.CONFIRMED
    assert bridge.plan is not None and bridge.phase is Phase.CONNECTED
    bad = invite(f"sip:{CALLEE}@127.0.0.1", "<sip:+31209876543@contoso.com>", b"v=0\r\nbad\r\n")
    new = Leg(bad, True, State.INCOMING, replaces=a)
    with pytest.raises(SdpError):
        w.b2bua.incoming(cast(Any, new), "edge")
    assert bridge.transfer is not None and bridge.transfer.active is None
    w.event(bridge, a, Refer(Address(parse_uri("sip:alice@contoso.com")), None, None))
    assert a.done[-1] != ("reject_refer", 491)
