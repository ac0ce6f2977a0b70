"""Call transfer in the mediation B2BUA: REFER passed on or performed, INVITE with Replaces.

RFC 3515 §2.4 (REFER, the 202 and the implicit subscription's NOTIFYs with ``message/sipfrag``
bodies, RFC 3420), RFC 3892 (Referred-By, forwarded only with ``ForwardCallHistory``), RFC 3891
§3 (INVITE with Replaces), RFC 7092 §3.1 (a B2BUA's two dialogs), RFC 3264 §8 (the re-INVITE
that moves the transferee's media), RFC 5589 §6-§7 (blind and attended transfer flows).

A REFER arriving on one leg of a :class:`~.b2bua.Bridge` (the *referrer*'s leg) asks to move
the other leg's peer (the *transferee*) to the Refer-To target:

- **Passed on** when ``EnableReferSupport`` is on for the side the REFER would go to (toward a
  gateway: that gateway's own ``EnableReferSupport``, else ``[TrunkConfiguration]``'s; toward
  the edge: ``[TrunkConfiguration]``'s) and the transferee's peer listed REFER in the
  Allow of its INVITE or 2xx: the same REFER (Refer-To kept, Replaces included; Referred-By
  only with ``ForwardCallHistory``) goes out on the transferee's leg; its final response and
  its NOTIFYs go back to the referrer. The transferee's peer then does the transfer itself.
- **Performed** otherwise: the referrer gets 202 and NOTIFY 100; a new INVITE (offering the
  transferee's current SDP) goes to the target through the normal routing: a PSTN number
  (``tel:``, ``;user=phone``) to a gateway chosen by the outbound router with failover, any
  other URI to the edge side. When it is answered the new leg takes the referrer's place in the
  bridge, the transferee is re-INVITEd with the target's SDP (anchored media: the relay's
  far-side remote simply moves, no re-INVITE), the referrer gets NOTIFY 200 and a BYE. A failed
  attempt is reported to the referrer (NOTIFY with the failure); its call goes on. A referrer
  that hangs up while the transfer is under way does not end the transferee's call.

An INVITE with Replaces matched by the UA (``Call.replaces``) to a bridged leg takes that leg's
place: its offer goes to the other leg in a re-INVITE, the answer back in the 200, and the
replaced dialog gets a BYE. One transfer at a time per bridge; a second REFER gets 491.

Attended transfer across the B2BUA (RFC 5589 §7): a REFER passed on whose Replaces names one of
our legs (the referrer's consultation call through us) is rewritten to name that call's far
leg as the transferee's side sees it, with our Contact as Refer-To; the transferee's INVITE with
Replaces then takes the referrer's leg's place in the consultation call.

Like the call's own transitions (:mod:`.call_flow`), this sub-machine touches no leg: the
REFER's 202 or refusal, its NOTIFYs, the REFER passed on, the new leg, the transferee's
re-INVITE and the hang-ups are decisions (:mod:`.call_events`) queued on the call
(:meth:`~.b2bua.Bridge.emit`) or returned; the leg swap is the call's own
(:meth:`~.b2bua.Bridge.swap`). A leg that refuses a REFER or a re-INVITE at once comes back
through :func:`op_failed`.

Not done: a Replaces inside a *performed* transfer's Refer-To is put on the new INVITE as it is
(right when the target is reached directly, not when it names one of our own legs); an
offer-less INVITE with Replaces is refused 488; the new leg's fast-failover timer and failover
follow the outbound router, but the transfer has no overall time limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from hybridvoice.net.call import Call, CallUpdate
from hybridvoice.net.transport import NetError
from hybridvoice.sip.headers import Address
from hybridvoice.sip.refer import Refer, ReferNotify, ReferResult, Replaces, match_replaces
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
from hybridvoice.sip.uri import SipUri, TelUri, Uri

from . import routing
from .b2bua_legs import map_failure
from .call_events import (
    NONE,
    TRANSFER_FAILOVER,
    Actions,
    Answer,
    ArmTimer,
    CancelTimer,
    Hangup,
    Notify,
    PassRefer,
    PlaceLeg,
    ReferReply,
    Reject,
    SendOffer,
    SwapLeg,
)
from .headers_policy import HeaderPolicy, e164_request_uri, gateway_from
from .translate import NumberError, number_of

if TYPE_CHECKING:
    from .b2bua import B2BUA, Bridge

__all__ = [
    "EVENTS",
    "TransferState",
    "intercept",
    "op_failed",
    "peer_supports_refer",
    "placed",
    "replace",
    "route_of",
    "timer_fired",
]

_log = logging.getLogger("hybridvoice.mediation.transfer")

#: The call events only this module handles.
EVENTS: Final = (Refer, ReferResult, ReferNotify)
_SDP_EVENTS: Final = (Ringing, EarlyMedia, Answered, Confirmed, Offer, OfferAnswered)
_STOP_FAILOVER: Final[Actions] = (CancelTimer(TRANSFER_FAILOVER),)


@dataclass(slots=True)
class _Passthrough:
    """Our REFER on ``other`` carries the peer's REFER received on ``origin``."""

    origin: Call
    other: Call
    subscription: bool


