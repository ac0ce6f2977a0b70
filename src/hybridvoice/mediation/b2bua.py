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
``Disconnected``) across; nothing SIP-specific crosses.

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

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from hybridvoice.cms.settings import TrunkConfiguration
from hybridvoice.media import CallStats, Leg
from hybridvoice.net.call import Call, CallUpdate
from hybridvoice.net.loop import call_task_name
from hybridvoice.net.relay import RelayCall, RelayEngine
from hybridvoice.net.transport import Destination, NetError, via_host
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.errors import LocalProtocolError
from hybridvoice.sip.headers import Address
from hybridvoice.sip.message import Request
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
from hybridvoice.sip.transaction import ServerTransaction
from hybridvoice.sip.uri import SipUri

from . import media_plan, routing, transfer
from .b2bua_legs import (
    failure_headers,
    map_failure,
    media_counters,
    reason,
    release_leg,
    warning,
)
from .bypass import BypassDecision, BypassPolicy
from .headers_policy import HeaderPolicy, calling_party, e164_request_uri, gateway_from
from .health import destination_of
from .media_plan import INBOUND_PENDING, MediaPlan, RecentMedia
from .records import CallRecordStore, Direction, DisconnectSide, MediaCounters
from .translate import NumberError, NumberTranslator, number_of
from .trunks import GatewayState, TrunkTable, normalise_ip

__all__ = ["B2BUA", "B2BUAStats", "Bridge"]

_log = logging.getLogger("hybridvoice.mediation.b2bua")

Side = Literal["edge", "gateway"]


