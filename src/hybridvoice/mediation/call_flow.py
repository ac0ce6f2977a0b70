"""The mediation call's transitions: the handlers of :data:`.call_state.TABLE`.

RFC 7092 §3.1 (two dialogs joined by call-control events), RFC 3261 §9 (CANCEL on the caller
leg -> CANCEL of the callee leg), §13 (INVITE sessions), §14 and RFC 3311 (an offer on one leg
becomes an offer on the other, its answer goes back, RFC 3264 §8), §15 (BYE from either
side), §21.5.4/§20.33 (503 with Retry-After when over the call limit or draining), RFC 3326
(a Reason on the failures we decide), RFC 3891/3515 (transfer, :mod:`.transfer`).

Each handler takes the call (:class:`~.b2bua.Bridge`), the leg the event came from (None for
the call's own events), the event and ``now``, drives the legs through their UA core calls
(which queue messages and never wait), and returns its decisions (timers, relay ports) for
the adapter. Outbound failover follows :class:`.routing.OutboundCall`'s outcomes: an
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
from hybridvoice.sip.errors import LocalProtocolError
from hybridvoice.sip.headers import Address
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
    ArmTimer,
    BindRelay,
    CancelTimer,
    Phase,
    PlaceLeg,
    RelayBound,
    RelayFailed,
    ReleaseRelay,
    Start,
    Then,
    TimerFired,
)
from .headers_policy import calling_party, e164_request_uri, gateway_from
from .media_plan import INBOUND_PENDING, MediaPlan
from .records import Direction, DisconnectSide
from .translate import NumberError, number_of

if TYPE_CHECKING:
    from hybridvoice.net.call import Call

    from .b2bua import Bridge

__all__ = [
    "after_offer",
    "answered",
    "answered_by",
    "confirmed",
    "disconnected",
    "offer",
    "offer_answered",
    "offer_rejected",
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
def start(bridge: Bridge, leg: Call | None, event: Start, now: float) -> Actions:
    """Admission (503 + Retry-After when full or draining, RFC 3261 §21.5.4), then the
    record, the route and the media decision. Everything a call holds is taken here or later,
    so that :meth:`~.b2bua.Bridge.finish` gives it all back."""
    b2b = bridge.b2bua
    refusal = b2b.admission.admit()
    if refusal is not None:
        bridge.phase = Phase.ENDED
        b2b.bridges.discard(bridge)
        b2b.refuse(bridge.a, refusal.status, refusal.reason, refusal.retry_after)
        return NONE
    bridge.admitted = True
    b2b.stats.calls += 1
    invite = bridge.a.invite
    if bridge.side == "edge":  # the number the cloud asserts: what the PSTN shows
        number, bridge.display = calling_party(invite)
    else:
        from_ = invite.from_
        number = number_of(from_.uri) if from_ is not None else None
    bridge.caller = number or "anonymous"
    bridge.callee = number_of(invite.uri) or ""
    if b2b.records is not None:
        direction = Direction.OUTBOUND if bridge.side == "edge" else Direction.INBOUND
        bridge.record = True  # before: a record half made by a failing start is closed too
        b2b.records.start(
            bridge.a.call_id, direction=direction, caller=bridge.caller, callee=bridge.callee
        )
    relay, body = b2b.relay is not None, invite.body
    if bridge.side == "edge":
        bridge.outbound, outcome = b2b.router.start(bridge.callee, now)
        gateway = outcome.gateway if isinstance(outcome, routing.Attempt) else None
        bridge.decision = media_plan.decide_at_start(b2b.bypass, relay, body, gateway, False)
        bridge.record_media()
        return _after_relay(bridge, Then("place", outcome), now)
    bridge.decision = media_plan.decide_at_start(b2b.bypass, relay, body, bridge.gateway, True)
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


def relay_bound(bridge: Bridge, leg: Call | None, event: RelayBound, now: float) -> Actions:
    """The relay call is ready (the call holds it: :meth:`~.b2bua.Bridge.relay_bound`):
    anchor (a plan, unless the inbound decision waits for the client's answer) and take the
    step that waited; a caller gone meanwhile frees it."""
    if bridge.a.disconnected:  # cancelled meanwhile
        bridge.relay_call = None
        return (ReleaseRelay(event.relay_call),)
    if bridge.decision is not INBOUND_PENDING:
        bridge.plan = MediaPlan(event.relay_call, bridge.record_media)
    return _proceed(bridge, event.then, now)


def relay_unneeded(bridge: Bridge, leg: Call | None, event: RelayBound, now: float) -> Actions:
    """The relay call came after the call ended: its ports go straight back."""
    return (ReleaseRelay(event.relay_call),)


def relay_failed(bridge: Bridge, leg: Call | None, event: RelayFailed, now: float) -> Actions:
    """No media ports: the caller gets 503 + Retry-After (its end finishes the call)."""
    _log.warning("no relay for %s: %s", bridge.a.call_id, event.error)
    if not bridge.a.disconnected:
        bridge.b2bua.refuse(bridge.a, 503, f"no media ports: {event.error}", 10)
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


def timer(bridge: Bridge, leg: Call | None, event: TimerFired, now: float) -> Actions:
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
    bridge.attempt_failed(outbound.history[-1].outcome)
    bridge.b = None
    b.bye()  # CANCEL (or nothing yet to cancel: the session does it when a 1xx comes)
    return place(bridge, outcome, now)


def _early(outbound: routing.OutboundCall, name: str, now: float) -> Actions:
    """A fast-failover timer that fired before its deadline (uvloop rounds timers to the
    millisecond, often down) is armed again for it; one made stale by an 18x or a final
    response is dropped."""
    deadline = outbound.deadline
    if deadline is None or outbound.current is None or now >= deadline:
        return NONE
    return (ArmTimer(name, deadline),)


# --- events from either leg ---------------------------------------------------------------------
def provisional(
    bridge: Bridge, leg: Call | None, event: Ringing | EarlyMedia, now: float
) -> Actions:
    """The callee rings (180) or sends early media (183): the fast-failover timer stops, the
    caller hears it."""
    b = bridge.b
    if leg is not b or b is None:
        return NONE
    a = bridge.a
    status = 180 if isinstance(event, Ringing) else 183
    actions = NONE
    outbound = bridge.outbound
    if outbound is not None:
        outbound.provisional(status, now)
        actions = _STOP_FAILOVER
    if bridge.phase is Phase.SETUP:
        bridge.phase = Phase.EARLY
    if bridge.record and bridge.b2bua.records is not None:
        bridge.b2bua.records.ringing(a.call_id)
    if a.state in (State.INCOMING, State.EARLY):
        bridge.safely(lambda: a.ring(bridge.sdp(event.sdp, b), status=status))
    return actions


def answered(bridge: Bridge, leg: Call | None, event: Answered, now: float) -> Actions:
    """The callee answered (its 2xx)."""
    b = bridge.b
    if leg is not b or b is None:
        return NONE
    return answered_by(bridge, b, event.sdp, now)


def answered_by(bridge: Bridge, b: Call, sdp: bytes | None, now: float) -> Actions:
    """``b`` answered with ``sdp``: the caller is answered (``Phase.CONNECTED``); a
    late-anchored call re-INVITEs its edge leg to the relay at once (:func:`.media_plan.reoffer`:
    the leg's ACK went out before its ``Answered``)."""
    actions = _STOP_FAILOVER
    a = bridge.a
    if bridge.outbound is not None and not bridge.answered:
        bridge.outbound.final(200, now)
    if bridge.answered:
        return actions
    if sdp is None and not a.invite.body and not bridge.late_offer:
        return actions  # the offer follows as an Offer event
    if media_plan.fallback_on_answer(bridge, sdp):  # anchored now, back once the relay is bound
        _anchor_instead(bridge)
        return (*actions, BindRelay(Then("answer", leg=b, sdp=sdp)))
    bridge.answered = True
    if bridge.phase is not Phase.ENDED:
        bridge.phase = Phase.CONNECTED
    bridge.b2bua.stats.answered += 1
    if a.disconnected:
        b.bye()
        return actions
    bridge.safely(a.answer, bridge.sdp(sdp, b, offer=bridge.late_offer))
    records = bridge.b2bua.records
    if bridge.record and records is not None:
        records.answered(a.call_id)
    plan = bridge.plan
    if plan is not None and plan.reoffer is not None:
        actions += reoffer(bridge)
    return actions


def offer(bridge: Bridge, leg: Call | None, event: Offer, now: float) -> Actions:
    """A leg offers (re-INVITE, UPDATE; or the 2xx to our offer-less INVITE)."""
    a, b = bridge.a, bridge.b
    if b is None:
        return NONE
    if leg is a:
        if not b.disconnected:
            bridge.pass_offer(a, b, event.sdp)
    elif leg is b:
        if not bridge.answered:  # the 2xx to an offer-less INVITE carried the offer
            bridge.late_offer = True
            return answered_by(bridge, b, event.sdp, now)
        bridge.pass_offer(b, a, event.sdp)
    return NONE


def offer_answered(bridge: Bridge, leg: Call | None, event: OfferAnswered, now: float) -> Actions:
    """A leg answered the offer we passed on: the answer goes back to the offerer."""
    a, b = bridge.a, bridge.b
    if b is None:
        return NONE
    if leg is a:
        if b.disconnected or bridge.offer_from is not b:
            return NONE
        bridge.offer_from = None
        bridge.safely(b.accept_offer, bridge.sdp(event.sdp, a))
    elif leg is b:
        if bridge.offer_from is b:  # the answer to our own re-INVITE (late anchoring)
            return reoffer_done(bridge, event, now)
        if bridge.offer_from is not a:
            return NONE
        bridge.offer_from = None
        bridge.safely(a.accept_offer, bridge.sdp(event.sdp, b))
    else:
        return NONE
    return after_offer(bridge)


def offer_rejected(bridge: Bridge, leg: Call | None, event: OfferRejected, now: float) -> Actions:
    """A leg refused the offer we passed on: the offerer hears the status."""
    a, b = bridge.a, bridge.b
    if b is None:
        return NONE
    if leg is a:
        if b.disconnected or bridge.offer_from is not b:
            return NONE
        bridge.offer_from = None
        bridge.safely(b.reject_offer, event.status)
    elif leg is b:
        if bridge.offer_from is b:
            return reoffer_done(bridge, event, now)
        if bridge.offer_from is not a:
            return NONE
        bridge.offer_from = None
        bridge.safely(a.reject_offer, event.status)
    else:
        return NONE
    return after_offer(bridge)


def confirmed(bridge: Bridge, leg: Call | None, event: Confirmed, now: float) -> Actions:
    """The caller's ACK: after an offer-less INVITE it carries the answer for the callee."""
    b = bridge.b
    if leg is not bridge.a or b is None or b.disconnected:
        return NONE
    if bridge.late_offer and event.sdp is not None:
        bridge.late_offer = False
        bridge.safely(b.accept_offer, bridge.sdp(event.sdp, bridge.a))
    return NONE


def disconnected(bridge: Bridge, leg: Call | None, event: Disconnected, now: float) -> Actions:
    """A leg ended: the call ends (the other leg gets BYE/CANCEL), or, for a failed gateway
    attempt, the next gateway is tried; a leg we gave up on (failover) needs nothing."""
    b = bridge.b
    if leg is bridge.a:
        side = DisconnectSide.CALLER if bridge.side == "edge" else DisconnectSide.CALLEE
        if event.side == "local":
            side = DisconnectSide.LOCAL
        bridge.finish(side, event.status, f"{event.cause} ({bridge.side} leg)")
        if b is not None and not b.disconnected:
            b.bye()
        return NONE
    if leg is b and b is not None:
        return _b_ended(bridge, b, event, now)
    return NONE


def _b_ended(bridge: Bridge, b: Call, event: Disconnected, now: float) -> Actions:
    a = bridge.a
    if bridge.answered or a.disconnected:
        side = DisconnectSide.CALLEE if bridge.side == "edge" else DisconnectSide.CALLER
        if event.side == "local":
            side = DisconnectSide.LOCAL
        bridge.finish(side, event.status, f"{event.cause} ({bridge.other} leg)")
        if not a.disconnected:
            a.bye()
        return _STOP_FAILOVER
    status = event.status if event.status is not None else 408
    outbound = bridge.outbound
    if outbound is not None:
        attempt = media_plan.fallback_on_reject(bridge, status, now)
        if attempt is not None:  # a bypassed offer refused 488: the same gateway, anchored
            records = bridge.b2bua.records
            if bridge.record and records is not None:
                retried = f"{status}: retried anchored"
                records.attempt(bridge.a.call_id, attempt.gateway.name, retried)
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
        bridge.attempt_failed(said or str(status))
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
        plan.waiting = True
        return NONE
    plan.waiting = False
    bridge.offer_from = b
    try:
        b.reinvite(plan.reoffer)
    except LocalProtocolError as exc:
        _log.info("re-INVITE to the relay not sent: %s", exc)
        bridge.offer_from = plan.reoffer = None
    return NONE


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
        plan.reoffer = None
        if event.sdp is not None:  # the b-leg's relay leg: A inbound (edge), B outbound
            plan.answer(event.sdp, Leg.A if bridge.side == "gateway" else Leg.B)
    elif event.status == 491:
        return (ArmTimer(REOFFER, now + media_plan.REOFFER_RETRY),)
    else:
        _log.info("re-INVITE to the relay refused: %s", event.status)
        plan.reoffer = None
    return NONE
