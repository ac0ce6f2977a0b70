"""The mediation call's transitions: the handlers of :data:`.call_state.TABLE`.

RFC 7092 §3.1 (two dialogs joined by call-control events), RFC 3261 §9 (CANCEL on the caller
leg -> CANCEL of the callee leg), §13 (INVITE sessions), §14 and RFC 3311 (an offer on one leg
becomes an offer on the other, its answer goes back, RFC 3264 §8), §15 (BYE from either
side), §21.5.4/§20.33 (503 with Retry-After when over the call limit or draining), RFC 3326
(a Reason on the failures we decide), RFC 3891/3515 (transfer, :mod:`.transfer`).

Each handler takes the call (:class:`~.b2bua.Bridge`), the event and ``now``; which leg the
event came from is its key in the table (the dispatch sorted it: ``bridge.a`` or
``bridge.b``). It touches no leg: it returns its decisions (:data:`~.call_events.Actions`), or
queues them on the call (:meth:`~.b2bua.Bridge.emit`: ring, answer, pass an offer, hang up,
write the record), and the adapter carries them out in order; a leg that refuses a decision
(a race with its peer) comes back as :class:`~.call_events.LegOpFailed`.

Outbound failover follows :class:`.routing.OutboundCall`'s outcomes: an
:class:`~.routing.Attempt` places a leg and arms the fast-failover timer at its ``deadline``;
a provisional (18x) or final response cancels it; its firing abandons the attempt (CANCEL)
for the next gateway. The media decision (:mod:`.media_plan`) comes at the start; an
anchored call binds relay ports first (:class:`~.call_events.BindRelay`), and the step that
waited (:class:`~.call_events.Then`) runs on :class:`~.call_events.RelayBound`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from hybridvoice.media import Leg
from hybridvoice.net.transport import NetError
from hybridvoice.sip.headers import Address
from hybridvoice.sip.sdp import SdpError
from hybridvoice.sip.session import (
    Answered,
    Confirmed,
    Disconnected,
    EarlyMedia,
    Offer,
    OfferAnswered,
    OfferRejected,
    Ringing,
    State,
)

from . import media_plan, routing, transfer
from .b2bua_legs import map_failure
from .call_events import (
    FAILOVER,
    NONE,
    REOFFER,
    TRANSFER_FAILOVER,
    Actions,
    Answer,
    AnswerOffer,
    ArmTimer,
    BindRelay,
    CancelTimer,
    GatewayDown,
    Hangup,
    LegOpFailed,
    PassRefer,
    Phase,
    PlaceLeg,
    RefuseOffer,
    RelayBound,
    RelayFailed,
    ReleaseRelay,
    Ring,
    SendOffer,
    Start,
    Then,
    TimerFired,
)
from .headers_policy import calling_party, e164_request_uri, gateway_from
from .media_plan import INBOUND_PENDING, MediaPlan
from .records import Direction, DisconnectSide
from .records_observed import observed_of
from .translate import NumberError, number_of

if TYPE_CHECKING:
    from hybridvoice.net.call import Call

    from .b2bua import Bridge

__all__ = [
    "a_ended",
    "after_offer",
    "answered",
    "answered_by",
    "attempt_failed",
    "b_ended",
    "confirmed",
    "leg_op_failed",
    "offer_answered_by_a",
    "offer_answered_by_b",
    "offer_from_a",
    "offer_from_b",
    "offer_rejected_by_a",
    "offer_rejected_by_b",
    "pass_offer",
    "place",
    "provisional",
    "relay_bound",
    "relay_failed",
    "relay_unneeded",
    "reoffer",
    "reoffer_done",
    "start",
    "timer",
]

_log = logging.getLogger("hybridvoice.mediation.b2bua")

_STOP_FAILOVER: Final[Actions] = (CancelTimer(FAILOVER),)


# --- set-up -------------------------------------------------------------------------------------
def start(bridge: Bridge, event: Start, now: float) -> Actions:
    """Admission (503 + Retry-After when full or draining, RFC 3261 §21.5.4), then the
    record, the route and the media decision. Everything a call holds is taken here or later,
    so that :meth:`~.b2bua.Bridge.finish` gives it all back."""
    b2b = bridge.b2bua
    refusal = b2b.admission.admit()
    if refusal is not None:
        bridge.phase = Phase.ENDED
        b2b.bridges.discard(bridge)
        return (b2b.refuse(bridge.a, refusal.status, refusal.reason, refusal.retry_after),)
    bridge.admitted = True
    bridge.started = now
    b2b.stats.calls += 1
    invite = bridge.a.invite
    if bridge.side == "edge":  # the number the cloud asserts: what the PSTN shows
        number, bridge.display = calling_party(invite)
    else:
        from_ = invite.from_
        number = number_of(from_.uri) if from_ is not None else None
    bridge.caller = number or "anonymous"
    bridge.callee = number_of(invite.uri) or ""
    _log.debug("call from %s to %s admitted (from the %s side)", bridge.caller, bridge.callee,
               bridge.side)  # fmt: skip
    if b2b.records is not None:
        direction = Direction.OUTBOUND if bridge.side == "edge" else Direction.INBOUND
        bridge.record = True  # before: a record half made by a failing start is closed too
        bridge.write("start", direction=direction, caller=bridge.caller, callee=bridge.callee)
    relay, body = b2b.relay is not None, invite.body
    if bridge.side == "edge":
        bridge.outbound, outcome = b2b.router.start(bridge.callee, now)
        gateway = outcome.gateway if isinstance(outcome, routing.Attempt) else None
        bridge.decision = media_plan.decide_at_start(
            b2b.bypass, relay, body, gateway, False, srtp=b2b.srtp
        )
        bridge.record_media()
        return _after_relay(bridge, Then("place", outcome), now)
    bridge.decision = media_plan.decide_at_start(
        b2b.bypass, relay, body, bridge.gateway, True, srtp=b2b.srtp
    )
    bridge.record_media()
    return _after_relay(bridge, Then("inbound"), now)


def _after_relay(bridge: Bridge, then: Then, now: float) -> Actions:
    """Take step ``then`` now, or once relay ports are bound when the media is anchored."""
    decision = bridge.decision
    if bridge.b2bua.relay is None or decision is None or decision.bypass:
        return _proceed(bridge, then, now)
    return (BindRelay(then),)


def _proceed(bridge: Bridge, then: Then, now: float) -> Actions:
    if then.step == "place":
        assert then.outcome is not None
        return place(bridge, then.outcome, now)
    if then.step == "inbound":
        return _inbound(bridge)
    plan, b = bridge.plan, then.leg  # the bypass fallback: the client's offer, anchored
    assert plan is not None and b is not None
    plan.reoffer_to(bridge.a.invite.body, Leg.A)  # for the gateway leg
    return answered_by(bridge, b, then.sdp, now)


def relay_bound(bridge: Bridge, event: RelayBound, now: float) -> Actions:
    """The relay call is ready (the call holds it: :meth:`~.b2bua.Bridge.relay_bound`):
    anchor (a plan, unless the inbound decision waits for the client's answer) and take the
    step that waited; a caller gone meanwhile frees it."""
    if bridge.a.disconnected:  # cancelled meanwhile
        bridge.relay_call = None
        return (ReleaseRelay(event.relay_call),)
    if bridge.decision is not INBOUND_PENDING:
        outcome = event.then.outcome
        gateway = outcome.gateway if isinstance(outcome, routing.Attempt) else bridge.gateway
        srtp = media_plan.srtp_plan(bridge.b2bua.srtp, gateway)
        bridge.plan = MediaPlan(event.relay_call, bridge.record_media, srtp)
    return _proceed(bridge, event.then, now)


def relay_unneeded(bridge: Bridge, event: RelayBound, now: float) -> Actions:
    """The relay call came after the call ended: its ports go straight back."""
    return (ReleaseRelay(event.relay_call),)


def relay_failed(bridge: Bridge, event: RelayFailed, now: float) -> Actions:
    """No media ports: the caller gets 503 + Retry-After (its end finishes the call)."""
    _log.warning("no relay for %s: %s", bridge.a.call_id, event.error)
    if not bridge.a.disconnected:
        return (bridge.b2bua.refuse(bridge.a, 503, f"no media ports: {event.error}", 10),)
    return NONE


def _inbound(bridge: Bridge) -> Actions:
    """Place the edge leg of an inbound call (numbers translated, + E.164 Request-URI)."""
    b2b = bridge.b2bua
    gateway = bridge.gateway
    assert gateway is not None
    translate = b2b.translator(gateway)
    try:
        callee = translate.inbound_callee(bridge.callee)
        uri = e164_request_uri(callee, b2b.edge_domain)
    except NumberError as exc:
        bridge.fail_a(404, str(exc))
        return NONE
    caller = translate.inbound_caller(bridge.caller)
    b2b.trunks.call_started(gateway.name)
    return (
        PlaceLeg(
            "edge", uri, f"<sip:{caller}@{b2b.edge_domain};user=phone>", f"<{uri}>",
            bridge.sdp(bridge.a.invite.body or None, bridge.a, offer=True), b2b.edge_target,
            b2b.policy(gateway).forwarded(bridge.a.invite), "b", gateway, callee, caller,
        ),
    )  # fmt: skip


def place(bridge: Bridge, outcome: routing.Outcome, now: float) -> Actions:
    """Act on the router's outcome: place an attempt (:class:`~.call_events.PlaceLeg`, then
    its fast-failover timer at the outcome's deadline), or fail the caller."""
    b2b = bridge.b2bua
    if isinstance(outcome, routing.NoGatewayLeft):
        bridge.fail_a(outcome.status, outcome.cause)
        return NONE
    outbound = bridge.outbound
    assert outbound is not None
    if bridge.a.disconnected:
        outbound.ended()
        return NONE
    gateway = outcome.gateway
    if bridge.plan is not None:
        bridge.plan.for_gateway(gateway.config)  # its MediaEncryption, before the offer
    translate = b2b.translator(gateway)
    callee = translate.outbound_callee(bridge.callee)
    caller = translate.outbound_caller(bridge.caller)
    try:
        target = b2b.target(gateway)
    except NetError as exc:
        actions = place(bridge, outbound.transport_error(now), now)
        _log.info("%s: %s", gateway.name, exc)
        return actions
    leg = PlaceLeg(
        "gateway", target.uri._replace(user=callee),
        gateway_from(target.to, caller, bridge.display),
        Address(target.to._replace(user=callee)),
        bridge.sdp(bridge.a.invite.body or None, bridge.a, offer=True), target.destination,
        b2b.policy(gateway).forwarded(bridge.a.invite), "b", gateway, callee, caller,
    )  # fmt: skip
    if outcome.deadline is None:
        return (leg,)
    return (leg, ArmTimer(FAILOVER, outcome.deadline))


def timer(bridge: Bridge, event: TimerFired, now: float) -> Actions:
    """A timer of the call fired: fast failover, our re-INVITE's retry, or a transfer's."""
    name = event.name
    if name == FAILOVER:
        return _fast_failover(bridge, now)
    if name == REOFFER:
        return reoffer(bridge)
    if name == TRANSFER_FAILOVER:
        return transfer.timer_fired(bridge, now)
    return NONE


def _fast_failover(bridge: Bridge, now: float) -> Actions:
    """No 18x/final from the gateway in time: CANCEL it, try the next (routing)."""
    outbound, b = bridge.outbound, bridge.b
    if outbound is None or b is None or bridge.answered:
        return NONE
    outcome = outbound.timer_fired(now)
    if outcome is None:
        return _early(outbound, FAILOVER, now)
    attempt_failed(bridge, outbound.history[-1].outcome)
    bridge.b = None
    # CANCEL (or nothing yet to cancel: the session does it when a 1xx comes)
    bridge.emit(Hangup(b))
    return place(bridge, outcome, now)


def gateway_down(bridge: Bridge, event: GatewayDown, now: float) -> Actions:
    """The gateway of the pending attempt was marked down (OPTIONS): CANCEL it, try the next
    gateway (routing), as the fast-failover timer would have done before a 180."""
    outbound, b = bridge.outbound, bridge.b
    if outbound is None or b is None or bridge.answered:
        return NONE
    outcome = outbound.gateway_down(event.name, event.reason, now)
    if outcome is None:
        return NONE
    attempt_failed(bridge, outbound.history[-1].outcome)
    bridge.b = None
    bridge.emit(*_STOP_FAILOVER, Hangup(b))
    return place(bridge, outcome, now)


def _early(outbound: routing.OutboundCall, name: str, now: float) -> Actions:
    """A fast-failover timer that fired before its deadline (uvloop rounds timers to the
    millisecond, often down) is armed again for it; one made stale by an 18x or a final
    response is dropped."""
    deadline = outbound.deadline
    if deadline is None or outbound.current is None or now >= deadline:
        return NONE
    return (ArmTimer(name, deadline),)


def attempt_failed(bridge: Bridge, outcome: str) -> None:
    """The pending gateway attempt is over (``outcome``): counted and recorded."""
    bridge.b2bua.stats.failovers += 1
    if bridge.gateway is not None:
        bridge.write("attempt", gateway=bridge.gateway.name, outcome=outcome)


# --- events from either leg ---------------------------------------------------------------------
def provisional(bridge: Bridge, event: Ringing | EarlyMedia, now: float) -> Actions:
    """The callee rings (180) or sends early media (183): the fast-failover timer stops, the
    caller hears it."""
    a, b = bridge.a, bridge.b
    assert b is not None
    status = 180 if isinstance(event, Ringing) else 183
    actions = NONE
    outbound = bridge.outbound
    if outbound is not None:
        outbound.provisional(status, now)
        actions = _STOP_FAILOVER
    if bridge.phase is Phase.SETUP:
        bridge.phase = Phase.EARLY
    bridge.write("ringing")
    if a.state in (State.INCOMING, State.EARLY):
        return (*actions, Ring(a, bridge.sdp(event.sdp, b), status))
    return actions


def answered(bridge: Bridge, event: Answered, now: float) -> Actions:
    """The callee answered (its 2xx)."""
    assert bridge.b is not None
    return answered_by(bridge, bridge.b, event.sdp, now)


def answered_by(bridge: Bridge, b: Call, sdp: bytes | None, now: float) -> Actions:
    """``b`` answered with ``sdp``: the caller is answered (``Phase.CONNECTED``); a
    late-anchored call re-INVITEs its edge leg to the relay at once (:func:`reoffer`: the
    leg's ACK went out before its ``Answered``)."""
    actions = _STOP_FAILOVER
    a = bridge.a
    if bridge.outbound is not None and not bridge.answered:
        bridge.outbound.final(200, now)
    if bridge.answered:
        return actions
    if sdp is None and not a.invite.body and not bridge.late_offer:
        return actions  # the offer follows as an Offer event
    if _can_fall_back(bridge) and media_plan.fallback_on_answer(a.invite.body, sdp):
        _anchor_instead(bridge)  # anchored now, back once the relay is bound
        return (*actions, BindRelay(Then("answer", leg=b, sdp=sdp)))
    bridge.answered = True
    if bridge.phase is not Phase.ENDED:
        bridge.phase = Phase.CONNECTED
    bridge.b2bua.stats.answered += 1
    bridge.b2bua.stats.tally.answered(bridge.started, now)
    _log.debug("call answered (set up in %.3f s)", now - bridge.started)
    if a.disconnected:
        return (*actions, Hangup(b))
    answer = bridge.sdp(sdp, b, offer=bridge.late_offer)
    bridge.emit(*actions, Answer(a, answer))
    bridge.write("answered")
    if bridge.record:  # the addresses this call used: worked out for its record only
        observed = observed_of(bridge, answer, sdp)
        if observed is not None:
            bridge.write("observed", paths=observed)
    plan = bridge.plan
    if plan is not None and plan.reoffer is not None:
        return reoffer(bridge)
    return NONE


def _can_fall_back(bridge: Bridge) -> bool:
    """May a bypassed outbound call still be anchored (:func:`.media_plan.fallback_on_reject`,
    :func:`.media_plan.fallback_on_answer`)? Its gateway attempt is pending, its caller
    unanswered, and a relay engine is there."""
    decision, b2b, outbound = bridge.decision, bridge.b2bua, bridge.outbound
    return (
        bridge.side == "edge" and decision is not None and decision.bypass
        and b2b.relay is not None and bridge.plan is None and bool(bridge.a.invite.body)
        and outbound is not None and outbound.current is not None
        and not bridge.finished and not bridge.a.disconnected
    )  # fmt: skip


def offer_from_a(bridge: Bridge, event: Offer, now: float) -> Actions:
    """The caller offers (re-INVITE, UPDATE): the offer goes to the callee."""
    b = bridge.b
    if b is not None and not b.disconnected:
        pass_offer(bridge, bridge.a, b, event.sdp)
    return NONE


def offer_from_b(bridge: Bridge, event: Offer, now: float) -> Actions:
    """The callee offers (re-INVITE, UPDATE; or the 2xx to our offer-less INVITE)."""
    b = bridge.b
    assert b is not None
    if not bridge.answered:  # the 2xx to an offer-less INVITE carried the offer
        bridge.late_offer = True
        return answered_by(bridge, b, event.sdp, now)
    pass_offer(bridge, b, bridge.a, event.sdp)
    return NONE


def pass_offer(bridge: Bridge, origin: Call, other: Call, sdp: bytes | None) -> None:
    """An offer on ``origin`` (re-INVITE/UPDATE) becomes an offer on ``other``; one with
    SDP we cannot use is refused 488 and the session goes on (RFC 3261 §14.2). One the other
    leg refuses at once comes back as :class:`~.call_events.LegOpFailed`."""
    if bridge.offer_from is not None:
        bridge.emit(RefuseOffer(origin, 491))  # one offer at a time (RFC 3261 §14.2)
        return
    try:
        body = bridge.sdp(sdp, origin, offer=True)
    except SdpError as exc:  # a bad re-offer costs only itself: 488, the call goes on
        _log.warning("call %s: offer refused: bad SDP: %s", bridge.a.call_id, exc)
        bridge.emit(RefuseOffer(origin, 488))
        return
    bridge.offer_from = origin
    bridge.emit(SendOffer(other, body, other.state is not State.CONFIRMED, origin))


def leg_op_failed(bridge: Bridge, event: LegOpFailed, now: float) -> Actions:
    """A leg refused a decision at once (its session's state forbids it: a race). Passing an
    offer on: the offerer hears 491 (the other leg still setting up) or 488; our own
    re-offer to the relay: given up; a REFER or a Replaces' re-INVITE: :mod:`.transfer`.
    Anything else is only logged (the other leg's timing made it moot)."""
    action = event.action
    if isinstance(action, SendOffer) and action.why == "relay":  # ours (late anchoring)
        _log.info("re-INVITE to the relay not sent: %s", event.error)
        if bridge.offer_from is action.leg:
            bridge.offer_from = None
        if bridge.plan is not None:
            bridge.plan.reoffer_over()
        return NONE
    if isinstance(action, SendOffer) and action.why == "offer" and action.origin is not None:
        _log.info("offer not passed on: %s", event.error)
        if bridge.offer_from is action.origin:
            bridge.offer_from = None
        status = 491 if action.leg.state is State.CONNECTING else 488
        return (RefuseOffer(action.origin, status),)
    if isinstance(action, SendOffer | PassRefer):
        return transfer.op_failed(bridge, action, event.error)
    _log.info("%s not done: %s", type(action).__name__, event.error)
    return NONE


def offer_answered_by_a(bridge: Bridge, event: OfferAnswered, now: float) -> Actions:
    """The caller answered the callee's offer we passed on: the answer goes back."""
    b = bridge.b
    if b is None or b.disconnected or bridge.offer_from is not b:
        return NONE
    bridge.offer_from = None
    bridge.emit(AnswerOffer(b, bridge.sdp(event.sdp, bridge.a)))
    return after_offer(bridge)


def offer_answered_by_b(bridge: Bridge, event: OfferAnswered, now: float) -> Actions:
    """The callee answered the caller's offer we passed on (the answer goes back), or our
    own re-INVITE (late anchoring)."""
    b = bridge.b
    if bridge.offer_from is b:
        return reoffer_done(bridge, event, now)
    if bridge.offer_from is not bridge.a:
        return NONE
    assert b is not None
    bridge.offer_from = None
    bridge.emit(AnswerOffer(bridge.a, bridge.sdp(event.sdp, b)))
    return after_offer(bridge)


def offer_rejected_by_a(bridge: Bridge, event: OfferRejected, now: float) -> Actions:
    """The caller refused the callee's offer we passed on: the callee hears the status."""
    b = bridge.b
    if b is None or b.disconnected or bridge.offer_from is not b:
        return NONE
    bridge.offer_from = None
    bridge.emit(RefuseOffer(b, event.status))
    return after_offer(bridge)


def offer_rejected_by_b(bridge: Bridge, event: OfferRejected, now: float) -> Actions:
    """The callee refused the caller's offer we passed on (the caller hears the status), or
    our own re-INVITE."""
    if bridge.offer_from is bridge.b:
        return reoffer_done(bridge, event, now)
    if bridge.offer_from is not bridge.a:
        return NONE
    bridge.offer_from = None
    bridge.emit(RefuseOffer(bridge.a, event.status))
    return after_offer(bridge)


def confirmed(bridge: Bridge, event: Confirmed, now: float) -> Actions:
    """The caller's ACK: after an offer-less INVITE it carries the answer for the callee."""
    b = bridge.b
    if b is None or b.disconnected:
        return NONE
    if bridge.late_offer and event.sdp is not None:
        bridge.late_offer = False
        return (AnswerOffer(b, bridge.sdp(event.sdp, bridge.a)),)
    return NONE


def a_ended(bridge: Bridge, event: Disconnected, now: float) -> Actions:
    """The caller leg ended: the call ends, the other leg gets BYE/CANCEL."""
    b = bridge.b
    side = DisconnectSide.CALLER if bridge.side == "edge" else DisconnectSide.CALLEE
    if event.side == "local":
        side = DisconnectSide.LOCAL
    bridge.finish(side, event.status, f"{event.cause} ({bridge.side} leg)")
    if b is not None and not b.disconnected:
        return (Hangup(b),)
    return NONE


def b_ended(bridge: Bridge, event: Disconnected, now: float) -> Actions:
    """The callee leg ended: the call ends (the caller gets BYE), or, for a failed gateway
    attempt, the next gateway is tried (or the bypassed offer again, anchored)."""
    a, b = bridge.a, bridge.b
    assert b is not None
    if bridge.answered or a.disconnected:
        side = DisconnectSide.CALLEE if bridge.side == "edge" else DisconnectSide.CALLER
        if event.side == "local":
            side = DisconnectSide.LOCAL
        bridge.finish(side, event.status, f"{event.cause} ({bridge.other} leg)")
        if not a.disconnected:
            return (Hangup(a), *_STOP_FAILOVER)
        return _STOP_FAILOVER
    status = event.status if event.status is not None else 408
    outbound = bridge.outbound
    if outbound is not None:
        attempt = None
        if _can_fall_back(bridge) and a.state in (State.INCOMING, State.EARLY):
            attempt = media_plan.fallback_on_reject(outbound, status, now)
        if attempt is not None:  # a bypassed offer refused 488: the same gateway, anchored
            bridge.write(
                "attempt", gateway=attempt.gateway.name, outcome=f"{status}: retried anchored"
            )
            _anchor_instead(bridge)
            bridge.b = None
            return (*_STOP_FAILOVER, BindRelay(Then("place", attempt)))
    if outbound is None:  # inbound: map the failure through
        bridge.fail_a(map_failure(status), f"{bridge.other} leg: {event.cause} {status}")
        return NONE
    cause = _tls_cause(bridge, status, event.detail)
    said = None if cause is None else f"{status} ({cause})"
    return _STOP_FAILOVER + _attempt_over(bridge, outbound, status, said, now)


def _tls_cause(bridge: Bridge, status: int, detail: str | None) -> str | None:
    """A 408 from a TLS gateway (a failed connection or handshake reaches the session as a
    408 of its own): why, in the transport's words the session passed on, else None."""
    gateway = bridge.gateway
    if status != 408 or gateway is None or gateway.config.protocol != "TLS":
        return None
    return detail


def _attempt_over(
    bridge: Bridge, outbound: routing.OutboundCall, status: int, said: str | None, now: float
) -> Actions:
    """The pending gateway attempt failed with ``status`` (``said``: the outcome text for
    the record and the caller's Reason): fail the caller or try the next gateway."""
    outcome = outbound.final(status, now, said)
    if isinstance(outcome, routing.Rejected):
        bridge.b = None
        bridge.fail_a(map_failure(status), f"gateway {outcome.gateway.name}: {said or status}")
    elif isinstance(outcome, routing.Attempt | routing.NoGatewayLeft):
        attempt_failed(bridge, said or str(status))
        bridge.b = None
        return place(bridge, outcome, now)
    return NONE


def _anchor_instead(bridge: Bridge) -> None:
    """A bypassed call the relay must join (no shared codec): anchored from now on."""
    bridge.decision = media_plan.ANCHORED_ON_MISMATCH
    bridge.record_media()


# --- our own re-offer to the relay (RFC 3264 §8) --------------------------------------------------
def reoffer(bridge: Bridge) -> Actions:
    """Re-INVITE the b-leg to the relay (:attr:`.media_plan.MediaPlan.reoffer`): a
    late-anchored inbound call's edge leg, or the gateway leg of the outbound bypass
    fallback. ``bridge.offer_from`` is then the b-leg itself: the offer under way is ours,
    on b. With another offer under way it waits for that one to end (:func:`after_offer`),
    not for a delay."""
    b, plan = bridge.b, bridge.plan
    if b is None or plan is None or plan.reoffer is None or bridge.finished or b.disconnected:
        return NONE
    if bridge.offer_from is not None:  # another offer under way: after it
        plan.wait(True)
        return NONE
    plan.wait(False)
    bridge.offer_from = b
    return (SendOffer(b, plan.reoffer, why="relay"),)


def after_offer(bridge: Bridge) -> Actions:
    """An offer/answer exchange of the call ended: our re-INVITE that waited for it goes."""
    plan = bridge.plan
    if plan is None or not plan.waiting or bridge.offer_from is not None:
        return NONE
    return reoffer(bridge)


def reoffer_done(bridge: Bridge, event: OfferAnswered | OfferRejected, now: float) -> Actions:
    """The b-leg answered our re-INVITE (the relay learns the client's address and codec)
    or refused it: after a 491 (glare) it is tried again at ``now`` +
    :data:`.media_plan.REOFFER_RETRY` (RFC 3261 §14.1), otherwise given up (the media stays
    as it is: the client may keep sending to the gateway directly)."""
    bridge.offer_from = None
    plan = bridge.plan
    if plan is None:
        return NONE
    if isinstance(event, OfferAnswered):
        plan.reoffer_over()
        if event.sdp is not None:  # the b-leg's relay leg: A inbound (edge), B outbound
            plan.answer(event.sdp, Leg.A if bridge.side == "gateway" else Leg.B)
    elif event.status == 491:
        return (ArmTimer(REOFFER, now + media_plan.REOFFER_RETRY),)
    else:
        _log.info("re-INVITE to the relay refused: %s", event.status)
        plan.reoffer_over()
    return NONE