@dataclass(slots=True)
class _Performed:
    """The mediation role transfers ``transferee`` to a new call for ``referrer``."""

    referrer: Call
    transferee: Call
    refer: Refer
    new: Call | None = None
    outbound: routing.OutboundCall | None = None
    referrer_gone: bool = False


@dataclass(slots=True)
class _Replacing:
    """An INVITE with Replaces (``new``) takes the place of ``replaced``; ``other`` is being
    re-INVITEd with its offer."""

    new: Call
    replaced: Call
    other: Call
    replaced_gone: bool = False


@dataclass(slots=True)
class TransferState:
    """What a bridge holds for transfers: the one under way, and routed legs to account."""

    active: _Passthrough | _Performed | _Replacing | None = None
    routed: dict[int, routing.OutboundCall] = field(default_factory=dict)  # id(leg) -> routing
    #: id(leg) -> the leg an INVITE with Replaces naming ``leg`` really replaces (a Replaces
    #: we translated while passing a REFER on: attended transfer across the B2BUA)
    mapped: dict[int, Call] = field(default_factory=dict)

    def abandon(self) -> None:
        """Give up the transfer under way (its bridge failed; the bridge ends its legs and
        stops its timers): the gateway attempt's routing slot is released."""
        active, self.active = self.active, None
        if isinstance(active, _Performed) and active.outbound is not None:
            active.outbound.ended()


# --- decisions ------------------------------------------------------------------------------
def peer_supports_refer(b2b: B2BUA, bridge: Bridge, leg: Call) -> bool:
    """May a REFER go out on ``leg``? ``EnableReferSupport`` of the side it goes to, and REFER
    in the peer's Allow. Toward a gateway that gateway's own setting decides
    (:meth:`Gateway.supports_refer <hybridvoice.cms.settings.Gateway.supports_refer>`: its
    ``EnableReferSupport``, else ``[TrunkConfiguration]``); toward the edge side the
    ``[TrunkConfiguration]`` value (a gateway's setting says what *it* accepts, not what the
    cloud side does)."""
    trunk = b2b.trunk_config
    gateway = bridge.gateway
    if gateway is not None and _faces_gateway(b2b, leg):
        enabled = gateway.config.supports_refer(trunk)
    else:
        enabled = trunk.enable_refer_support
    return enabled and "REFER" in leg.session.peer_allow


def _faces_gateway(b2b: B2BUA, leg: Call) -> bool:
    """Is ``leg`` a leg of the gateway-side UA (its peer a gateway)? (Not the bridge's side:
    a performed transfer can put a gateway leg where the edge leg was.)"""
    return leg in b2b.gateway_ua.calls


def route_of(uri: Uri) -> str | None:
    """The PSTN number a Refer-To target names (``tel:`` or ``;user=phone``), None for a
    cloud user (the edge side)."""
    if isinstance(uri, TelUri):
        return uri.number
    if isinstance(uri, SipUri) and uri.param("user") == "phone":
        return number_of(uri)
    return None


