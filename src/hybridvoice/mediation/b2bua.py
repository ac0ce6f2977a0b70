"""The mediation role's B2BUA: two independent dialogs per call bridged by call-control events.

RFC 7092 §3.1 (a signalling-only B2BUA with media anchoring: every call is two UAs, each
with its own Call-ID, tags and CSeq, RFC 3261 §12), RFC 3261 §13 (INVITE sessions), §9
(CANCEL on the caller leg -> CANCEL of the callee leg), §14 and RFC 3311 (re-INVITE and UPDATE:
an offer on one leg becomes an offer on the other, its answer goes back, RFC 3264 §8), §15
(BYE from either side), RFC 4028 (session timers, kept per leg by each session), RFC 3326
(a Reason header on failures we generate) and §21.5.4/§20.33 (503 with Retry-After when over
the call limit or draining).

Each leg is a :class:`~hybridvoice.net.call.Call` of one of two UAs: the *edge* UA (the cloud
side) and the *gateway* UA (PSTN gateways, SBCs, IP-PBXs). A :class:`Bridge` is the
``CallHandler`` of both legs and passes the SIP-independent events (``Ringing``,
``EarlyMedia``, ``Answered``, ``Offer``, ``OfferAnswered``, ``OfferRejected``,
``Disconnected``) across; nothing SIP-specific crosses. The bridge is the call's state
machine: :meth:`Bridge.dispatch` sorts each event once by where it came from (the caller leg
``a``, the callee leg ``b``, the call itself) and :data:`.call_state.TABLE` (phase, event
type, source) gives its handler in :mod:`.call_flow`. Handlers never touch a leg, a timer, the
relay or the record store: every decision (ring, answer, offer, hang up, NOTIFY, a record
write, a timer, relay ports) is queued on the call (:meth:`Bridge.emit`) or returned, and the
one adapter, :mod:`.adapter`, carries out each event's decisions in order, feeding timer
firings, the relay's answer and a leg's refusal back as events.

Outbound (edge -> gateway): the :class:`~.routing.OutboundRouter` picks a gateway; on a
failover code, a transport error (seen as a local 408) or no 18x/final in the fast-failover
time the pending INVITE is cancelled and the next gateway tried; when none is left the caller
gets the router's status (503) with a Reason. A TLS gateway that could not be reached (a
local 408) is named from the transport's own words (``Disconnected.detail``) so the attempt's
outcome and the Reason name the cause (an untrusted certificate, a name mismatch). Inbound
(gateway -> edge): only from a configured gateway's address (else 403), numbers translated per the
gateway's rules, the Request-URI in + E.164 toward the edge's next hop.

Transfer (:mod:`.transfer`, RFC 3515, RFC 3891): a REFER is passed on or performed per
``EnableReferSupport``; an INVITE with Replaces takes a bridged leg's place.

Media (:mod:`.media_plan`): with a relay engine the call is anchored (SDP rewritten to the
relay's ports, PCMU <-> PCMA transcoded when the legs share no codec) unless
:func:`~.bypass.decide_bypass` says bypass, on the client's offer (outbound) or on its answer
(inbound, when bypass is possible: the late anchoring re-INVITEs the edge leg); without a
relay engine SDP passes through (recorded as bypass, "no relay engine"). A bypassed outbound
call whose gateway refuses the offer with 488, or answers with no codec of it, is anchored
instead (reason "codec mismatch", the relay transcoding G.711):
:func:`.media_plan.fallback_on_reject` and :func:`.media_plan.fallback_on_answer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from hybridvoice.cms.settings import TrunkConfiguration
from hybridvoice.media import CallStats, Leg
from hybridvoice.net.call import Call, CallUpdate
from hybridvoice.net.log_context import CALL
from hybridvoice.net.relay import RelayCall, RelayEngine
from hybridvoice.net.transport import Destination, via_host
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.message import Request
from hybridvoice.sip.sdp import SdpError
from hybridvoice.sip.session import Disconnected, State
from hybridvoice.sip.transaction import ServerTransaction
from hybridvoice.sip.uri import SipUri

from . import gateway_tls, media_plan, routing, transfer
from .adapter import LoopAdapter
from .b2bua_legs import failure_headers, media_counters, reason, warning
from .bypass import BypassDecision, BypassPolicy
from .call_events import (
    FROM_A,
    FROM_B,
    FROM_CALL,
    Action,
    Actions,
    Adapter,
    GatewayDown,
    Hangup,
    LegAction,
    LegOpFailed,
    Phase,
    PlaceLeg,
    RecordOp,
    Reject,
    RelayBound,
    RelayFailed,
    ReleaseLeg,
    ReleaseRelay,
    Start,
    SwapLeg,
    Then,
    TimerFired,
    WriteRecord,
)
from .call_state import TABLE
from .call_tally import CallTally
from .headers_policy import HeaderPolicy
from .health import destination_of
from .media_plan import INBOUND_PENDING, MediaPlan, RecentMedia
from .media_srtp import SrtpConfig
from .records import CallRecordStore, Direction, DisconnectSide, MediaCounters
from .translate import NumberTranslator
from .trunks import GatewayState, TrunkTable, normalise_ip

__all__ = ["B2BUA", "B2BUAStats", "Bridge"]

_log = logging.getLogger("hybridvoice.mediation.b2bua")

Side = Literal["edge", "gateway"]

_START: Final = Start()


@dataclass(slots=True)
class B2BUAStats:
    """Counters for status pages and benchmarks."""

    calls: int = 0
    answered: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    failovers: int = 0
    #: calls a failure ended (:meth:`Bridge.abort`), by cause: ``sdp`` or ``internal``
    failures: dict[str, int] = field(default_factory=dict)
    #: admitted calls ended by result, and the setup times of the answered ones (/metrics)
    tally: CallTally = field(default_factory=CallTally)


class _Target(NamedTuple):
    """A gateway's next hop, Request-URI (user filled in per call) and To URI (its host is
    also the From's, :func:`.headers_policy.gateway_from`)."""

    destination: Destination
    uri: SipUri
    to: SipUri


