"""INVITE sessions once set up: BYE (RFC 3261 §15), re-INVITE hold/resume and glare (§14),
UPDATE (RFC 3311), session timers (RFC 4028) and CSeq (§12.2.2), over the in-memory
``session_harness``."""

from __future__ import annotations

import pytest
from session_harness import (
    ANSWER,
    HELD,
    HOLD,
    OFFER,
    RESUME,
    RESUMED,
    Net,
    last,
    make_invite,
    sdp,
    statuses,
)

from hybridvoice.sip import LocalProtocolError, Request, make_cancel, make_response
from hybridvoice.sip.session import (
    Answered,
    Cause,
    Confirmed,
    Disconnected,
    Offer,
    OfferAnswered,
    OfferRejected,
    SessionConfig,
    State,
)


# --- BYE (§15) -----------------------------------------------------------------------------------
def test_bye_from_the_callee() -> None:
    net = Net()
    uas = net.answered_call()
    uas.bye()
    net.pump()
    bye = net.requests("b", "BYE")[0][1]
    assert str(bye.cseq) == "1 BYE" and str(bye.uri) == "sip:alice@client.atlanta.example.com"
    assert last(net, "b") == Disconnected(Cause.NORMAL, None, "local")
    assert last(net, "uac") == Disconnected(Cause.NORMAL, None, "remote")
    assert statuses(net, "uac") == ["200 BYE"]
    uas.bye()  # hanging up twice is harmless
    assert uas.events() == []


def test_callee_bye_before_the_ack_waits_for_it() -> None:
    """§15: the callee must not send BYE before the ACK (or its timeout)."""
    net = Net()
    uas = net.add_uas("b")
    uas.answer(ANSWER, 0.0)
    uas.bye()
    assert uas.state is State.CONNECTING
    net.pump()
    assert [m.method for _, _, m in net.log if isinstance(m, Request)] == ["INVITE", "ACK", "BYE"]
    assert net.app["b"] == [Confirmed(None), Disconnected(Cause.NORMAL, None, "local")]


def test_requests_after_the_end_get_481() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    info = dialog.create_request("INFO")
    net.uac.bye()
    net.pump()
    net.deliver("uac", info, uas)
    net.pump()
    assert statuses(net, "b")[-1] == "481 INFO"