def _policy(b2b: B2BUA, bridge: Bridge) -> HeaderPolicy:
    return HeaderPolicy() if bridge.gateway is None else b2b.policy(bridge.gateway)


def _other(bridge: Bridge, leg: Call) -> Call | None:
    return bridge.b if leg is bridge.a else bridge.a


def _last_sdp(call: Call) -> bytes | None:
    """The latest SDP the leg's peer sent (its answer or offer), else its INVITE's."""
    for event in reversed(call.history):
        if isinstance(event, _SDP_EVENTS) and event.sdp:
            return event.sdp
    return (call.invite.body or None) if call.incoming else None


# --- the bridge's hook ------------------------------------------------------------------------
def intercept(bridge: Bridge, call: Call, event: CallUpdate, now: float) -> Actions | None:
    """Handle ``event`` of ``call`` if it belongs to a transfer: its decisions (timers), or
    None when the bridge's own transition must see it. Cheap when no transfer is under way."""
    state = bridge.transfer
    if state is None and not isinstance(event, EVENTS):
        return None
    state = bridge.transfers()
    if isinstance(event, Disconnected):
        outbound = state.routed.pop(id(call), None)
        if outbound is not None:
            outbound.ended()
    active = state.active
    if isinstance(event, Refer):
        if active is None:
            return _on_refer(bridge, state, call, event, now)
        return (ReferReply(call, 491),)
    if isinstance(active, _Passthrough):
        consumed = _passthrough_event(bridge, state, active, call, event)
    elif isinstance(active, _Performed):
        return _performed_event(bridge, state, active, call, event, now=now)
    elif isinstance(active, _Replacing):
        consumed = _replacing_event(bridge, state, active, call, event)
    else:
        consumed = isinstance(event, EVENTS)
    return NONE if consumed else None


def _on_refer(
    bridge: Bridge, state: TransferState, origin: Call, refer: Refer, now: float
) -> Actions:
    b2b = bridge.b2bua
    other = _other(bridge, origin)
    if other is None or other.state is not State.CONFIRMED or bridge.finished:
        return (ReferReply(origin, 603),)
    if peer_supports_refer(b2b, bridge, other):
        forward = _policy(b2b, bridge).forward_call_history
        refer_to, replaces = refer.refer_to, refer.replaces
        if replaces is not None:
            refer_to, replaces = _map_replaces(b2b, origin, refer_to, replaces)
        state.active = _Passthrough(origin, other, refer.subscription)
        referred_by = refer.referred_by if forward else None
        return (PassRefer(other, refer_to, replaces, referred_by, refer.subscription, origin),)
    performed = _Performed(origin, other, refer)
    state.active = performed
    bridge.emit(ReferReply(origin, 202))
    return _place(bridge, state, performed, None, now)


def op_failed(bridge: Bridge, action: SendOffer | PassRefer, error: str) -> Actions:
    """A leg refused a transfer's decision at once: a REFER not passed on (the referrer
    hears 491), an INVITE with Replaces whose re-INVITE could not go (491 to it), or the
    transferee's re-INVITE to the target (logged: its media stays)."""
    state = bridge.transfer
    active = None if state is None else state.active
    if isinstance(action, PassRefer):
        _log.info("REFER not passed on: %s", error)
        if state is not None and isinstance(active, _Passthrough) and active.other is action.leg:
            state.active = None
        return (ReferReply(action.origin, 491),)
    if action.why == "replaces" and action.origin is not None:
        _log.info("Replaces: re-INVITE not sent: %s", error)
        if state is not None and isinstance(active, _Replacing) and active.new is action.origin:
            state.active = None
        return (Reject(action.origin, 491),)
    _log.info("re-INVITE on %s not done: %s", action.leg.call_id, error)
    return NONE