class _Side:
    """The application of one UA: new INVITEs go to the B2BUA with the side they came in."""

    __slots__ = ("b2bua", "side")

    def __init__(self, b2bua: B2BUA, side: Side) -> None:
        self.b2bua = b2bua
        self.side = side

    def on_incoming_call(self, call: Call) -> None:
        self.b2bua.incoming(call, self.side)

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False


class B2BUA:
    """The mediation B2BUA over an edge-side and a gateway-side :class:`UserAgent`.

    ``edge_target`` is the next hop of inbound calls (the edge role) and ``edge_domain`` the
    host of their Request-URI. ``relay`` and ``records`` are optional; ``bypass`` is the
    tenant's network configuration (None: media bypass disabled). ``adapter`` carries out
    the calls' decisions (default: on the running event loop, :class:`.adapter.LoopAdapter`).
    """

    def __init__(
        self,
        *,
        edge_ua: UserAgent,
        gateway_ua: UserAgent,
        trunks: TrunkTable,
        router: routing.OutboundRouter,
        admission: routing.CallAdmission,
        trunk_config: TrunkConfiguration,
        edge_target: Destination,
        edge_domain: str,
        relay: RelayEngine | None = None,
        bypass: BypassPolicy | None = None,
        records: CallRecordStore | None = None,
        adapter: Adapter | None = None,
        srtp: SrtpConfig | None = None,
    ) -> None:
        self.edge_ua = edge_ua
        self.gateway_ua = gateway_ua
        self.trunks = trunks
        self.router = router
        self.admission = admission
        self.trunk_config = trunk_config
        self.edge_target = edge_target
        self.edge_domain = edge_domain
        self.relay = relay
        self.bypass = bypass or BypassPolicy(enabled=False)
        self.records = records
        self.srtp = srtp  # SDES-SRTP per leg on anchored calls (None: crypto lines untouched)
        self.stats = B2BUAStats()
        self.recent = RecentMedia()  # relay counters of ended anchored calls
        self.bridges: set[Bridge] = set()
        self._policies: dict[str, HeaderPolicy] = {}
        self._translators: dict[str, NumberTranslator] = {}
        self._targets: dict[str, _Target] = {}
        self.adapter: Adapter = LoopAdapter() if adapter is None else adapter
        edge_ua.application = _Side(self, "edge")
        gateway_ua.application = _Side(self, "gateway")

    def recent_media(self, call_id: str) -> CallStats | None:
        """The relay counters of a live or recently ended anchored call (a-leg Call-ID)."""
        live = None if self.relay is None else self.relay.calls.get(call_id)
        return live.stats() if live is not None else self.recent.get(call_id)

    # --- helpers used by bridges -----------------------------------------------------------
    def policy(self, gateway: GatewayState) -> HeaderPolicy:
        policy = self._policies.get(gateway.name)
        if policy is None:
            policy = HeaderPolicy.for_gateway(gateway.config, self.trunk_config)
            self._policies[gateway.name] = policy
        return policy

    def target(self, gateway: GatewayState) -> _Target:
        """Where and how INVITEs to ``gateway`` go (built once per gateway)."""
        found = self._targets.get(gateway.name)
        if found is None:
            destination = destination_of(gateway)  # NetError when it has no address
            cfg = gateway.config
            params = () if cfg.protocol == "UDP" else (("transport", cfg.protocol.lower()),)
            uri = SipUri(host=via_host(destination.host), port=cfg.port, params=params)
            self.gateway_ua.endpoint.transport_for(destination)  # NetError: none to reach it
            found = _Target(destination, uri, uri._replace(port=None, params=()))
            self._targets[gateway.name] = found
        return found

    def gateway_changed(self, name: str) -> None:
        """Gateway ``name`` got a new configuration at run time: build its header policy,
        target and translator afresh on its next call."""
        for cache in (self._policies, self._targets, self._translators):
            cache.pop(name, None)

    def gateway_down(self, name: str, reason: str) -> None:
        """Gateway ``name`` was marked down: every call with an attempt pending on it moves
        to the next gateway (:func:`.call_flow.gateway_down`); answered calls stay."""
        for bridge in tuple(self.bridges):
            bridge.guard(bridge.dispatch, None, GatewayDown(name, reason))

    def translator(self, gateway: GatewayState) -> NumberTranslator:
        found = self._translators.get(gateway.name)
        if found is None:
            found = self._translators[gateway.name] = NumberTranslator.for_gateway(gateway.config)
        return found

    def now(self) -> float:
        """The clock the calls' decisions are taken on (the gateway UA's)."""
        return self.gateway_ua.now()

    def refuse(
        self, call: Call, status: int, text: str, retry_after: int | None = None,
        warning: tuple[str, str] | None = None,
    ) -> Reject:  # fmt: skip
        """The decision refusing ``call`` with ``status`` and a Reason of ``text`` (counted)."""
        headers = [reason(status, text)]
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        if warning is not None:
            headers.append(warning)
        self.stats.refused[status] = self.stats.refused.get(status, 0) + 1
        return Reject(call, status, tuple(headers))

    # --- new calls --------------------------------------------------------------------------
    def incoming(self, call: Call, side: Side) -> None:
        """A new INVITE on ``side`` passed the §8.2 checks: refuse it (403, 503) or bridge it."""
        gateway: GatewayState | None = None
        if side == "gateway":
            source = "" if call.source is None else call.source.host
            gateway = self.trunks.gateway_for_source(normalise_ip(source))
            if gateway is None:
                refusal = self.refuse(call, 403, f"{source} is not a configured gateway")
                self.adapter.execute(None, (refusal,))
                return
            tls_refused = gateway_tls.refuse_inbound(gateway, call.source)
            if tls_refused is not None:
                self.adapter.execute(None, (self.refuse(call, 403, tls_refused),))
                return
        if call.replaces is not None:  # RFC 3891: it takes a bridged leg's place
            named, call.replaces = call.replaces, None  # no reference kept to that leg
            found, actions = transfer.replace(self, call, named)
            if found is not None:
                call.handler = found
            self.adapter.execute(found, actions)
            return
        bridge = Bridge(self, call, side, gateway)
        self.bridges.add(bridge)
        bridge.guard(bridge.dispatch, None, _START)


