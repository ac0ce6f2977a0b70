"""The mediation call's state machine under random orders of its inputs (hypothesis).

One call (outbound or inbound, bypassed or anchored, records on) is driven on a fake clock by
random leg events (what each leg's session could say in its state: 18x, 2xx, offers and
their answers, REFER and its results, ends), timer firings (on time, or a little early as
uvloop does), the relay's answers and legs that refuse an offer or a REFER at once. The legs
and the adapter are fakes of the call's own inputs (:mod:`call_fakes`): they only record
the decisions. Checked after every step and once everything has ended:

- the call never fails internally (no handler raised: ``stats.failures`` has no
  ``internal``);
- once the call is ENDED, every leg it placed (and its caller leg) got a hang-up or refusal,
  or ended itself, and none of its timers is left armed;
- every gateway slot taken is released exactly once (never more), the call slot too;
- every relay call the relay gave is released exactly once;
- exactly one call record is started and ended per Call-ID of the caller's side, nothing
  written to it after its end.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any, cast

from call_fakes import CALLEE, Leg, World, invite, relay_call, sdp, world
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hybridvoice.mediation.b2bua import Bridge
from hybridvoice.mediation.bypass import BypassPolicy
from hybridvoice.mediation.call_events import BindRelay, Hangup, Phase, Reject, ReleaseRelay
from hybridvoice.mediation.trunks import TrunkTable
from hybridvoice.net.relay import RelayCall
from hybridvoice.net.transport import Source
from hybridvoice.sip.headers import Address
from hybridvoice.sip.refer import Refer, ReferNotify, ReferResult
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    EarlyMedia,
    Offer,
    OfferAnswered,
    OfferRejected,
    Ringing,
    State,
)
from hybridvoice.sip.uri import parse_uri

EXTERNAL = BypassPolicy(enabled=True, internal_subnets=(ipaddress.ip_network("10.0.0.0/8"),))
TARGETS = ("sip:+31207654321@contoso.com;user=phone", "sip:alice@contoso.com")


class CountingTrunks(TrunkTable):
    """The trunk table, counting each gateway slot taken and given back (its own counter
    stops at 0, which would hide a second release)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken: Counter[str] = Counter()
        self.released: Counter[str] = Counter()

    def call_started(self, name: str) -> None:
        self.taken[name] += 1
        super().call_started(name)

    def call_ended(self, name: str, *, failed: bool = False) -> None:
        self.released[name] += 1
        assert self.released[name] <= self.taken[name], f"{name}: a slot released twice"
        super().call_ended(name, failed=failed)