# --- passing the REFER on -------------------------------------------------------------------
def _map_replaces(
    b2b: B2BUA, origin: Call, refer_to: Address, replaces: Replaces
) -> tuple[Address, Replaces]:
    """Attended transfer across the B2BUA (RFC 5589 §7): a Replaces naming one of our legs
    (the referrer's dialog with us for the target's call) means nothing on the other side.
    It becomes a Replaces naming that call's far leg as the transferee's side sees us, and
    the Refer-To our Contact there; the INVITE with Replaces that follows takes the place of
    the referrer's leg (``TransferState.mapped``). Any other Replaces passes unchanged."""
    ua = b2b.edge_ua if origin in b2b.edge_ua.calls else b2b.gateway_ua
    leg = match_replaces(ua.dialogs, replaces)
    found = next((b for b in b2b.bridges if leg is not None and leg in (b.a, b.b)), None)
    if found is None or leg is None:
        return refer_to, replaces
    far = _other(found, leg)
    dialog = None if far is None else far.session.dialog
    if far is None or dialog is None or far.disconnected:
        return refer_to, replaces
    found.transfers().mapped[id(far)] = leg
    ours = dialog.id  # the INVITE's recipient is us: to-tag = our tag (RFC 3891 §3)
    return Address(dialog.local_contact.uri), Replaces(
        ours.call_id, ours.local_tag, ours.remote_tag
    )


def _passthrough_event(
    bridge: Bridge, state: TransferState, active: _Passthrough, call: Call, event: CallUpdate
) -> bool:
    origin, other = active.origin, active.other
    if isinstance(event, ReferResult) and call is other:
        if 200 <= event.status < 300:
            bridge.emit(ReferReply(origin, 202))
            if not active.subscription:
                state.active = None
        else:
            status = event.status if event.status >= 300 else 500
            bridge.emit(ReferReply(origin, status))
            state.active = None
        return True
    if isinstance(event, ReferNotify) and call is other:
        if event.status > 100 or event.final:
            bridge.emit(Notify(origin, event.status))
        if event.final:
            state.active = None
        return True
    if isinstance(event, Disconnected) and call in (origin, other):
        state.active = None
    return isinstance(event, EVENTS)


# --- performing the transfer ------------------------------------------------------------------
def _place(
    bridge: Bridge,
    state: TransferState,
    performed: _Performed,
    outcome: routing.Outcome | None,
    now: float,
) -> Actions:
    """Send the new INVITE to the target: the edge side, or a gateway (with failover: the
    fast-failover timer at the attempt's deadline)."""
    b2b = bridge.b2bua
    refer, transferee = performed.refer, performed.transferee
    target = refer.refer_to.uri
    if isinstance(target, SipUri) and target.headers:
        target = target._replace(headers=())
    sdp = bridge.sdp(_last_sdp(transferee), transferee, offer=True)
    peer = transferee.invite.from_ if transferee.incoming else transferee.invite.to
    peer_number = (number_of(peer.uri) if peer is not None else None) or "anonymous"
    headers: list[tuple[str, object]] = []
    if refer.replaces is not None:
        headers.append(("Replaces", str(refer.replaces)))
    number = route_of(target)
    forward = _policy(b2b, bridge).forward_call_history
    if number is None:  # a cloud user: the edge side
        if isinstance(target, TelUri):
            target = e164_request_uri(target.number, b2b.edge_domain)
        if forward and refer.referred_by is not None:
            headers.append(("Referred-By", refer.referred_by))
        from_ = f"<sip:{peer_number}@{b2b.edge_domain}>"
        return (
            PlaceLeg("edge", target, from_, Address(target), sdp, b2b.edge_target, headers,
                     "transfer"),
        )  # fmt: skip
    if outcome is None:
        performed.outbound, outcome = b2b.router.start(number, now)
    if isinstance(outcome, routing.NoGatewayLeft):
        _transfer_failed(bridge, state, performed, outcome.status)
        return NONE
    gateway = outcome.gateway
    try:
        gw_target = b2b.target(gateway)
    except NetError as exc:
        _log.info("%s: %s", gateway.name, exc)
        assert performed.outbound is not None
        return _place(bridge, state, performed, performed.outbound.transport_error(now), now)
    translate = b2b.translator(gateway)
    try:
        callee = translate.outbound_callee(number)
    except NumberError:
        callee = number
    caller = translate.outbound_caller(peer_number)
    if b2b.policy(gateway).forward_call_history and refer.referred_by is not None:
        headers.append(("Referred-By", refer.referred_by))
    leg = PlaceLeg(
        "gateway", gw_target.uri._replace(user=callee),
        gateway_from(gw_target.to, caller, None), Address(gw_target.to._replace(user=callee)),
        sdp, gw_target.destination, headers, "transfer",
    )  # fmt: skip
    if outcome.deadline is None:
        return (leg,)
    return (leg, ArmTimer(TRANSFER_FAILOVER, outcome.deadline))