class Bridge:
    """One call: the incoming leg ``a``, the outgoing leg ``b``, and what joins them. Its
    ``phase`` (:class:`.call_events.Phase`) picks the handler of each event
    (:data:`.call_state.TABLE`)."""

    __slots__ = (
        "_out",
        "a",
        "admitted",
        "answered",
        "b",
        "b2bua",
        "callee",
        "caller",
        "decision",
        "display",
        "gateway",
        "late_offer",
        "offer_from",
        "outbound",
        "phase",
        "plan",
        "record",
        "relay_call",
        "side",
        "started",
        "transfer",
    )  # fmt: skip

    def __init__(self, b2bua: B2BUA, a: Call, side: Side, gateway: GatewayState | None) -> None:
        self.b2bua = b2bua
        self.a = a
        self.side: Side = side  # where the a-leg came in
        self.gateway = gateway  # inbound: the source gateway; outbound: the connected one
        self.b: Call | None = None
        self.phase = Phase.SETUP
        self.outbound: routing.OutboundCall | None = None
        self.relay_call: RelayCall | None = None
        self.plan: MediaPlan | None = None  # anchored: SDP rewriting and transcoding
        self.decision: BypassDecision | None = None
        self.offer_from: Call | None = None  # the leg whose mid-call offer is pending
        self.answered = False  # the callee answered (kept once ENDED: how the slot is freed)
        self.started = 0.0  # when it was admitted (the B2BUA's clock): its setup time
        self.late_offer = False  # the b-leg's 2xx carried the offer (offer-less INVITE)
        self.transfer: transfer.TransferState | None = None  # REFER / Replaces (transfer.py)
        self.admitted = False  # holds a call slot (admission): released by finish
        self.record = False  # its call record is open: closed by finish
        self.caller = self.callee = ""
        self.display: str | None = None  # outbound: the caller's display name, for the gateway
        self._out: list[Action] = []  # decisions of the event being handled, in order
        a.handler = self

    @property
    def finished(self) -> bool:
        """Everything the call held is given back (:attr:`Phase.ENDED`)."""
        return self.phase is Phase.ENDED

    # --- the one door in: every entry into a bridge runs through guard ------------------------
    def guard(self, step: Callable[..., None], *args: object) -> None:
        """Run ``step`` (the new call, a leg's event, a timer, the relay's answer) for this
        call. Whatever it raises ends this call and only this call (:meth:`abort`): nothing
        escapes to the UA, the loop, or the other calls. Every way into a bridge goes through
        here: new calls (:meth:`B2BUA.incoming`), leg events (:meth:`on_call_event`), and what
        the adapter feeds back (:meth:`timer_fired`, :meth:`relay_bound`, :meth:`relay_failed`;
        its tasks' failures reach :meth:`abort`)."""
        token = CALL.set(self.a.call_id)  # every line logged for this call names it
        try:
            step(*args)
        except Exception as exc:  # the invariant: any failure ends one call
            self.abort(exc)
        finally:
            CALL.reset(token)

    def abort(self, exc: Exception) -> None:
        """End this call because handling it failed: the caller gets a final response (488 +
        Warning for bad SDP, 500 + Reason and Warning otherwise; RFC 3261 §21.4.26, §21.5.1,
        §20.43, RFC 3326) or, once answered, a BYE with the Reason; the other legs are ended,
        the relay ports released, the record closed with the cause, the failure counted."""
        call_id = self.a.call_id
        if isinstance(exc, SdpError):
            kind, status, text = "sdp", 488, f"bad SDP: {exc}"
            _log.warning("call %s: %s", call_id, text)
        else:
            kind, status, text = "internal", 500, f"internal error ({type(exc).__name__})"
            _log.error("call %s failed", call_id, exc_info=exc)
        failures = self.b2bua.stats.failures
        failures[kind] = failures.get(kind, 0) + 1
        if self.phase is Phase.ENDED:
            return  # a step after the end (a relay release): counted and logged only
        # decisions a failing flush left: only what gives something back still goes
        self._out[:] = [x for x in self._out if isinstance(x, ReleaseRelay | ReleaseLeg)]
        try:
            self.finish(DisconnectSide.LOCAL, status, text)
        finally:
            self._end_legs(status, text)

    def _end_legs(self, status: int, text: str) -> None:
        """Every leg of an aborted call gets its end, each whatever the others do."""
        headers = failure_headers(self.a, status, text)
        if self.transfer is not None:
            self.transfer.abandon()
        b2b = self.b2bua
        legs = {self.a, *(c for ua in (b2b.edge_ua, b2b.gateway_ua) for c in ua.calls
                          if c.handler is self)}  # fmt: skip
        for leg in sorted(legs, key=lambda c: c is not self.a):  # the caller first
            if leg.disconnected:
                continue
            end: LegAction
            if leg.incoming and leg.state in (State.INCOMING, State.EARLY):
                end = self.b2bua.refuse(leg, status, text, warning=headers[1])
            else:
                end = Hangup(leg, headers[:1])
            try:  # every leg whose events come here, whatever the bridge's bookkeeping says
                b2b.adapter.execute(self, (end,))
            except Exception:  # the other legs must still be ended
                _log.exception("call %s: could not end %r", self.a.call_id, leg)

    # --- events in: legs (the UA's CallHandler hook) and the adapter's feedback -------------------
    def on_call_event(self, call: Call, event: CallUpdate) -> None:
        """A leg's event (the UA's :class:`~hybridvoice.net.call.CallHandler` hook), guarded.
        An ended leg is let go once its end is handled (the adapter drops its handler)."""
        self.guard(self.dispatch, call, event)

    def timer_fired(self, name: str, now: float) -> None:
        """The adapter: timer ``name`` fired."""
        self.guard(self.dispatch, None, TimerFired(name), now)

    def relay_bound(self, relay_call: RelayCall, then: Then) -> None:
        """The adapter: the relay call asked for is ready. A live call holds it from here on
        (whatever its handling does, the call's end gives it back)."""
        if self.phase is not Phase.ENDED:
            self.relay_call = relay_call
        self.guard(self.dispatch, None, RelayBound(relay_call, then))

    def relay_failed(self, error: str) -> None:
        """The adapter: no relay call could be had."""
        self.guard(self.dispatch, None, RelayFailed(error))

    def leg_op_failed(self, action: LegAction, error: str) -> None:
        """The adapter: a leg refused ``action`` (its session's state forbids it now)."""
        self.guard(self.dispatch, None, LegOpFailed(action, error))

    def dispatch(self, leg: Call | None, event: object, now: float | None = None) -> None:
        """One event at ``now`` (default: the B2BUA's clock): a transfer's sub-machine first
        (:func:`.transfer.intercept`), then the transition of :data:`.call_state.TABLE` for
        the phase, the event's type and where it came from (the ``a`` leg, the ``b`` leg, the
        call itself; another leg's event that no transfer took is ignored). The decisions go
        to the adapter in the order decided, the handler's queued ones (:meth:`emit`) then
        its returned ones, and last, for a leg's end, :class:`~.call_events.ReleaseLeg`. A
        failing handler's decisions made so far still go out (then :meth:`abort`)."""
        if now is None:
            now = self.b2bua.now()
        kind = type(event)
        try:
            actions = None
            if leg is not None and (self.transfer is not None or kind in transfer.EVENTS):
                actions = transfer.intercept(self, leg, event, now)  # type: ignore[arg-type]
            if actions is None:
                source = (
                    FROM_CALL if leg is None else FROM_A if leg is self.a
                    else FROM_B if leg is self.b else None
                )  # fmt: skip
                handler = None if source is None else TABLE.get((self.phase, kind, source))
                if handler is not None:
                    actions = handler(self, event, now)
            if actions:
                self._out.extend(actions)
        finally:
            if kind is Disconnected and leg is not None:
                self._out.append(ReleaseLeg(leg))
            self.flush()

    # --- what the handlers share ------------------------------------------------------------------
    def transfers(self) -> transfer.TransferState:
        """The call's transfer state (:mod:`.transfer`), made on first use."""
        state = self.transfer
        if state is None:
            state = self.transfer = transfer.TransferState()
        return state

    def emit(self, *actions: Action) -> None:
        """Queue decisions of the event being handled (the adapter gets them after it)."""
        self._out.extend(actions)

    def flush(self) -> None:
        """Hand the queued decisions to the adapter, in order."""
        out = self._out
        if out:
            actions: Actions = tuple(out)
            out.clear()
            self.b2bua.adapter.execute(self, actions)

    def write(self, op: RecordOp, call_id: str | None = None, **fields: object) -> None:
        """Queue a change of the call's record (:class:`~.call_events.WriteRecord`), if it
        has an open one: ``op`` of the store for ``call_id`` (default: the a-leg's)."""
        if self.record and self.b2bua.records is not None:
            self._out.append(WriteRecord(op, call_id or self.a.call_id, fields))

    def record_media(self, note: str = "") -> None:
        """The media decision and its reason (plus ``note``: transcoding) in the record."""
        if self.decision is not None:
            self.write("media", mode=self.decision.mode, reason=self.decision.reason + note)

    def sdp(self, body: bytes | None, from_call: Call, offer: bool = False) -> bytes | None:
        """``body`` (an answer, or an ``offer``) from ``from_call``, as it goes to the other
        leg (anchored: relay ports, G.711 transcoding, see :mod:`.media_plan`). An inbound
        bypass candidate's first answer decides its media here (:func:`.media_plan.decide_late`)."""
        if self.decision is INBOUND_PENDING and not offer and body and from_call is self.b:
            self.decision, plan = media_plan.decide_late(
                self.b2bua, self.a, self.gateway, self.relay_call, body, note=self.record_media
            )
            self.record_media()
            relay_call = self.relay_call
            if plan is not None:
                self.plan = plan
            elif relay_call is not None and self.decision.bypass:  # the ports held ready go
                self.relay_call = None
                self._out.append(ReleaseRelay(relay_call))
        plan = self.plan
        if body is None or plan is None:
            return body
        leg = Leg.A if (from_call is self.a) == (self.side == "edge") else Leg.B
        return plan.offer(body, leg) if offer else plan.answer(body, leg)

    def placed(self, action: PlaceLeg, leg: Call) -> None:
        """The adapter placed ``leg`` as ``action`` decided: the call's callee leg now (to
        its gateway, the numbers as sent, in the record) or a transfer's target leg."""
        if action.role == "transfer":
            transfer.placed(self, leg)
            return
        gateway = action.gateway
        assert gateway is not None
        self.b = leg
        self.gateway = gateway
        self.write(
            "route", gateway=gateway.name, trunk=gateway.config.host, b_call_id=leg.call_id,
            caller_translated=action.caller, callee_translated=action.callee,
        )  # fmt: skip
        self.flush()  # the route before whatever the leg's events decide

    def swap(self, decision: SwapLeg) -> None:
        """Apply a transfer's decision: ``new`` takes ``old``'s place (and its record)."""
        old, new = decision.old, decision.new
        new.handler = self
        if self.a is old:
            self.a = new
            self.write("ended", old.call_id, side=DisconnectSide.LOCAL, cause="transferred")
            direction = Direction.OUTBOUND if self.side == "edge" else Direction.INBOUND
            self.write("start", new.call_id, direction=direction, caller=self.caller,
                       callee=self.callee)  # fmt: skip
            if self.decision is not None:
                self.write("media", new.call_id, mode=self.decision.mode,
                           reason=self.decision.reason)  # fmt: skip
            self.write("answered", new.call_id)
        else:
            self.b = new
            self.write("route", b_call_id=new.call_id)

    @property
    def other(self) -> str:
        """The side the b-leg faces."""
        return "gateway" if self.side == "edge" else "edge"

    # --- the end ----------------------------------------------------------------------------
    def fail_a(self, status: int, text: str) -> None:
        """Refuse the caller with ``status`` and a Reason of ``text``; the record keeps
        ``text`` as the cause (finished first: the a-leg's own end, "rejected", comes after).
        A Warning (RFC 3261 §20.43) says it too, for the caller's user."""
        a = self.a
        self.finish(DisconnectSide.LOCAL, status, text)
        if not a.disconnected and a.state in (State.INCOMING, State.EARLY):
            self.emit(self.b2bua.refuse(a, status, text, warning=warning(a, text)))

    def finish(self, side: DisconnectSide, status: int | None, cause: str) -> None:
        """Enter :attr:`Phase.ENDED`: give back everything the call holds (its timers, call
        slot, gateway slot, relay ports) and close its record with ``cause``. Each step runs
        whatever the others do: a failing one is logged and the rest still happen (nothing
        may leak). The end is carried out at once (the adapter), after the decisions queued
        before it: a record's start goes before its end."""
        if self.phase is Phase.ENDED:
            return
        self.phase = Phase.ENDED
        self.b2bua.bridges.discard(self)
        _log.info("call %s ended: %s side, status %s, %s", self.a.call_id,
                  getattr(side, "value", side), status, cause)  # fmt: skip
        media: list[MediaCounters | None] = [None, None]
        steps: tuple[Callable[[], None], ...] = (
            lambda: self.b2bua.adapter.cancel_timers(self), self._release_slots,
            lambda: self._release_relay(media), self.flush,
            lambda: self._close_record(side, status, cause, media),
        )  # fmt: skip
        for step in steps:
            try:
                step()
            except Exception:  # the other steps must still run
                _log.exception("call %s: clean-up step failed", self.a.call_id)

    def _release_slots(self) -> None:
        b2b = self.b2bua
        if self.admitted:
            self.admitted = False
            b2b.admission.release()
            b2b.stats.tally.end(self.answered)
        if self.outbound is not None:
            self.outbound.ended()
        elif self.gateway is not None and self.b is not None:
            b2b.trunks.call_ended(self.gateway.name, failed=not self.answered)

    def _release_relay(self, media: list[MediaCounters | None]) -> None:
        """The relay call's ports go back to the pool (the adapter); its counters are kept."""
        b2b = self.b2bua
        relay_call, self.relay_call = self.relay_call, None
        if relay_call is None:
            return
        b2b.recent.add(self.a.call_id, relay_call.stats())
        media[:] = media_counters(relay_call, self.side)
        b2b.adapter.release_relay(self, relay_call)

    def _close_record(
        self, side: DisconnectSide, status: int | None, cause: str,
        media: list[MediaCounters | None],
    ) -> None:  # fmt: skip
        if self.record and self.b2bua.records is not None:
            self.record = False
            fields = {"side": side, "sip_status": status, "cause": cause,
                      "a_media": media[0], "b_media": media[1]}  # fmt: skip
            self.b2bua.adapter.execute(self, (WriteRecord("ended", self.a.call_id, fields),))
