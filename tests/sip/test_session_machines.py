"""The INVITE session's hidden machines, each alone on a fake clock with exact expectations:
the 2xx retransmission (RFC 3261 §13.3.1.4), the late ACK (§13.2.2.4), offer/answer and the
glare retry (§14.1, RFC 3311), the RFC 4028 refresher (§10), the caller's CANCEL (§9.1),
REFER and its subscription (RFC 3515 §2.4); and the SDP of a session's events, parsed at most
once (RFC 4566)."""

from __future__ import annotations

import random

import pytest
from session_harness import ANSWER, HOLD, Net, last, make_invite

from hybridvoice.sip import LocalProtocolError, Request, make_response
from hybridvoice.sip._session_ack import (
    LATE_ACK_TABLE,
    RETRANSMIT_TABLE,
    AckMemory,
    Retransmit2xx,
    RetransmitPhase,
)
from hybridvoice.sip._session_cancel import CANCEL_TABLE, CancelPhase, UacCancel
from hybridvoice.sip._session_offer import OFFER_TABLE, OfferAnswer, OfferPhase, glare_delay
from hybridvoice.sip._session_refresh import REFRESH_TABLE, Refresher, RefreshPhase
from hybridvoice.sip.dialog import Dialog
from hybridvoice.sip.headers import CSeq, parse_address
from hybridvoice.sip.refer import NotifierPhase, ReferTo, SubscriberPhase
from hybridvoice.sip.sdp import SessionDescription
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    EarlyMedia,
    InviteSession,
    Offer,
    OfferAnswered,
    Ringing,
    SessionConfig,
    State,
)


# --- the tables cover every state -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "states"),
    [
        (RETRANSMIT_TABLE, RetransmitPhase),
        (OFFER_TABLE, OfferPhase),
        (REFRESH_TABLE, RefreshPhase),
        (CANCEL_TABLE, CancelPhase),
    ],
)
def test_every_state_has_a_row(table: dict[object, object], states: type) -> None:
    assert set(table) == set(states)  # type: ignore[call-overload]


def test_the_late_ack_table() -> None:
    assert {state.name: [t.name for t in row] for state, row in LATE_ACK_TABLE.items()} == {
        "NONE": ["OFFER_IN_2XX", "STOPPED"],
        "AWAITING_ANSWER": ["ANSWERED", "STOPPED"],
    }


# --- 2xx retransmission (§13.3.1.4) ---------------------------------------------------------------
def _invite_and_2xx() -> tuple[object, object]:
    invite = make_invite()
    return invite, make_response(invite, 200, to_tag="b")


def test_2xx_retransmits_at_t1_doubling_capped_at_t2_and_gives_up_at_64_t1() -> None:
    invite, ok = _invite_and_2xx()
    machine = Retransmit2xx()
    machine.start(ok, invite, 10.0, t1=0.5, t2=4.0)  # type: ignore[arg-type]
    fired: list[float] = []
    while machine.deadline is not None:
        now = machine.deadline
        if machine.fire(now) is None:
            break
        fired.append(now)
    assert fired == [10.5, 11.5, 13.5, 17.5, 21.5, 25.5, 29.5, 33.5, 37.5, 41.5]
    assert now == 10.0 + 64 * 0.5  # the give-up, not a late retransmission
    assert machine.phase is RetransmitPhase.IDLE and machine.deadline is None


def test_the_ack_of_the_invite_stops_the_retransmission() -> None:
    invite, ok = _invite_and_2xx()
    machine = Retransmit2xx()
    machine.start(ok, invite, 0.0, t1=0.5, t2=4.0)  # type: ignore[arg-type]
    assert machine.fire(0.5) is ok and machine.deadline == 1.5
    assert machine.ack(CSeq(2, "ACK")) is None  # not this INVITE's ACK
    assert machine.ack(CSeq(1, "ACK")) is invite
    assert machine.deadline is None and not machine.pending
    assert machine.ack(CSeq(1, "ACK")) is None  # a retransmitted ACK


def test_a_late_ack_is_held_once() -> None:
    invite, ok = _invite_and_2xx()
    dialog = Dialog.from_uac(invite, ok)  # type: ignore[arg-type]
    acks = AckMemory()
    acks.hold(dialog, ok)  # type: ignore[arg-type]
    assert acks.late
    with pytest.raises(LocalProtocolError):
        acks.hold(dialog, ok)  # type: ignore[arg-type]
    assert acks.take() == (dialog, ok)
    assert not acks.late


# --- offer/answer and glare (§14.1, RFC 3311) -----------------------------------------------------
def test_glare_delays_are_in_10_ms_steps_in_the_owners_and_the_others_range() -> None:
    rng = random.Random(7)
    owner = {glare_delay(True, rng) for _ in range(2000)}
    other = {glare_delay(False, rng) for _ in range(2000)}
    assert min(owner) == 2.1 and max(owner) == 4.0
    assert min(other) == 0.0 and max(other) == 2.0
    assert all(round(d * 100) == pytest.approx(d * 100) for d in owner | other)