def placed(bridge: Bridge, new: Call) -> None:
    """The adapter placed the performed transfer's leg to its target."""
    state = bridge.transfer
    if state is not None and isinstance(state.active, _Performed):
        state.active.new = new


def timer_fired(bridge: Bridge, now: float) -> Actions:
    """The fast-failover timer of a performed transfer's gateway attempt: no 18x/final in
    time, so it is given up (CANCEL) and the next gateway tried."""
    state = bridge.transfer
    performed = None if state is None else state.active
    if state is None or not isinstance(performed, _Performed):
        return NONE
    new, outbound = performed.new, performed.outbound
    if new is None or outbound is None:
        return NONE
    outcome = outbound.timer_fired(now)
    if outcome is None:  # stale, or fired before its deadline (then armed again for it)
        deadline = outbound.deadline
        if deadline is None or outbound.current is None or now >= deadline:
            return NONE
        return (ArmTimer(TRANSFER_FAILOVER, deadline),)
    performed.new = None  # its end (after the CANCEL) is no longer ours
    bridge.emit(Hangup(new))
    return _place(bridge, state, performed, outcome, now)


def _performed_event(
    bridge: Bridge, state: TransferState, performed: _Performed, call: Call, event: CallUpdate,
    *, now: float,
) -> Actions | None:  # fmt: skip
    new, referrer, transferee = performed.new, performed.referrer, performed.transferee
    if call is new and new is not None:
        if isinstance(event, Ringing | EarlyMedia):
            if performed.outbound is not None:
                status = 180 if isinstance(event, Ringing) else 183
                performed.outbound.provisional(status, now)
            if not performed.referrer_gone:
                bridge.emit(Notify(referrer, 180 if isinstance(event, Ringing) else 183))
            return _STOP_FAILOVER
        if isinstance(event, Answered):
            _connected(bridge, state, performed, new, event.sdp, now=now)
            return _STOP_FAILOVER
        if isinstance(event, Disconnected):
            return _STOP_FAILOVER + _new_failed(bridge, state, performed, event, now)
        return NONE
    if call is referrer and isinstance(event, Disconnected):
        performed.referrer_gone = True  # the transferee's call goes on with the new leg
        return NONE
    if call is transferee and isinstance(event, Disconnected):
        state.active = None  # the call ends: its end stops the transfer's timer too
        if performed.outbound is not None:  # the attempt's gateway slot goes back
            performed.outbound.ended()
        if new is not None and not new.disconnected:
            bridge.emit(Hangup(new))
        return None
    return NONE if isinstance(event, EVENTS) else None


def _connected(
    bridge: Bridge, state: TransferState, performed: _Performed, new: Call, sdp: bytes | None,
    *, now: float,
) -> None:  # fmt: skip
    """The target answered: the new leg replaces the referrer (the call applies that
    decision, :class:`~.call_events.SwapLeg`); media moves; referrer told."""
    outbound = performed.outbound
    if outbound is not None:
        outbound.final(200, now)
        state.routed[id(new)] = outbound
    state.active = None
    referrer, transferee = performed.referrer, performed.transferee
    bridge.swap(SwapLeg(referrer, new))
    body = bridge.sdp(sdp, new)  # anchored: the relay's far side now points at the target
    if bridge.relay_call is None and body is not None and not transferee.disconnected:
        bridge.emit(SendOffer(transferee, body, why="transfer"))
    if not referrer.disconnected:
        bridge.emit(Notify(referrer, 200), Hangup(referrer))


