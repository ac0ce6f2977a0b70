"""The mediation role's one asyncio adapter: carries out the calls' decisions on the loop.

RFC 3261 §13.2.1 (the INVITE of a new leg), §13.3.1.1 and §17 say which timers a call runs;
this module only runs them. The mediation call (:mod:`.call_state`, :mod:`.call_flow`) is
sans-IO: it returns decisions (:mod:`.call_events`) and takes ``now`` as a parameter.
:class:`LoopAdapter` carries each event's decisions out in order: it places legs through the
UAs (:func:`place_leg`) and drives them (:func:`leg_action`: ring, answer, refuse, hang up,
offer, answer or refuse an offer, answer or NOTIFY a REFER, pass a REFER on; a leg whose
session refuses one at once is reported back, :meth:`Bridge.leg_op_failed
<.b2bua.Bridge.leg_op_failed>`), writes the call record (:class:`~.call_events.WriteRecord`),
lets an ended leg go (:class:`~.call_events.ReleaseLeg`, the last decision of its end), arms
``loop.call_at`` timers (one per name per call) and feeds their firings back
(:meth:`~.b2bua.Bridge.timer_fired`), runs the relay engine's allocation and release as tasks
named after the call (feeding back :meth:`~.b2bua.Bridge.relay_bound` or
:meth:`~.b2bua.Bridge.relay_failed`; any other failure ends the call through
:meth:`~.b2bua.Bridge.abort`, never as an unhandled task exception). It is the only module of
``mediation/`` (besides the role's own assembly, health probes and record writer) that
touches the event loop, and the only one that calls a leg.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from hybridvoice.net.loop import call_task_name
from hybridvoice.net.transport import NetError
from hybridvoice.sip.errors import LocalProtocolError

from .b2bua_legs import release_leg
from .call_events import (
    Actions,
    Answer,
    AnswerOffer,
    ArmTimer,
    BindRelay,
    CancelTimer,
    Hangup,
    LegAction,
    Notify,
    PassRefer,
    PlaceLeg,
    ReferReply,
    RefuseOffer,
    Reject,
    ReleaseLeg,
    ReleaseRelay,
    Ring,
    SendOffer,
    Then,
    WriteRecord,
)

if TYPE_CHECKING:
    from hybridvoice.net.call import Call
    from hybridvoice.net.relay import RelayCall

    from .b2bua import Bridge

__all__ = ["LoopAdapter", "leg_action", "leg_step", "place_leg", "write_record"]

_log = logging.getLogger("hybridvoice.mediation.b2bua")


def place_leg(bridge: Bridge, action: PlaceLeg) -> Call:
    """Carry out a :class:`~.call_events.PlaceLeg`: the INVITE goes out through the UA of its
    side (which queues it and returns the new leg at once), its events to ``bridge``."""
    b2b = bridge.b2bua
    ua = b2b.edge_ua if action.side == "edge" else b2b.gateway_ua
    return ua.invite(
        action.target, from_=action.from_, to=action.to, sdp=action.sdp,
        destination=action.destination, headers=action.headers, handler=bridge,
    )  # fmt: skip


def _refer(action: PassRefer) -> None:
    action.leg.refer(
        action.refer_to, replaces=action.replaces, referred_by=action.referred_by,
        subscription=action.subscription,
    )  # fmt: skip


def _reply_refer(action: ReferReply) -> None:
    if action.status == 202:
        action.leg.accept_refer()
    else:
        action.leg.reject_refer(action.status)


def _offer(action: SendOffer) -> None:
    if action.update:
        action.leg.update(action.sdp)
    else:
        action.leg.reinvite(action.sdp)


#: Each leg decision's UA core call, by the decision's type (one lookup per decision).
_LEG_OPS: Final[Mapping[type, Callable[[Any], None]]] = MappingProxyType({
    Ring: lambda x: x.leg.ring(x.sdp, status=x.status),
    Answer: lambda x: x.leg.answer(x.sdp),
    Hangup: lambda x: x.leg.bye(headers=x.headers),
    Reject: lambda x: x.leg.reject(x.status, x.text, headers=x.headers),
    SendOffer: _offer,
    AnswerOffer: lambda x: x.leg.accept_offer(x.sdp),
    RefuseOffer: lambda x: x.leg.reject_offer(x.status),
    ReferReply: _reply_refer,
    Notify: lambda x: x.leg.notify_refer(x.status),
    PassRefer: _refer,
})  # fmt: skip


def leg_action(action: LegAction) -> None:
    """Carry out a decision on a leg through its UA core call (which queues the messages and
    never waits). LocalProtocolError: the leg's session forbids it now."""
    _LEG_OPS[type(action)](action)