def test_glare_then_the_peers_offer_then_the_retry() -> None:
    invite = make_invite()
    offers = OfferAnswer(None)
    offers.send(invite, HOLD, refresh=False)
    assert offers.phase is OfferPhase.SENT and offers.local_sdp == HOLD
    offers.glare(invite, offers.refreshing, due=3.2)
    assert offers.phase is OfferPhase.GLARE and offers.deadline == 3.2
    offers.receive(invite)  # the peer's offer went first
    assert offers.phase is OfferPhase.GLARE_RECEIVED
    with pytest.raises(LocalProtocolError):
        offers.send(invite, HOLD, refresh=False)  # one offer at a time
    offers.postpone(5.0)
    assert offers.reply() is invite and offers.phase is OfferPhase.GLARE
    retry = offers.take_retry()
    assert (retry.method, retry.sdp, retry.refresh) == ("INVITE", invite.body, False)
    offers.send(invite, retry.sdp, retry.refresh)
    assert offers.phase is OfferPhase.SENT and offers.deadline is None
    assert offers.finish() is False and offers.phase is OfferPhase.IDLE


def test_glare_on_a_session_retries_after_the_owners_delay() -> None:
    """Both sides re-INVITE at once: each gets 491; the caller (the Call-ID's owner) retries
    2.1-4 s later, the callee 0-2 s later (§14.1)."""
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    uas.reinvite(HOLD)
    for session in (net.uac, uas):
        glare = session._offers
        assert glare.phase is OfferPhase.SENT
    uac_out, uas_out = net.uac.events(), uas.events()
    net.now = 1.0
    for session, events in ((net.uac, uas_out), (uas, uac_out)):
        for event in events:
            session.receive_request(event.request, 1.0)  # type: ignore[union-attr]
    net.pump()
    assert net.uac._offers.phase is OfferPhase.GLARE
    assert uas._offers.phase is OfferPhase.GLARE
    uac_due, uas_due = net.uac.next_deadline(), uas.next_deadline()
    assert uac_due is not None and 1.0 + 2.1 <= uac_due <= 1.0 + 4.0
    assert uas_due is not None and 1.0 <= uas_due <= 1.0 + 2.0


# --- the RFC 4028 refresher (§10) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("se", "we_requested", "refresh_at", "expire_at", "phase"),
    [
        ((1800, "uac"), True, 100 + 900, 100 + 1800 - 32, RefreshPhase.REFRESHER),
        ((1800, "uas"), True, None, 100 + 1800 - 32, RefreshPhase.WATCHER),
        ((1800, "uas"), False, 100 + 900, 100 + 1800 - 32, RefreshPhase.REFRESHER),
        ((90, None), False, 100 + 45, 100 + 90 - 30, RefreshPhase.REFRESHER),
        (None, True, None, None, RefreshPhase.OFF),
    ],
)
def test_refresh_at_half_the_interval_expiry_before_its_end(
    se: tuple[int, str | None] | None,
    we_requested: bool,
    refresh_at: float | None,
    expire_at: float | None,
    phase: RefreshPhase,
) -> None:
    refresher = Refresher()
    refresher.negotiated(se, we_requested, 100.0)
    assert (refresher.refresh_at, refresher.expire_at, refresher.phase) == (
        refresh_at,
        expire_at,
        phase,
    )
    assert refresher.interval == (None if se is None else se[0])


def test_a_busy_refresh_waits_then_goes_out_then_the_2xx_rearms() -> None:
    refresher = Refresher()
    refresher.negotiated((120, "uac"), True, 0.0)
    assert refresher.refresh_at == 60.0
    refresher.postpone(60.0 + 4.0)
    assert refresher.phase is RefreshPhase.REFRESHER and refresher.refresh_at == 64.0
    refresher.refresh_due()
    assert refresher.phase is RefreshPhase.REFRESHING and refresher.refresh_at is None
    with pytest.raises(LocalProtocolError):
        refresher.refresh_due()
    refresher.negotiated((120, "uac"), True, 64.5)
    assert (refresher.refresh_at, refresher.expire_at) == (124.5, 64.5 + 120 - 32)


def test_a_session_refreshes_at_exactly_half_the_interval() -> None:
    net = Net()
    net.answered_call(session_expires=90)
    interval = net.uac.session_interval
    assert interval == 90 and net.uac.is_refresher
    net.run_until(44.99)
    assert net.requests("uac", "UPDATE") == []
    net.run_until(45.0)
    assert [when for when, _ in net.requests("uac", "UPDATE")] == [45.0]


# --- the caller's CANCEL (§9.1) -------------------------------------------------------------------
def test_cancel_waits_for_a_provisional_and_goes_out_once() -> None:
    cancel = UacCancel()
    assert cancel.want() is False and cancel.phase is CancelPhase.WANTED
    assert cancel.provisional() is True and cancel.phase is CancelPhase.SENT
    assert cancel.provisional() is False and cancel.want() is False
    other = UacCancel()
    assert other.provisional() is False  # nothing to cancel
    assert other.want() is True  # a provisional was already seen
    other.new_transaction()
    assert not other.provisional_seen