def _new_failed(
    bridge: Bridge, state: TransferState, performed: _Performed, event: Disconnected, now: float
) -> Actions:
    status = event.status if event.status is not None else 408
    outbound = performed.outbound
    if outbound is not None:
        outcome = outbound.final(status, now)
        if isinstance(outcome, routing.Attempt):
            return _place(bridge, state, performed, outcome, now)
        if isinstance(outcome, routing.NoGatewayLeft):
            status = outcome.status
    _transfer_failed(bridge, state, performed, map_failure(status))
    return NONE


def _transfer_failed(
    bridge: Bridge, state: TransferState, performed: _Performed, status: int
) -> None:
    """The target cannot be reached: the referrer hears it (RFC 5589 §6.1: it may resume); a
    referrer already gone leaves nobody to talk to the transferee."""
    if performed.outbound is not None:
        performed.outbound.ended()
    state.active = None
    if performed.referrer_gone or performed.referrer.disconnected:
        if not performed.transferee.disconnected:
            bridge.emit(Hangup(performed.transferee))
        return
    bridge.emit(Notify(performed.referrer, status))


# --- INVITE with Replaces (RFC 3891) --------------------------------------------------------
def replace(b2b: B2BUA, new: Call, named: Call | None) -> tuple[Bridge | None, Actions]:
    """``new`` (an INVITE with Replaces) takes the place of the bridged leg it ``named``:
    the bridge that takes ``new``'s events from now on (None: refused) and the decisions."""
    bridge = next((b for b in b2b.bridges if named is b.a or named is b.b), None)
    if bridge is None or named is None or not bridge.answered or bridge.finished:
        return None, (Reject(new, 481),)
    state = bridge.transfers()
    replaced: Call = named
    mapped = state.mapped.pop(id(named), None)
    if mapped is not None and mapped in (bridge.a, bridge.b) and not mapped.disconnected:
        replaced = mapped  # our own translated Replaces: the referrer's leg goes
    other = _other(bridge, replaced)
    if other is None or other.disconnected or state.active is not None:
        return None, (Reject(new, 491 if state.active is not None else 481),)
    offer = new.invite.body or None
    if offer is None:
        return None, (Reject(new, 488, text="an INVITE with Replaces needs an offer here"),)
    body = bridge.sdp(offer, replaced, offer=True)  # SdpError: the UA refuses it, nothing held
    state.active = _Replacing(new, replaced, other)
    return bridge, (SendOffer(other, body, origin=new, why="replaces"),)


def _replacing_event(
    bridge: Bridge, state: TransferState, active: _Replacing, call: Call, event: CallUpdate
) -> bool:
    new, replaced, other = active.new, active.replaced, active.other
    if call is other and isinstance(event, OfferAnswered):
        state.active = None
        bridge.swap(SwapLeg(replaced, new))
        bridge.emit(Answer(new, bridge.sdp(event.sdp, other)))
        if not replaced.disconnected:
            bridge.emit(Hangup(replaced))
        return True
    if call is other and isinstance(event, OfferRejected):
        state.active = None
        bridge.emit(Reject(new, event.status if event.status >= 300 else 488))
        if active.replaced_gone and not other.disconnected:
            bridge.emit(Hangup(other))
        return True
    if call is new and isinstance(event, Disconnected):
        state.active = None  # cancelled meanwhile
        if active.replaced_gone and not other.disconnected:
            bridge.emit(Hangup(other))
        return True
    if call is replaced and isinstance(event, Disconnected):
        active.replaced_gone = True
        return True
    if call is other and isinstance(event, Disconnected):
        state.active = None
        bridge.emit(Reject(new, 487))
        return False
    return call is new or isinstance(event, EVENTS)
