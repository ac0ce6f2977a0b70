"""Fakes of the mediation call's own inputs, for tests on a fake clock (no sockets, no loop).

Fake legs record what the adapter did to them; fake UAs place them; :class:`Recorder` is the
adapter: it keeps the decisions, arms nothing (its timers are a dict of deadlines), and
carries the leg decisions out on the fake legs through the loop adapter's own sans-IO step
(:func:`hybridvoice.mediation.adapter.leg_action`)."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, cast

from hybridvoice.cms.settings import Gateway, TrunkConfiguration
from hybridvoice.media import PortBlock, RelaySession
from hybridvoice.mediation.adapter import leg_step, place_leg
from hybridvoice.mediation.b2bua import B2BUA, Bridge
from hybridvoice.mediation.b2bua_legs import release_leg
from hybridvoice.mediation.bypass import BypassPolicy
from hybridvoice.mediation.call_events import (
    Actions,
    ArmTimer,
    CancelTimer,
    LegAction,
    PlaceLeg,
    ReleaseLeg,
    ReleaseRelay,
    WriteRecord,
)
from hybridvoice.mediation.routing import CallAdmission, OutboundRouter
from hybridvoice.mediation.trunks import TrunkTable
from hybridvoice.net.relay import RelayCall
from hybridvoice.net.transport import Destination, Source
from hybridvoice.sip.errors import LocalProtocolError
from hybridvoice.sip.message import Request
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.session import Disconnected, State

T0 = 1000.0
CALLEE = "+31201234567"
_ids = itertools.count(1)


def sdp(port: int, host: str = "10.0.0.5", formats: str = "0") -> bytes:
    lines = [
        "v=0", f"o=t 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
        f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:0 PCMU/8000", "a=sendrecv",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def invite(uri: str, from_: str, body: bytes | None) -> Request:
    content = body or b""
    text = (
        f"INVITE {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-test\r\n"
        f"From: {from_};tag=t{next(_ids)}\r\nTo: <{uri}>\r\nCall-ID: c{next(_ids)}@test\r\n"
        "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:test@127.0.0.1:5099>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(content)}\r\n\r\n"
    )
    message = parse_message(text.encode() + content)
    assert isinstance(message, Request)
    return message


@dataclass(eq=False)
class Leg:
    """A fake leg: what the call did to it, in order."""

    invite: Request
    incoming: bool
    state: State
    source: Source | None = None
    done: list[tuple[Any, ...]] = field(default_factory=list)
    handler: Any = None
    replaces: Any = None
    transport: Any = None
    history: list[Any] = field(default_factory=list)
    peer_allow: frozenset[str] = frozenset()
    busy: bool = False  # its session refuses offers and REFERs at once (LocalProtocolError)
    offered: bool = False  # an offer of ours is under way on it

    def _check(self, what: str) -> None:
        if self.busy:
            raise LocalProtocolError(f"{what} not allowed now")

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def disconnected(self) -> bool:
        return self.state is State.DISCONNECTED

    @property
    def session(self) -> Any:
        return self

    def ring(self, sdp: bytes | None = None, *, status: int = 180) -> None:
        self.done.append(("ring", status))
        self.state = State.EARLY

    def answer(self, sdp: bytes | None) -> None:
        self.done.append(("answer", sdp))
        self.state = State.CONFIRMED

    def reject(self, status: int, reason: str | None = None, *, headers: Any = ()) -> None:
        self.done.append(("reject", status))
        self.state = State.DISCONNECTED

    def bye(self, *, headers: Any = ()) -> None:
        self.done.append(("bye",))
        self.state = State.DISCONNECTED

    def reinvite(self, sdp: bytes | None) -> None:
        self._check("re-INVITE")
        self.done.append(("reinvite", sdp))
        self.offered = True

    def update(self, sdp: bytes | None = None) -> None:
        self._check("UPDATE")
        self.done.append(("update", sdp))
        self.offered = True

    def refer(self, target: Any, **_: Any) -> None:
        self._check("REFER")
        self.done.append(("refer", target))

    def accept_offer(self, sdp: bytes | None) -> None:
        self.done.append(("accept_offer", sdp))

    def reject_offer(self, status: int = 488) -> None:
        self.done.append(("reject_offer", status))

    def accept_refer(self) -> None:
        self.done.append(("accept_refer",))

    def reject_refer(self, status: int = 603) -> None:
        self.done.append(("reject_refer", status))

    def notify_refer(self, status: int, reason: str | None = None) -> None:
        self.done.append(("notify_refer", status))

    def names(self) -> list[str]:
        return [str(d[0]) for d in self.done]


class FakeUA:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.application: Any = None
        self.calls: list[Leg] = []
        self.placed: list[Leg] = []
        self.endpoint = self

    def transport_for(self, destination: Destination) -> None:
        return None

    def now(self) -> float:
        return self.clock.now

    def invite(self, target: Any, *, sdp: bytes | None, handler: Any, **_: Any) -> Leg:
        leg = Leg(invite(str(target), "<sip:b2bua@127.0.0.1>", sdp), False, State.CALLING)
        leg.handler = handler
        self.placed.append(leg)
        self.calls.append(leg)
        return leg


@dataclass
class Clock:
    now: float = T0


class Recorder:
    """The adapter of the tests: keeps the decisions, arms nothing; places legs through the
    fake UAs and carries the leg decisions out on the fake legs (the loop adapter's own
    sans-IO steps), which record them."""

    def __init__(self) -> None:
        self.actions: list[Any] = []
        self.timers: dict[str, float] = {}
        self.records: list[WriteRecord] = []
        self.leg_actions: list[Any] = []  # the decisions on legs (ReleaseLeg included)

    def execute(self, bridge: Bridge | None, actions: Actions) -> None:
        for action in actions:
            if isinstance(action, LegAction | ReleaseLeg):
                self.leg_actions.append(action)
            elif not isinstance(action, WriteRecord):
                self.actions.append(action)
            if isinstance(action, LegAction):
                leg_step(bridge, action)
            elif isinstance(action, WriteRecord):
                self.records.append(action)
            elif isinstance(action, ReleaseLeg):
                release_leg(action.leg)
            elif isinstance(action, PlaceLeg):
                assert bridge is not None
                bridge.placed(action, place_leg(bridge, action))
            elif isinstance(action, ArmTimer):
                self.timers[action.name] = action.at
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.name, None)

    def cancel_timers(self, bridge: Bridge) -> None:
        self.timers.clear()

    def release_relay(self, bridge: Bridge, relay_call: RelayCall) -> None:
        self.actions.append(ReleaseRelay(relay_call))


@dataclass
class World:
    clock: Clock
    b2bua: B2BUA
    adapter: Recorder
    edge: FakeUA
    gateway: FakeUA

    def fire(self, bridge: Bridge, name: str, at: float) -> None:
        """The adapter's timer ``name`` fires at ``at`` (it must have been armed for it)."""
        assert self.adapter.timers.pop(name) == at
        self.clock.now = at
        bridge.timer_fired(name, at)

    def event(self, bridge: Bridge, leg: Leg, event: Any) -> None:
        if isinstance(event, Disconnected):
            leg.state = State.DISCONNECTED
        bridge.on_call_event(cast(Any, leg), event)