# --- SDP parsed at most once ----------------------------------------------------------------------
def test_events_carry_the_parsed_sdp() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring(ANSWER, status=183)
    uas.answer(ANSWER, 0.0)
    net.pump()
    early, answered = net.app["uac"]
    assert isinstance(early, EarlyMedia) and isinstance(answered, Answered)
    for event in (early, answered):
        assert event.description == SessionDescription.parse(ANSWER)
        assert event.description is not None and event.description.origin.username == "bob"
    net.uac.reinvite(HOLD)
    net.pump()
    offer = net.app["b"][-1]
    assert isinstance(offer, Offer) and offer.description == SessionDescription.parse(HOLD)
    uas.accept_offer(ANSWER, 1.0)
    net.pump()
    answer = last(net, "uac")
    assert isinstance(answer, OfferAnswered) and answer.description is not None


def test_a_malformed_body_keeps_its_bytes_and_has_no_description() -> None:
    net = Net()
    uas = net.add_uas("b")
    uas.ring(b"not sdp\r\n")
    net.pump()
    assert net.app["uac"] == [Ringing(b"not sdp\r\n")]
    ringing = net.app["uac"][0]
    assert isinstance(ringing, Ringing) and ringing.description is None


def test_sdp_is_parsed_once_per_offer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session parses nothing the application does not read; an event's SDP is parsed
    once however many layers read its ``description``."""
    calls: list[bytes | str] = []
    real = SessionDescription.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[SessionDescription], data: bytes | str) -> SessionDescription:
        calls.append(data)
        result: SessionDescription = real(cls, data)
        return result

    monkeypatch.setattr(SessionDescription, "parse", classmethod(counting))
    net = Net()
    uas = net.answered_call()
    calls.clear()
    net.uac.reinvite(HOLD)  # the offer, as the callee's session reports it
    net.pump()
    offer = last(net, "b")
    assert isinstance(offer, Offer) and calls == []
    readers = [offer.description for _ in range(3)]  # e.g. the B2BUA, media plan, bypass
    assert calls == [HOLD] and readers[0] is readers[1] is readers[2] is not None
    calls.clear()
    uas.accept_offer(ANSWER, 0.0)  # the answer, as the caller's session reports it
    net.pump()
    answer = last(net, "uac")
    assert isinstance(answer, OfferAnswered)
    assert answer.description is answer.description is not None
    assert calls == [ANSWER]
    assert uas.state is State.CONFIRMED


def test_confirmed_carries_the_answer_of_an_offerless_invite() -> None:
    net = Net(make_invite(b""))
    uas = net.add_uas("b")
    uas.answer(ANSWER, 0.0)  # the offer is in the 2xx; the caller answers in the ACK
    net.pump()
    offer = last(net, "uac")
    assert isinstance(offer, Offer) and offer.description is not None
    net.uac.accept_offer(HOLD, 0.0)
    net.pump()
    confirmed = last(net, "b")
    assert isinstance(confirmed, Confirmed) and confirmed.description is not None
    assert isinstance(net.uac, InviteSession) and net.uac.state is State.CONFIRMED


# --- REFER and its subscription (RFC 3515 §2.4) ---------------------------------------------------
def test_refer_phases_on_both_sides() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.refer(ReferTo(parse_address("<sip:carol@example.com>")))
    assert net.uac._refer.subscriber is SubscriberPhase.SENT
    net.pump()
    assert uas._refer.notifier is NotifierPhase.PENDING
    uas.accept_refer()
    net.pump()
    assert uas._refer.notifier is NotifierPhase.NOTIFYING
    assert net.uac._refer.subscriber is SubscriberPhase.SUBSCRIBED
    uas.notify_refer(200)
    net.pump()
    assert uas._refer.notifier is NotifierPhase.IDLE
    assert net.uac._refer.subscriber is SubscriberPhase.IDLE


def test_a_refresh_postponed_onto_the_expiry_yields_to_it() -> None:
    """Timers armed later fire later on a tie: the refresh, postponed by T2 while the peer's
    offer waits (60, 64, ... 88 s), meets the expiry at 120 - 32 = 88 s; the expiry fires
    first and the session ends with a BYE, no refresh (RFC 4028 §10)."""
    net = Net(uac_config=SessionConfig(session_expires=120))
    uas = net.answered_call()
    net.frozen.add("b")  # the callee's own expiry (at 88 s too) stays out of the way
    uas.reinvite(HOLD)
    net.pump()
    assert isinstance(last(net, "uac"), Offer)
    net.run_until(87.0)
    assert net.uac.next_deadline() == 88.0
    net.uac.reject_offer(488)  # the dialog is idle again
    net.pump()
    net.run_until(88.0)
    assert net.uac.state is State.DISCONNECTED
    sent = [
        (when, m.method)
        for when, who, m in net.log
        if who == "uac" and when > 0 and isinstance(m, Request)
    ]
    assert sent == [(88.0, "BYE")]
    assert last(net, "uac") == Disconnected(Cause.SESSION_EXPIRED, None, "local")