def test_bye_while_an_offer_is_pending_answers_it_487() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    net.uac.events()
    dialog = net.uac.dialog
    assert dialog is not None
    net.deliver("uac", dialog.create_request("BYE"), uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 BYE", "487 INVITE"]


# --- re-INVITE (§14), glare (§14.1), UPDATE (RFC 3311) -------------------------------------------
def test_hold_and_resume_with_reinvite() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    assert last(net, "b") == Offer(HOLD) and b"a=sendonly" in HOLD
    uas.accept_offer(HELD, net.now)
    net.pump()
    assert last(net, "uac") == OfferAnswered(HELD) and b"a=recvonly" in HELD
    reinvite = net.requests("uac", "INVITE")[1][1]
    assert str(reinvite.cseq) == "2 INVITE" and reinvite.body == HOLD
    assert str(net.requests("uac", "ACK")[1][1].cseq) == "2 ACK"
    assert uas.next_deadline() != pytest.approx(net.now + 0.5)  # the 2xx was acknowledged

    net.uac.reinvite(RESUME)
    net.pump()
    uas.accept_offer(RESUMED, net.now)
    net.pump()
    assert last(net, "uac") == OfferAnswered(RESUMED)
    assert net.uac.state is uas.state is State.CONFIRMED


def test_rejected_reinvite_keeps_the_call() -> None:
    net = Net()
    uas = net.answered_call()
    uas.reinvite(HOLD)
    net.pump()
    net.uac.reject_offer(488)
    net.pump()
    assert last(net, "b") == OfferRejected(488)
    assert net.uac.state is uas.state is State.CONFIRMED
    uas.reinvite(HOLD)  # free to try again
    net.pump()
    assert last(net, "uac") == Offer(HOLD)


def test_reinvite_without_offer_gets_ours_in_the_2xx_and_the_answer_in_the_ack() -> None:
    net = Net()
    uas = net.answered_call()
    uas.reinvite(None)
    net.pump()
    assert last(net, "uac") == Offer(None)
    net.uac.accept_offer(RESUME, net.now)
    net.pump()
    assert last(net, "b") == Offer(RESUME)
    uas.accept_offer(RESUMED, net.now)
    net.pump()
    assert net.requests("b", "ACK")[-1][1].body == RESUMED
    assert last(net, "uac") == OfferAnswered(RESUMED)


def test_glare_both_get_491_and_retry_after_the_rfc_delays() -> None:
    net = Net()
    uas = net.answered_call()
    start = net.now
    net.uac.reinvite(HOLD)
    uas.reinvite(sdp("bob", "sendonly", 2))
    net.pump()
    assert statuses(net, "uac")[-1] == "491 INVITE" and statuses(net, "b")[-1] == "491 INVITE"
    assert not any(isinstance(e, Offer | OfferRejected) for e in net.app["uac"] + net.app["b"])
    # §14.1: the callee (not the Call-ID's owner) retries within 0-2 s, the caller 2.1-4 s
    uas_retry, uac_retry = uas.next_deadline(), net.uac.next_deadline()
    assert uas_retry is not None and uac_retry is not None
    assert start <= uas_retry <= start + 2.0
    assert start + 2.1 <= uac_retry <= start + 4.0
    net.run_until(uas_retry)
    assert last(net, "uac") == Offer(sdp("bob", "sendonly", 2))
    net.uac.accept_offer(sdp("alice", "recvonly", 2), net.now)
    net.pump()
    net.run_until(uac_retry)
    assert last(net, "b") == Offer(HOLD)
    uas.accept_offer(HELD, net.now)
    net.pump()
    assert last(net, "uac") == OfferAnswered(HELD)
    reinvites = [str(m.cseq) for _, m in net.requests("uac", "INVITE")]
    assert reinvites == ["1 INVITE", "2 INVITE", "3 INVITE"]


def test_second_offer_while_the_first_is_unanswered_gets_500_with_retry_after() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    dialog = net.uac.dialog
    assert dialog is not None
    update = dialog.create_request("UPDATE", body=RESUME, content_type="application/sdp")
    net.deliver("uac", update, uas)
    net.pump()
    refusal = net.responses("b", "500 UPDATE")[0][1]
    assert 0 <= int(refusal.headers.get("Retry-After") or "-1") <= 10
    with pytest.raises(LocalProtocolError):
        net.uac.update(RESUME)  # §14.1: ours is still in progress


def test_update_in_a_confirmed_dialog() -> None:
    net = Net()
    uas = net.answered_call()
    uas.update(HOLD)
    net.pump()
    assert last(net, "uac") == Offer(HOLD)
    net.uac.accept_offer(HELD, net.now)
    net.pump()
    assert last(net, "b") == OfferAnswered(HELD)
    update = net.requests("b", "UPDATE")[0][1]
    assert update.contact and str(update.cseq) == "1 UPDATE"
    assert net.requests("uac", "ACK")[-1][1].cseq is not None  # no ACK for UPDATE
    assert [m for _, m in net.requests("b", "ACK")] == []


def test_update_in_an_early_dialog() -> None:
    """RFC 3311: an offer-less UPDATE works in an early dialog; without 100rel an offer
    cannot go there before the INVITE's answer (§5.1), and is refused if it does."""
    net = Net()
    uas = net.add_uas("b")
    uas.ring()
    net.pump()
    with pytest.raises(LocalProtocolError):
        net.uac.update(HOLD)
    net.uac.update()
    net.pump()
    assert statuses(net, "b")[-1] == "200 UPDATE" and uas.state is State.EARLY
    uas.update()  # and the other way
    net.pump()
    assert statuses(net, "uac")[-1] == "200 UPDATE"
    early = net.uac.early_dialogs[0]
    offer = early.create_request("UPDATE", body=HOLD, content_type="application/sdp")
    net.deliver("uac", offer, uas)
    net.pump()
    assert statuses(net, "b")[-1] == "500 UPDATE"  # the INVITE's offer is unanswered
    uas.answer(ANSWER, net.now)
    net.pump()
    assert net.uac.state is State.CONFIRMED


def test_cancelled_reinvite_gets_487() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    net.deliver("uac", make_cancel(reinvite), uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 CANCEL", "487 INVITE"]
    assert last(net, "uac") == OfferRejected(487)
    with pytest.raises(LocalProtocolError):
        uas.accept_offer(HELD, net.now)


@pytest.mark.parametrize(
    ("status", "cause", "bye"), [(481, Cause.DIALOG_GONE, 0), (408, Cause.TIMEOUT, 1)]
)
def test_reinvite_answered_481_or_408_ends_the_call(status: int, cause: Cause, bye: int) -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    if status == 408:
        net.uac.request_timeout(reinvite, net.now)
    else:
        net.uac.receive_response(make_response(reinvite, 481), net.now)
    net.pump()
    assert last(net, "uac") == Disconnected(cause, status, "remote")
    assert len(net.requests("uac", "BYE")) == bye
    assert uas.state is (State.DISCONNECTED if bye else State.CONFIRMED)


def test_a_reinvite_the_transport_could_not_send_ends_the_call_with_its_words() -> None:
    """The 408 of a failed re-INVITE carries the transport's words to ``Disconnected``; a
    481 from the peer carries none."""
    net = Net()
    net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    net.uac.request_timeout(reinvite, net.now, "TLS handshake with 192.0.2.7:5061 failed")
    net.pump()
    assert last(net, "uac") == Disconnected(
        Cause.TIMEOUT, 408, "remote", "TLS handshake with 192.0.2.7:5061 failed"
    )


def test_late_2xx_to_a_reinvite_we_gave_up_on_is_still_acked() -> None:
    net = Net()
    uas = net.answered_call()
    net.uac.reinvite(HOLD)
    net.pump()
    reinvite = net.requests("uac", "INVITE")[-1][1]
    assert isinstance(reinvite, Request)
    net.uac.receive_response(make_response(reinvite, 500), net.now)  # say, a proxy's 500
    uas.accept_offer(HELD, net.now)
    net.pump()
    assert str(net.requests("uac", "ACK")[-1][1].cseq) == "2 ACK"
    assert uas.next_deadline() != net.now + 0.5


# --- session timers (RFC 4028) -------------------------------------------------------------------
def test_session_timer_refreshes_at_half_the_interval() -> None:
    net = Net(uac_config=SessionConfig(session_expires=120))
    uas = net.answered_call()
    ok = net.responses("b", "200 INVITE")[0][1]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    assert net.uac.is_refresher and not uas.is_refresher and uas.session_interval == 120
    net.run_until(400.0)
    refreshes = net.requests("uac", "UPDATE")
    assert [t for t, _ in refreshes] == [60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
    assert refreshes[0][1].headers.get("Session-Expires") == "120;refresher=uac"
    assert refreshes[0][1].body == b"" and net.app["b"] == [Confirmed(None)]
    assert net.uac.state is uas.state is State.CONFIRMED


def test_session_expires_without_refresh_and_the_other_side_says_bye() -> None:
    net = Net(uac_config=SessionConfig(session_expires=120))
    uas = net.answered_call()
    net.run_until(100.0)  # one refresh, at 60
    net.frozen.add("uac")  # the refresher is gone
    net.run_until(1000.0)
    # the next refresh was due at 120; expiry is 120 - min(32, 120/3) = 88 s after 60
    assert [t for t, _ in net.requests("b", "BYE")] == [148.0]
    assert last(net, "b") == Disconnected(Cause.SESSION_EXPIRED, None, "local")
    assert uas.state is State.DISCONNECTED


def test_callee_refreshes_when_the_caller_does_not_support_timers() -> None:
    net = Net(make_invite(extra=b"Supported: replaces\r\nSession-Expires: 90\r\n"))
    uas = net.answered_call()
    assert (
        net.responses("b", "200 INVITE")[0][1].headers.get("Session-Expires") == "90;refresher=uas"
    )
    assert uas.is_refresher and not net.uac.is_refresher
    net.run_until(100.0)
    assert [t for t, _ in net.requests("b", "UPDATE")] == [45.0, 90.0]


def test_refresh_with_reinvite_when_the_peer_lacks_update() -> None:
    net = Net(
        make_invite(extra=b"Allow: INVITE, ACK, CANCEL, BYE\r\n"), SessionConfig(session_expires=90)
    )
    net.answered_call()
    assert net.uac.is_refresher
    uas_allow = net.responses("b", "200 INVITE")[0][1].headers.get("Allow")
    assert uas_allow is not None and "UPDATE" in uas_allow
    net.run_until(50.0)  # the UAS allows UPDATE: the UAC refreshes with UPDATE
    assert len(net.requests("uac", "UPDATE")) == 1
    # the other way round: the UAS would refresh with a re-INVITE carrying its last SDP
    net2 = Net(
        make_invite(extra=b"Allow: INVITE, ACK, BYE\r\nSupported: x\r\nSession-Expires: 90\r\n")
    )
    callee = net2.answered_call()
    net2.run_until(50.0)
    refresh = net2.requests("b", "INVITE")[0][1]
    assert refresh.body == ANSWER and last(net2, "uac") == Offer(ANSWER)
    net2.uac.accept_offer(OFFER, net2.now)
    net2.pump()
    assert OfferAnswered not in [type(e) for e in net2.app["b"]]  # a refresh is silent
    assert callee.state is State.CONFIRMED


def test_too_small_session_expires_gets_422_and_the_caller_retries() -> None:
    net = Net(uac_config=SessionConfig(session_expires=90))
    first = net.add_uas("b", SessionConfig(min_se=300, session_expires=1800))
    too_small = net.responses("b", "422 INVITE")[0][1]
    assert too_small.headers.get("Min-SE") == "300"
    assert net.app["b"] == [Disconnected(Cause.REJECTED, 422, "local")]
    assert first.state is State.DISCONNECTED and net.uac.state is State.CALLING
    retry = net.invite
    assert str(retry.cseq) == "2 INVITE" and retry.headers.get("Session-Expires") == "300"
    net.uases.clear()
    uas = net.answered_call("b", min_se=300)
    assert uas.session_interval == net.uac.session_interval == 300


def test_reinvite_with_too_small_session_expires_gets_422() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    refresh = dialog.create_request("UPDATE", headers=[("Session-Expires", 60)])
    net.deliver("uac", refresh, uas)
    net.pump()
    assert net.responses("b", "422 UPDATE")[0][1].headers.get("Min-SE") == "90"


def test_refresh_answered_422_is_retried_with_the_larger_interval() -> None:
    net = Net(uac_config=SessionConfig(session_expires=90))
    uas = net.answered_call(min_se=90)
    uas._config = SessionConfig(min_se=120)  # the callee became stricter
    net.run_until(46.0)
    refreshes = [m.headers.get("Session-Expires") for _, m in net.requests("uac", "UPDATE")]
    assert refreshes == ["90;refresher=uac", "120;refresher=uac"]
    assert statuses(net, "b")[-2:] == ["422 UPDATE", "200 UPDATE"]
    assert net.uac.session_interval == 120 and last(net, "uac") == Answered(ANSWER)


def test_timers_wait_while_the_dialog_is_busy() -> None:
    net = Net(uac_config=SessionConfig(session_expires=90))
    uas = net.answered_call()
    uas.reinvite(HOLD)
    net.pump()  # the offer waits for the caller's application
    net.run_until(50.0)
    assert net.requests("uac", "UPDATE") == []  # the refresh (due at 45) waits
    net.uac.accept_offer(HELD, net.now)  # this re-INVITE's 2xx refreshed the session
    net.pump()
    net.run_until(96.0)
    assert [t for t, _ in net.requests("uac", "UPDATE")] == [95.0]

    # glare retry: re-armed while the peer's offer is pending
    net.uac.reinvite(RESUME)
    uas.reinvite(RESUMED)
    net.pump()
    uac_retry = net.uac.next_deadline()
    uas_retry = uas.next_deadline()
    assert uac_retry is not None and uas_retry is not None
    net.run_until(uas_retry)  # the callee retries first; the caller does not answer yet
    net.run_until(uac_retry)
    seqs = [m.cseq.seq for _, m in net.requests("uac", "INVITE") if m.cseq]
    assert seqs == [1, 3] and net.uac.next_deadline() is not None  # re-armed
    net.uac.accept_offer(RESUME, net.now)
    net.pump()
    net.run_until(net.now + 4.0)
    assert [m.cseq.seq for _, m in net.requests("uac", "INVITE") if m.cseq] == [1, 3, 4]
    assert last(net, "b") == Offer(RESUME)


def test_callee_imposes_a_timer_it_refreshes_itself_when_the_caller_asks_none() -> None:
    """RFC 4028 §9: without Session-Expires in the request, the UAS may add one, and is
    then the refresher."""
    net = Net(uac_config=SessionConfig(session_expires=None))
    assert "Session-Expires" not in net.invite.headers
    uas = net.answered_call()
    ok = net.responses("b", "200 INVITE")[0][1]
    assert ok.headers.get("Session-Expires") == "1800;refresher=uas" and "Require" not in ok.headers
    assert uas.is_refresher and net.uac.session_interval == 1800 and not net.uac.is_refresher


# --- CSeq (§12.2.2) and other in-dialog requests -------------------------------------------------
def test_old_cseq_gets_500() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    first, second = dialog.create_request("OPTIONS"), dialog.create_request("OPTIONS")
    net.deliver("uac", second, uas)
    net.deliver("uac", first, uas)
    net.pump()
    assert statuses(net, "b")[-2:] == ["200 OPTIONS", "500 OPTIONS"]
    assert uas.state is State.CONFIRMED


def test_unknown_dialog_gets_481_and_options_get_200() -> None:
    net = Net()
    uas = net.answered_call()
    dialog = net.uac.dialog
    assert dialog is not None
    options = dialog.create_request("OPTIONS")
    net.deliver("uac", options, uas)
    stranger = dialog.create_request("INFO")
    stranger.headers.set("From", "<sip:mallory@example.com>;tag=other")
    net.deliver("uac", stranger, uas)
    net.deliver("uac", dialog.create_request("MESSAGE"), uas)
    net.pump()
    assert statuses(net, "b")[-3:] == ["200 OPTIONS", "481 INFO", "501 MESSAGE"]