class CallMachine(RuleBasedStateMachine):
    w: World
    bridge: Bridge
    a: Leg

    def __init__(self) -> None:
        super().__init__()
        self.reported: set[int] = set()  # id() of legs whose end was delivered
        self.binds = 0  # BindRelay decisions answered so far
        self.bound: list[RelayCall] = []

    # --- set-up -----------------------------------------------------------------------------
    @initialize(
        outbound=st.booleans(), relay=st.booleans(), bypass=st.booleans(),
        external=st.booleans(), refer=st.booleans(),
    )  # fmt: skip
    def start(self, outbound: bool, relay: bool, bypass: bool, external: bool, refer: bool) -> None:
        self.w = w = world(
            relay=relay, bypass=EXTERNAL if bypass else None, refer=refer, records=True,
            trunk_table=CountingTrunks,
        )  # fmt: skip
        host = "198.51.100.7" if external else "10.0.0.9"
        uri = f"sip:{CALLEE}@127.0.0.1"
        if outbound:
            req = invite(uri, "<sip:+31209876543@contoso.com>", sdp(6000, host))
            a = Leg(req, True, State.INCOMING)
            w.edge.calls.append(a)
            w.b2bua.incoming(cast(Any, a), "edge")
        else:
            req = invite(uri, "<sip:+31612345678@gw.example>", sdp(5000, host))
            a = Leg(req, True, State.INCOMING, source=Source(cast(Any, None), "127.0.0.2", 5060))
            w.gateway.calls.append(a)
            w.b2bua.incoming(cast(Any, a), "gateway")
        (self.bridge,) = w.b2bua.bridges
        self.a = a

    # --- helpers ----------------------------------------------------------------------------
    def legs(self) -> list[Leg]:
        return [self.a, *self.w.edge.placed, *self.w.gateway.placed]

    def live(self) -> list[Leg]:
        """Legs whose session may still say something (not ended, events still wanted)."""
        return [x for x in self.legs() if x.state is not State.DISCONNECTED and x.handler]

    def unreported(self) -> list[Leg]:
        """Legs we ended (BYE, CANCEL, a refusal) whose session has not said so yet."""
        return [
            x for x in self.legs()
            if x.state is State.DISCONNECTED and id(x) not in self.reported and x.handler
        ]  # fmt: skip

    def deliver(self, leg: Leg, event: Any) -> None:
        """What the UA does with a leg's event: history, then the handler."""
        if isinstance(event, Disconnected):
            leg.state = State.DISCONNECTED
            self.reported.add(id(leg))
        leg.history.append(event)
        if leg.handler is not None:
            leg.handler.on_call_event(leg, event)

    def pending_binds(self) -> list[BindRelay]:
        binds = [x for x in self.w.adapter.actions if isinstance(x, BindRelay)]
        return binds[self.binds :]

    def fire(self, name: str, at: float) -> None:
        self.w.clock.now = max(self.w.clock.now, at)
        self.bridge.timer_fired(name, at)

    # --- rules: the legs ----------------------------------------------------------------------
    def talking(self) -> list[Leg]:
        """Live legs with something to say besides their end."""
        return [x for x in self.live() if not x.incoming or x.state is State.CONFIRMED]

    @precondition(lambda self: bool(self.talking()))
    @rule(data=st.data())
    def leg_event(self, data: st.DataObject) -> None:
        """A leg's session says what it could say in its state."""
        leg = data.draw(st.sampled_from(self.talking()), label="leg")
        body = sdp(data.draw(st.sampled_from([7000, 7002])), data.draw(st.sampled_from(
            ["10.0.0.7", "198.51.100.9"])), data.draw(st.sampled_from(["0", "8"])))  # fmt: skip
        events: list[Any]
        if leg.state in (State.CALLING, State.EARLY):
            events = [Ringing(None), EarlyMedia(body), Answered(body), Answered(None)]
        else:  # an established leg
            events = [
                Offer(body), Confirmed(body), Confirmed(None),
                Refer(Address(parse_uri(data.draw(st.sampled_from(TARGETS)))), None, None),
                ReferResult(data.draw(st.sampled_from([202, 403]))),
                ReferNotify(data.draw(st.sampled_from([100, 180, 200, 503])), data.draw(
                    st.booleans())),
            ]  # fmt: skip
            if leg.offered:
                events += [OfferAnswered(body), OfferRejected(data.draw(st.sampled_from([
                    488, 491])))]  # fmt: skip
        event = data.draw(st.sampled_from(events), label="event")
        if isinstance(event, Answered):
            leg.state = State.CONFIRMED
        elif isinstance(event, Ringing | EarlyMedia):
            leg.state = State.EARLY
        elif isinstance(event, OfferAnswered | OfferRejected):
            leg.offered = False
        self.deliver(leg, event)

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def leg_ends(self, data: st.DataObject) -> None:
        """A leg's peer ends it: BYE, CANCEL, a final failure, a timeout."""
        if data.draw(st.integers(0, 2), label="not yet"):
            return  # ends are rarer than the rest: calls get somewhere first
        leg = data.draw(st.sampled_from(self.live()), label="leg")
        if leg.incoming and leg.state in (State.INCOMING, State.EARLY):
            event = Disconnected(Cause.CANCELLED, 487, "remote")
        elif leg.state is State.CONFIRMED:
            event = Disconnected(Cause.NORMAL, None, "remote")
        else:
            status = data.draw(st.sampled_from([408, 480, 486, 488, 503]))
            event = Disconnected(Cause.REJECTED, status, "remote")
        self.deliver(leg, event)

    @precondition(lambda self: bool(self.unreported()))
    @rule(data=st.data())
    def leg_end_reported(self, data: st.DataObject) -> None:
        """A leg we ended says so (its BYE answered, its CANCEL's 487, our refusal sent)."""
        leg = data.draw(st.sampled_from(self.unreported()))
        self.deliver(leg, Disconnected(Cause.NORMAL, None, "local"))

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def leg_turns_busy(self, data: st.DataObject) -> None:
        """A leg's session starts (or stops) refusing offers and REFERs at once (a race),
        and its peer does or does not take REFER (passed on, or performed by us)."""
        leg = data.draw(st.sampled_from(self.live()))
        leg.busy = not leg.busy
        leg.peer_allow = frozenset({"REFER"}) if data.draw(st.booleans()) else frozenset()

    # --- rules: time and the relay ------------------------------------------------------------
    @rule(dt=st.sampled_from([0.1, 1.0, 2.5, 9.0, 30.0]))
    def time_passes(self, dt: float) -> None:
        """The loop runs for ``dt``: the timers due fire in deadline order."""
        target = self.w.clock.now + dt
        timers = self.w.adapter.timers
        while timers and min(timers.values()) <= target:
            name = min(timers, key=timers.__getitem__)
            self.fire(name, timers.pop(name))
        self.w.clock.now = target

    @precondition(lambda self: bool(self.w.adapter.timers))
    @rule()
    def timer_fires_early(self) -> None:
        """uvloop fires the next timer a little before its deadline."""
        timers = self.w.adapter.timers
        name = min(timers, key=timers.__getitem__)
        self.fire(name, timers.pop(name) - 0.0004)

    @precondition(lambda self: bool(self.pending_binds()))
    @rule(ok=st.sampled_from([True, True, True, False]))
    def relay_answers(self, ok: bool) -> None:
        bind = self.pending_binds()[0]
        self.binds += 1
        if ok:
            relay = relay_call()
            self.bound.append(relay)
            self.bridge.relay_bound(relay, bind.then)
        else:
            self.bridge.relay_failed("no ports left")

    # --- invariants ---------------------------------------------------------------------------
    @invariant()
    def never_fails_internally(self) -> None:
        assert self.w.b2bua.stats.failures.get("internal", 0) == 0

    @invariant()
    def an_ended_call_holds_nothing(self) -> None:
        if self.bridge.phase is not Phase.ENDED:
            return
        assert self.w.adapter.timers == {}
        assert self.w.b2bua.admission.active == 0 and self.bridge not in self.w.b2bua.bridges
        ended = {id(x.leg) for x in self.w.adapter.leg_actions if isinstance(x, Hangup | Reject)}
        for leg in self.legs():
            assert leg.state is State.DISCONNECTED or id(leg) in ended, leg.call_id

    @invariant()
    def records_open_and_close_once(self) -> None:
        ops: dict[str, list[str]] = {}
        for write in self.w.adapter.records:
            ops.setdefault(write.call_id, []).append(write.op)
        for call_id, seen in ops.items():
            assert seen[0] == "start" and seen.count("start") == 1, (call_id, seen)
            assert seen.count("ended") <= 1 and "ended" not in seen[:-1], (call_id, seen)
        if self.bridge.phase is Phase.ENDED:
            assert all(seen[-1] == "ended" for seen in ops.values()), ops

    def teardown(self) -> None:
        """Everything ends (every leg that is still up hangs up, every end is reported, the
        relay answers what it was asked): then nothing is held and everything given back
        once."""
        if not hasattr(self, "w"):
            return
        for _ in range(100):
            if self.pending_binds():
                self.relay_answers(True)
            elif self.unreported():
                self.deliver(self.unreported()[0], Disconnected(Cause.NORMAL, None, "local"))
            elif self.live():
                self.deliver(self.live()[0], Disconnected(Cause.NORMAL, None, "remote"))
            else:
                break
        self.never_fails_internally()
        assert self.bridge.phase is Phase.ENDED
        self.an_ended_call_holds_nothing()
        self.records_open_and_close_once()
        trunks = cast(CountingTrunks, self.w.b2bua.trunks)
        assert trunks.released == trunks.taken, (trunks.taken, trunks.released)
        assert all(g.active_calls == 0 for g in trunks)
        released = Counter(
            id(x.relay_call) for x in self.w.adapter.actions if isinstance(x, ReleaseRelay)
        )
        assert released == Counter(id(r) for r in self.bound), "a relay call leaked or freed twice"


CallMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow], database=None,
)  # fmt: skip
test_the_call_machine = CallMachine.TestCase