def leg_step(bridge: Bridge | None, action: LegAction) -> None:
    """Carry out ``action`` (:func:`leg_action`); one its leg refuses at once (a race with
    the peer) goes back to the call when it matters (an offer or a REFER to pass on:
    :meth:`Bridge.leg_op_failed <.b2bua.Bridge.leg_op_failed>`), else is logged."""
    try:
        leg_action(action)
    except LocalProtocolError as exc:
        if bridge is None:
            raise
        if isinstance(action, SendOffer | PassRefer):
            bridge.leg_op_failed(action, str(exc))
        else:
            _log.info("%s not done: %s", type(action).__name__, exc)


def write_record(bridge: Bridge, action: WriteRecord) -> None:
    """Carry out a :class:`~.call_events.WriteRecord` on the B2BUA's record store."""
    records = bridge.b2bua.records
    if records is not None:
        getattr(records, action.op)(action.call_id, **action.fields)


class LoopAdapter:
    """Carries out the decisions of every call of one B2BUA on the running event loop."""

    __slots__ = ("_tasks", "_timers")

    def __init__(self) -> None:
        self._timers: dict[Bridge, dict[str, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def execute(self, bridge: Bridge | None, actions: Actions) -> None:
        """Carry out ``actions`` in order (``bridge`` None: a refusal before any call)."""
        for action in actions:
            kind = type(action)
            if kind in _LEG_OPS:
                leg_step(bridge, action)  # type: ignore[arg-type]
                continue
            if kind is ReleaseLeg:
                release_leg(action.leg)  # type: ignore[union-attr]
                continue
            assert bridge is not None  # the rest is a call's own
            if isinstance(action, WriteRecord):
                write_record(bridge, action)
            elif isinstance(action, PlaceLeg):
                bridge.placed(action, place_leg(bridge, action))
            elif isinstance(action, ArmTimer):
                self._arm(bridge, action.name, action.at)
            elif isinstance(action, CancelTimer):
                self._cancel(bridge, action.name)
            elif isinstance(action, BindRelay):
                self._bind(bridge, action.then)
            elif isinstance(action, ReleaseRelay):
                self.release_relay(bridge, action.relay_call)

    # --- timers ---------------------------------------------------------------------------------
    def _arm(self, bridge: Bridge, name: str, at: float) -> None:
        timers = self._timers.get(bridge)
        if timers is None:
            timers = self._timers[bridge] = {}
        old = timers.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        timers[name] = loop.call_at(at, self._fire, bridge, name)

    def _fire(self, bridge: Bridge, name: str) -> None:
        timers = self._timers.get(bridge)
        if timers is not None:
            timers.pop(name, None)
            if not timers:
                del self._timers[bridge]
        bridge.timer_fired(name, asyncio.get_running_loop().time())

    def _cancel(self, bridge: Bridge, name: str) -> None:
        timers = self._timers.get(bridge)
        if timers is None:
            return
        handle = timers.pop(name, None)
        if handle is not None:
            handle.cancel()
        if not timers:
            del self._timers[bridge]

    def cancel_timers(self, bridge: Bridge) -> None:
        """Stop every timer of ``bridge`` (it ended)."""
        for handle in self._timers.pop(bridge, {}).values():
            handle.cancel()

    # --- the relay engine (async) -----------------------------------------------------------------
    def _bind(self, bridge: Bridge, then: Then) -> None:
        relay = bridge.b2bua.relay
        assert relay is not None  # BindRelay is decided only with a relay engine

        async def bind() -> None:
            try:
                relay_call = await relay.create_call(bridge.a.call_id)
            except (OSError, ValueError, NetError) as exc:
                bridge.relay_failed(str(exc))
                return
            try:
                bridge.relay_bound(relay_call, then)
            except Exception:  # it never reached the call (which the failure ends): free it
                await relay.release(relay_call)
                raise

        self._spawn(bridge, bind)

    def release_relay(self, bridge: Bridge, relay_call: RelayCall) -> None:
        """Give ``relay_call``'s ports back (a task)."""
        relay = bridge.b2bua.relay
        if relay is None:
            return

        async def release() -> None:
            await relay.release(relay_call)

        self._spawn(bridge, release)

    def _spawn(self, bridge: Bridge, coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run an async step of ``bridge`` and keep a reference until it ends; whatever it
        raises ends that call (``abort``). Named ``call <Call-ID>`` for the loop's handler."""

        async def guarded() -> None:
            try:
                await coro()
            except Exception as exc:  # the bridge's invariant: any failure ends one call
                bridge.abort(exc)

        loop = asyncio.get_running_loop()
        task = loop.create_task(guarded(), name=call_task_name(bridge.a.call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