def world(
    gateways: int = 2, *, relay: bool = False, bypass: BypassPolicy | None = None,
    refer: bool = True, records: bool = False, trunk_table: type[TrunkTable] = TrunkTable,
) -> World:  # fmt: skip
    clock = Clock()
    gws = [
        Gateway(name=f"Gateway{n}", ip=f"127.0.0.{n + 1}", voice_routes=("Any",), media_bypass=True)
        for n in range(1, gateways + 1)
    ]
    trunks = trunk_table(gws)
    router = OutboundRouter(trunks, {"Any": ".*"}, rng=random.Random(3))
    edge, gateway, adapter = FakeUA(clock), FakeUA(clock), Recorder()
    b2bua = B2BUA(
        edge_ua=cast(Any, edge), gateway_ua=cast(Any, gateway), trunks=trunks, router=router,
        admission=CallAdmission(10), trunk_config=TrunkConfiguration(enable_refer_support=refer),
        edge_target=Destination("UDP", "127.0.0.1", 5061), edge_domain="edge.example",
        relay=cast(Any, object()) if relay else None, bypass=bypass, adapter=adapter,
        records=cast(Any, object()) if records else None,  # the Recorder keeps the writes
    )  # fmt: skip
    return World(clock, b2bua, adapter, edge, gateway)


def call_out(w: World, body: bytes | None = None) -> tuple[Bridge, Leg]:
    """The cloud side calls CALLEE at T0."""
    req = invite(f"sip:{CALLEE}@127.0.0.1", "<sip:+31209876543@contoso.com>", body or sdp(6000))
    a = Leg(req, True, State.INCOMING)
    w.edge.calls.append(a)
    w.b2bua.incoming(cast(Any, a), "edge")
    (bridge,) = w.b2bua.bridges
    return bridge, a


def relay_call() -> RelayCall:
    block = PortBlock(40000)
    session = RelaySession("c1", (block.a_rtp, block.a_rtcp), (block.b_rtp, block.b_rtcp))
    return RelayCall("c1", "192.0.2.1", block, session)