@dataclass(slots=True)
class B2BUAStats:
    """Counters for status pages and benchmarks."""

    calls: int = 0
    answered: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    failovers: int = 0
    #: calls a failure ended (:meth:`Bridge.abort`), by cause: ``sdp`` or ``internal``
    failures: dict[str, int] = field(default_factory=dict)


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
    tenant's network configuration (None: media bypass disabled).
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
        self.stats = B2BUAStats()
        self.recent = RecentMedia()  # relay counters of ended anchored calls
        self.bridges: set[Bridge] = set()
        self._policies: dict[str, HeaderPolicy] = {}
        self._translators: dict[str, NumberTranslator] = {}
        self._targets: dict[str, _Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
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

    def translator(self, gateway: GatewayState) -> NumberTranslator:
        found = self._translators.get(gateway.name)
        if found is None:
            found = self._translators[gateway.name] = NumberTranslator.for_gateway(gateway.config)
        return found

    def spawn(self, coro: Callable[[], Coroutine[Any, Any, None]], name: str | None = None) -> None:
        """Run an async step (relay setup) and keep a reference until it ends. ``name``
        (``call <Call-ID>``) lets the loop's exception handler say which call it was."""
        task = asyncio.get_running_loop().create_task(coro(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def refuse(
        self, call: Call, status: int, text: str, retry_after: int | None = None,
        warning: tuple[str, str] | None = None,
    ) -> None:  # fmt: skip
        headers = [reason(status, text)]
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        if warning is not None:
            headers.append(warning)
        self.stats.refused[status] = self.stats.refused.get(status, 0) + 1
        call.reject(status, headers=headers)

    # --- new calls --------------------------------------------------------------------------
    def incoming(self, call: Call, side: Side) -> None:
        """A new INVITE on ``side`` passed the §8.2 checks: refuse it (403, 503) or bridge it."""
        gateway: GatewayState | None = None
        if side == "gateway":
            source = "" if call.source is None else call.source.host
            gateway = self.trunks.gateway_for_source(normalise_ip(source))
            if gateway is None:
                self.refuse(call, 403, f"{source} is not a configured gateway")
                return
        if call.replaces is not None:  # RFC 3891: it takes a bridged leg's place
            transfer.replace(self, call)
            return
        bridge = Bridge(self, call, side, gateway)
        self.bridges.add(bridge)
        bridge.guard(bridge.start)


class Bridge:
    """One call: the incoming leg ``a``, the outgoing leg ``b``, and what joins them."""

    __slots__ = (
        "a",
        "admitted",
        "answered",
        "b",
        "b2bua",
        "callee",
        "caller",
        "decision",
        "display",
        "finished",
        "gateway",
        "late_offer",
        "offer_from",
        "outbound",
        "plan",
        "record",
        "relay_call",
        "side",
        "timer",
        "transfer",
    )  # fmt: skip

    def __init__(self, b2bua: B2BUA, a: Call, side: Side, gateway: GatewayState | None) -> None:
        self.b2bua = b2bua
        self.a = a
        self.side: Side = side  # where the a-leg came in
        self.gateway = gateway  # inbound: the source gateway; outbound: the connected one
        self.b: Call | None = None
        self.outbound: routing.OutboundCall | None = None
        self.relay_call: RelayCall | None = None
        self.plan: MediaPlan | None = None  # anchored: SDP rewriting and transcoding
        self.decision: BypassDecision | None = None
        self.offer_from: Call | None = None  # the leg whose mid-call offer is pending
        self.timer: asyncio.TimerHandle | None = None
        self.finished = False
        self.answered = False
        self.late_offer = False  # the b-leg's 2xx carried the offer (offer-less INVITE)
        self.transfer: transfer.TransferState | None = None  # REFER / Replaces (transfer.py)
        self.admitted = False  # holds a call slot (admission): released by _finish
        self.record = False  # its call record is open: closed by _finish
        self.caller = self.callee = ""
        self.display: str | None = None  # outbound: the caller's display name, for the gateway
        a.handler = self

    # --- the one door in: every entry into a bridge runs through guard ------------------------
    def guard(self, step: Callable[..., None], *args: object) -> None:
        """Run ``step`` (a set-up step, a leg's event, a timer) for this call. Whatever it
        raises ends this call and only this call (:meth:`abort`): nothing escapes to the UA,
        the loop, or the other calls. Every way into a bridge goes through here: new calls
        (:meth:`B2BUA.incoming`), leg events (:meth:`on_call_event`), timers and async steps
        (:meth:`spawn`)."""
        try:
            step(*args)
        except Exception as exc:  # the invariant: any failure ends one call
            self.abort(exc)

    def spawn(self, coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """An async step of this call (relay allocation and release), guarded as above."""

        async def guarded() -> None:
            try:
                await coro()
            except Exception as exc:  # see guard
                self.abort(exc)

        self.b2bua.spawn(guarded, name=call_task_name(self.a.call_id))

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
        if self.finished:
            return  # a step after the end (a relay release): counted and logged only
        try:
            self._finish(DisconnectSide.LOCAL, status, text)
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
            try:  # every leg whose events come here, whatever the bridge's bookkeeping says
                if leg.incoming and leg.state in (State.INCOMING, State.EARLY):
                    self.b2bua.refuse(leg, status, text, warning=headers[1])
                else:
                    leg.bye(headers=headers[:1])
            except Exception:  # the other legs must still be ended
                _log.exception("call %s: could not end %r", self.a.call_id, leg)

    # --- set-up ---------------------------------------------------------------------------
    def start(self) -> None:
        """Admission (503 + Retry-After when full or draining, RFC 3261 §21.5.4), then the
        record, the route and the media decision. Everything a call holds is taken here or
        later, under :meth:`guard`, so that :meth:`_finish` gives it all back."""
        b2b = self.b2bua
        refusal = b2b.admission.admit()
        if refusal is not None:
            self.finished = True
            b2b.bridges.discard(self)
            b2b.refuse(self.a, refusal.status, refusal.reason, refusal.retry_after)
            return
        self.admitted = True
        b2b.stats.calls += 1
        invite = self.a.invite
        if self.side == "edge":  # the number the cloud asserts: what the PSTN shows
            number, self.display = calling_party(invite)
        else:
            from_ = invite.from_
            number = number_of(from_.uri) if from_ is not None else None
        self.caller = number or "anonymous"
        self.callee = number_of(invite.uri) or ""
        if b2b.records is not None:
            direction = Direction.OUTBOUND if self.side == "edge" else Direction.INBOUND
            self.record = True  # before: a record half made by a failing start is closed too
            b2b.records.start(
                self.a.call_id, direction=direction, caller=self.caller, callee=self.callee
            )
        if self.side == "edge":
            self.outbound, outcome = b2b.router.start(self.callee, b2b.gateway_ua.now())
            gateway = outcome.gateway if isinstance(outcome, routing.Attempt) else None
            media_plan.decide_at_start(self, gateway)
            self.after_relay(lambda: self.place(outcome))
        else:
            media_plan.decide_at_start(self, self.gateway)
            self.after_relay(self._inbound)

    def record_media(self, note: str = "") -> None:
        """The media decision and its reason (plus ``note``: transcoding) in the record."""
        if self.record and self.b2bua.records is not None and self.decision is not None:
            reason = self.decision.reason + note
            self.b2bua.records.media(self.a.call_id, self.decision.mode, reason)

    def after_relay(self, step: Callable[[], None]) -> None:
        """Run ``step`` now, or after the relay call is bound when the media is anchored."""
        relay = self.b2bua.relay
        if relay is None or self.decision is None or self.decision.bypass:
            step()
            return

        async def anchored() -> None:
            try:
                self.relay_call = await relay.create_call(self.a.call_id)
            except (OSError, ValueError, NetError) as exc:
                _log.warning("no relay for %s: %s", self.a.call_id, exc)
                if not self.a.disconnected:
                    self.b2bua.refuse(self.a, 503, f"no media ports: {exc}", 10)
                return
            if self.a.disconnected or self.finished:  # cancelled or failed meanwhile
                await relay.release(self.relay_call)
                self.relay_call = None
                return
            if self.decision is not INBOUND_PENDING:
                self.plan = MediaPlan(self.relay_call, self.record_media)
            step()

        self.spawn(anchored)

    def _sdp(self, body: bytes | None, from_call: Call, offer: bool = False) -> bytes | None:
        """``body`` (an answer, or an ``offer``) from ``from_call``, as it goes to the other
        leg (anchored: relay ports, G.711 transcoding, see :mod:`.media_plan`)."""
        if self.decision is INBOUND_PENDING and not offer and body and from_call is self.b:
            media_plan.decide_late(self, body)
        plan = self.plan
        if body is None or plan is None:
            return body
        leg = Leg.A if (from_call is self.a) == (self.side == "edge") else Leg.B
        return plan.offer(body, leg) if offer else plan.answer(body, leg)

    def _inbound(self) -> None:
        b2b = self.b2bua
        gateway = self.gateway
        assert gateway is not None
        translate = b2b.translator(gateway)
        try:
            callee = translate.inbound_callee(self.callee)
            uri = e164_request_uri(callee, b2b.edge_domain)
        except NumberError as exc:
            self._fail_a(404, str(exc))
            return
        caller = translate.inbound_caller(self.caller)
        b2b.trunks.call_started(gateway.name)
        b = b2b.edge_ua.invite(
            uri,
            from_=f"<sip:{caller}@{b2b.edge_domain};user=phone>",
            to=f"<{uri}>",
            sdp=self._sdp(self.a.invite.body or None, self.a, offer=True),
            destination=b2b.edge_target,
            headers=b2b.policy(gateway).forwarded(self.a.invite),
            handler=self,
        )
        self._set_b(b, gateway, callee, caller)

    def place(self, outcome: routing.Outcome) -> None:
        """Act on the router's outcome: place an attempt, or fail the caller."""
        b2b = self.b2bua
        if isinstance(outcome, routing.NoGatewayLeft):
            self._fail_a(outcome.status, outcome.cause)
            return
        if self.a.disconnected:
            assert self.outbound is not None
            self.outbound.ended()
            return
        gateway = outcome.gateway
        translate = b2b.translator(gateway)
        callee = translate.outbound_callee(self.callee)
        caller = translate.outbound_caller(self.caller)
        try:
            target = b2b.target(gateway)
        except NetError as exc:
            assert self.outbound is not None
            self.place(self.outbound.transport_error(b2b.gateway_ua.now()))
            _log.info("%s: %s", gateway.name, exc)
            return
        uri = target.uri._replace(user=callee)
        b = b2b.gateway_ua.invite(
            uri,
            from_=gateway_from(target.to, caller, self.display),
            to=Address(target.to._replace(user=callee)),
            sdp=self._sdp(self.a.invite.body or None, self.a, offer=True),
            destination=target.destination,
            headers=b2b.policy(gateway).forwarded(self.a.invite),
            handler=self,
        )
        if outcome.deadline is not None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_at(outcome.deadline, self.guard, self._fast_failover)
        self._set_b(b, gateway, callee, caller)

    def _set_b(self, b: Call, gateway: GatewayState, callee: str, caller: str) -> None:
        self.b = b
        self.gateway = gateway
        records = self.b2bua.records
        if self.record and records is not None:
            records.route(
                self.a.call_id, gateway=gateway.name, trunk=gateway.config.host,
                b_call_id=b.call_id, caller_translated=caller, callee_translated=callee,
            )  # fmt: skip

    def _fast_failover(self) -> None:
        """No 18x/final from the gateway in time: CANCEL it, try the next (routing)."""
        self.timer = None
        outbound, b = self.outbound, self.b
        if outbound is None or b is None or self.answered or self.finished:
            return
        outcome = outbound.timer_fired(self.b2bua.gateway_ua.now())
        if outcome is None:
            return
        self._attempt_failed(b, outbound.history[-1].outcome)
        self.b = None
        b.bye()  # CANCEL (or nothing yet to cancel: the session does it when a 1xx comes)
        self.place(outcome)

    def _attempt_failed(self, b: Call, outcome: str) -> None:
        self.b2bua.stats.failovers += 1
        records = self.b2bua.records
        if self.record and records is not None and self.gateway is not None:
            records.attempt(self.a.call_id, self.gateway.name, outcome)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # --- events from either leg -------------------------------------------------------------
    def on_call_event(self, call: Call, event: CallUpdate) -> None:
        """A leg's event (the UA's :class:`~hybridvoice.net.call.CallHandler` hook), guarded."""
        self.guard(self._on_event, call, event)

    def _on_event(self, call: Call, event: CallUpdate) -> None:
        if transfer.intercept(self, call, event):
            pass  # a REFER, its progress, or a leg of a transfer under way (transfer.py)
        elif call is self.a:
            self._from_a(event)
        elif call is self.b:
            self._from_b(call, event)
        # else: a leg we gave up on (failover); its end needs nothing from us
        if isinstance(event, Disconnected):
            asyncio.get_running_loop().call_soon(release_leg, call)

    def _from_a(self, event: CallUpdate) -> None:
        b = self.b
        if isinstance(event, Disconnected):
            side = DisconnectSide.CALLER if self.side == "edge" else DisconnectSide.CALLEE
            if event.side == "local":
                side = DisconnectSide.LOCAL
            self._finish(side, event.status, f"{event.cause} ({self.side} leg)")
            if b is not None and not b.disconnected:
                b.bye()
        elif b is None or b.disconnected:
            return
        elif isinstance(event, Offer):
            self._pass_offer(self.a, b, event.sdp)
        elif isinstance(event, OfferAnswered):
            if self.offer_from is b:
                self.offer_from = None
                self._safely(b.accept_offer, self._sdp(event.sdp, self.a))
        elif isinstance(event, OfferRejected):
            if self.offer_from is b:
                self.offer_from = None
                self._safely(b.reject_offer, event.status)
        elif isinstance(event, Confirmed) and self.late_offer and event.sdp is not None:
            self.late_offer = False
            self._safely(b.accept_offer, self._sdp(event.sdp, self.a))

    def _from_b(self, b: Call, event: CallUpdate) -> None:
        a = self.a
        outbound = self.outbound
        now = self.b2bua.gateway_ua.now()
        if isinstance(event, Ringing | EarlyMedia):
            status = 180 if isinstance(event, Ringing) else 183
            if outbound is not None:
                outbound.provisional(status, now)
                self._cancel_timer()
            if self.record and self.b2bua.records is not None:
                self.b2bua.records.ringing(a.call_id)
            if a.state in (State.INCOMING, State.EARLY):
                self._safely(lambda: a.ring(self._sdp(event.sdp, b), status=status))
        elif isinstance(event, Answered):
            self.answered_by(b, event.sdp)
        elif isinstance(event, Offer):
            if not self.answered:  # the 2xx to an offer-less INVITE carried the offer
                self.late_offer = True
                self.answered_by(b, event.sdp)
            else:
                self._pass_offer(b, a, event.sdp)
        elif isinstance(event, OfferAnswered):
            if self.offer_from is a:
                self.offer_from = None
                self._safely(a.accept_offer, self._sdp(event.sdp, b))
            elif self.offer_from is b:  # the answer to our own re-INVITE (late anchoring)
                media_plan.reoffer_done(self, event)
        elif isinstance(event, OfferRejected):
            if self.offer_from is a:
                self.offer_from = None
                self._safely(a.reject_offer, event.status)
            elif self.offer_from is b:
                media_plan.reoffer_done(self, event)
        elif isinstance(event, Disconnected):
            self._b_ended(b, event)

    def answered_by(self, b: Call, sdp: bytes | None) -> None:
        self._cancel_timer()
        if self.outbound is not None and not self.answered:
            self.outbound.final(200, self.b2bua.gateway_ua.now())
        if self.answered:
            return
        if sdp is None and not self.a.invite.body and not self.late_offer:
            return  # the offer follows as an Offer event
        if media_plan.fallback_on_answer(self, b, sdp):
            return  # bypassed, no shared codec: anchored now, back here once the relay is bound
        self.answered = True
        self.b2bua.stats.answered += 1
        if self.a.disconnected:
            b.bye()
            return
        self._safely(self.a.answer, self._sdp(sdp, b, offer=self.late_offer))
        if self.plan is not None and self.plan.reoffer is not None:
            asyncio.get_running_loop().call_soon(self.guard, media_plan.reoffer, self)
        if self.record and self.b2bua.records is not None:
            self.b2bua.records.answered(self.a.call_id)

    def _b_ended(self, b: Call, event: Disconnected) -> None:
        a = self.a
        self._cancel_timer()
        if self.answered or a.disconnected:
            side = DisconnectSide.CALLEE if self.side == "edge" else DisconnectSide.CALLER
            if event.side == "local":
                side = DisconnectSide.LOCAL
            self._finish(side, event.status, f"{event.cause} ({self._other} leg)")
            if not a.disconnected:
                a.bye()
            return
        status = event.status if event.status is not None else 408
        outbound = self.outbound
        if outbound is not None and media_plan.fallback_on_reject(self, status):
            return  # a bypassed offer refused 488: the same gateway again, anchored
        if outbound is None:  # inbound: map the failure through
            self._fail_a(map_failure(status), f"{self._other} leg: {event.cause} {status}")
            return
        cause = self._tls_cause(status, event.detail)
        self._attempt_over(b, status, None if cause is None else f"{status} ({cause})")

    def _tls_cause(self, status: int, detail: str | None) -> str | None:
        """A 408 from a TLS gateway (a failed connection or handshake reaches the session as a
        408 of its own): why, in the transport's words the session passed on, else None."""
        gateway = self.gateway
        if status != 408 or gateway is None or gateway.config.protocol != "TLS":
            return None
        return detail

    def _attempt_over(self, b: Call, status: int, said: str | None) -> None:
        """The pending gateway attempt failed with ``status`` (``said``: the outcome text for
        the record and the caller's Reason): fail the caller or try the next gateway."""
        outbound = self.outbound
        assert outbound is not None
        outcome = outbound.final(status, self.b2bua.gateway_ua.now(), said)
        if isinstance(outcome, routing.Rejected):
            self.b = None
            self._fail_a(map_failure(status), f"gateway {outcome.gateway.name}: {said or status}")
        elif isinstance(outcome, routing.Attempt | routing.NoGatewayLeft):
            self._attempt_failed(b, said or str(status))
            self.b = None
            self.place(outcome)

    @property
    def _other(self) -> str:
        return "gateway" if self.side == "edge" else "edge"

    def _pass_offer(self, origin: Call, other: Call, sdp: bytes | None) -> None:
        """An offer on ``origin`` (re-INVITE/UPDATE) becomes an offer on ``other``; one with
        SDP we cannot use is refused 488 and the session goes on (RFC 3261 §14.2)."""
        if self.offer_from is not None:
            self._safely(origin.reject_offer, 491)  # one offer at a time (RFC 3261 §14.2)
            return
        try:
            body = self._sdp(sdp, origin, offer=True)
        except SdpError as exc:  # a bad re-offer costs only itself: 488, the call goes on
            _log.warning("call %s: offer refused: bad SDP: %s", self.a.call_id, exc)
            self._safely(origin.reject_offer, 488)
            return
        self.offer_from = origin
        try:
            if other.state is State.CONFIRMED:
                other.reinvite(body)
            else:
                other.update(body)
        except LocalProtocolError as exc:
            _log.info("offer not passed on: %s", exc)
            self.offer_from = None
            self._safely(origin.reject_offer, 491 if other.state is State.CONNECTING else 488)

    def _safely(self, action: Callable[..., None], *args: object) -> None:
        """A leg's call that the other leg's timing may make illegal (a race): log it."""
        try:
            action(*args)
        except LocalProtocolError as exc:
            _log.info("%s not done: %s", getattr(action, "__name__", action), exc)

    # --- the end ----------------------------------------------------------------------------
    def _fail_a(self, status: int, text: str) -> None:
        """Refuse the caller with ``status`` and a Reason of ``text``; the record keeps
        ``text`` as the cause (finished first: the a-leg's own end, "rejected", comes after).
        A Warning (RFC 3261 §20.43) says it too, for the caller's user."""
        a = self.a
        self._finish(DisconnectSide.LOCAL, status, text)
        if not a.disconnected and a.state in (State.INCOMING, State.EARLY):
            self.b2bua.refuse(a, status, text, warning=warning(a, text))

    def _finish(self, side: DisconnectSide, status: int | None, cause: str) -> None:
        """Give back everything the call holds (its timer, call slot, gateway slot, relay
        ports) and close its record with ``cause``. Each step runs whatever the others do:
        a failing one is logged and the rest still happen (nothing may leak)."""
        if self.finished:
            return
        self.finished = True
        self.b2bua.bridges.discard(self)
        media: list[MediaCounters | None] = [None, None]
        steps: tuple[Callable[[], None], ...] = (
            self._cancel_timer, self._release_slots, lambda: self._release_relay(media),
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
        if self.outbound is not None:
            self.outbound.ended()
        elif self.gateway is not None and self.b is not None:
            b2b.trunks.call_ended(self.gateway.name, failed=not self.answered)

    def _release_relay(self, media: list[MediaCounters | None]) -> None:
        """The relay call's ports go back to the pool (by a task); its counters are kept."""
        b2b = self.b2bua
        relay_call, self.relay_call = self.relay_call, None
        if relay_call is None:
            return
        b2b.recent.add(self.a.call_id, relay_call.stats())
        media[:] = media_counters(relay_call, self.side)
        relay = b2b.relay
        if relay is not None:

            async def release() -> None:
                await relay.release(relay_call)

            self.spawn(release)

    def _close_record(
        self, side: DisconnectSide, status: int | None, cause: str,
        media: list[MediaCounters | None],
    ) -> None:  # fmt: skip
        records = self.b2bua.records
        if self.record and records is not None:
            self.record = False
            records.ended(
                self.a.call_id, side=side, sip_status=status, cause=cause,
                a_media=media[0], b_media=media[1],
            )  # fmt: skip
