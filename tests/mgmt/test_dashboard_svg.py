"""The dashboard's drawings from call records: the SIP ladder (answered, failover, failed,
cancelled), the media path, the plots; every text escaped, every SVG well-formed XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from hybridvoice.mediation.bypass import MediaMode
from hybridvoice.mediation.records_model import (
    CallRecord,
    CallState,
    Direction,
    DisconnectSide,
    FailoverAttempt,
    MediaCounters,
)
from hybridvoice.mgmt.dashboard.ladder import (
    ladder_from_messages,
    ladder_from_record,
    ladder_svg,
    media_path_svg,
)
from hybridvoice.mgmt.dashboard.plots import (
    Window,
    calls_over_time,
    loss_plot,
    mos_plot,
    setup_time_plot,
)
from hybridvoice.mgmt.dashboard.views import environment

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _answered(**changes: object) -> CallRecord:
    record = CallRecord(
        record_id="r1", a_call_id="a1@x", direction=Direction.OUTBOUND, caller="+15550100",
        callee="+15550199", start_utc=T0, state=CallState.ENDED, gateway="gw1",
        attempts=(FailoverAttempt("gw1", "answered"),), media_mode=MediaMode.ANCHORED,
        a_media=MediaCounters(packets_received=95, packets_lost=5, packets_sent=100),
        b_media=MediaCounters(packets_received=100, packets_sent=95),
        ring_utc=T0 + timedelta(seconds=0.2), answer_utc=T0 + timedelta(seconds=1.5),
        end_utc=T0 + timedelta(seconds=30), answer_after=1.5,
        disconnect_side=DisconnectSide.CALLEE, sip_status=None,
    )  # fmt: skip
    return replace(record, **changes)  # type: ignore[arg-type]


def _labels(record: CallRecord) -> list[tuple[str, str, str]]:
    _, arrows = ladder_from_record(record)
    return [(a.source, a.target, a.label) for a in arrows]


def test_an_answered_call_hung_up_by_the_callee() -> None:
    edge, med, gw = "cloud / edge", "mediation", "gateway gw1"
    assert _labels(_answered()) == [
        (edge, med, "INVITE (SDP offer)"), (med, edge, "100 Trying"), (med, gw, "INVITE"),
        (gw, med, "180 Ringing"), (med, edge, "180 Ringing"),
        (gw, med, "200 OK (SDP answer)"), (med, gw, "ACK"),
        (med, edge, "200 OK (SDP answer)"), (edge, med, "ACK"),
        (gw, med, "BYE"), (med, gw, "200 OK"), (med, edge, "BYE"), (edge, med, "200 OK"),
    ]  # fmt: skip


def test_failover_draws_a_column_per_gateway_tried() -> None:
    record = _answered(
        gateway="gw2",
        attempts=(FailoverAttempt("gw1", "503"), FailoverAttempt("gw3", "timeout"),
                  FailoverAttempt("gw2", "answered")),
    )  # fmt: skip
    columns, arrows = ladder_from_record(record)
    assert columns == ("cloud / edge", "mediation", "gateway gw2", "gateway gw1", "gateway gw3")
    failed = [(a.target, a.label) for a in arrows if a.failure]
    assert failed == [("mediation", "503"), ("mediation", "no answer (timeout)")]


def test_a_failed_and_a_cancelled_call() -> None:
    failed = _answered(
        answer_utc=None, ring_utc=None, attempts=(), a_media=None, b_media=None,
        sip_status=486, cause="Busy Here", disconnect_side=DisconnectSide.CALLEE,
    )  # fmt: skip
    labels = [label for _, _, label in _labels(failed)]
    assert labels[-3:] == ["486 Busy Here", "486 Busy Here", "ACK"]
    cancelled = replace(failed, disconnect_side=DisconnectSide.CALLER, sip_status=487,
                        cause="Request Terminated")  # fmt: skip
    labels = [label for _, _, label in _labels(cancelled)]
    assert labels[-4:] == ["CANCEL", "CANCEL", "487 Request Terminated", "ACK"]


def test_inbound_calls_start_at_the_gateway() -> None:
    columns, arrows = ladder_from_record(_answered(direction=Direction.INBOUND))
    assert columns[0] == "gateway gw1" and arrows[0].source == "gateway gw1"


def test_every_drawing_is_well_formed_and_escapes_what_callers_control() -> None:
    hostile = '<script>alert("x")</script>&'
    record = _answered(gateway=hostile, caller=hostile, cause=hostile, media_reason=hostile,
                       attempts=(FailoverAttempt(hostile, hostile),))  # fmt: skip
    window = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1), 12)
    drawings = [
        ladder_svg(*ladder_from_record(record), record.start_utc), media_path_svg(record),
        calls_over_time([record], window), setup_time_plot([record], window),
        loss_plot([record], window), calls_over_time([], window),
    ]  # fmt: skip
    for svg in drawings:
        ET.fromstring(svg)  # raises on anything unescaped
        assert "<script>" not in svg


def test_the_media_path_shows_relay_legs_or_a_bypass() -> None:
    anchored = media_path_svg(_answered())
    assert "mediation relay" in anchored and "loss 5.0%" in anchored
    bypass = media_path_svg(_answered(media_mode=MediaMode.BYPASS, a_media=None, b_media=None))
    assert "mediation relay" not in bypass and "RTP direct (bypass)" in bypass


def test_plots_count_answered_and_failed_per_bucket() -> None:
    window = Window(T0, T0 + timedelta(hours=1), 4)  # 15-minute bars
    records = [
        _answered(),
        _answered(record_id="r2", answer_utc=None, answer_after=None, sip_status=503),
        _answered(record_id="r3", start_utc=T0 + timedelta(minutes=20)),
        _answered(record_id="r4", state=CallState.ACTIVE),  # in progress: not counted yet
        _answered(record_id="r5", start_utc=T0 - timedelta(minutes=1)),  # before the window
    ]
    svg = calls_over_time(records, window)
    assert "01:00: 1 answered, 1 failed" in svg and "01:15: 1 answered, 0 failed" in svg
    assert svg.count("<rect") == 3
    loss = loss_plot(records, window)
    assert "01:00:00 5%" in loss and "00:59:00" not in loss  # calls outside are left out
    assert "01:00:00 1.5 s" in setup_time_plot(records, window)
    scored = [replace(records[0], mos=4.4), replace(records[2], mos=2.1, mos_poor=True)]
    mos = mos_plot(scored + records[3:], window)
    assert 'class="dot ok"><title>01:00:00 4.4<' in mos
    assert 'class="dot bad"><title>01:20:00 2.1<' in mos and mos.count("<circle") == 2


def test_mos_is_shown_in_history_and_on_the_call_page() -> None:
    env = environment()
    assert env.globals["mos"] is True  # call records carry it (issue 13's MOS)
    record = replace(_answered(), mos=2.913, mos_poor=True)
    values = {"me": None, "now": T0, "title": "t", "ladder": "", "media": "", "captured": 0}
    page = env.get_template("call.html").render(call=record, **values)
    assert "MOS (E-model)" in page and "2.91" in page and "poor" in page
    unknown = env.get_template("call.html").render(call=_answered(), **values)
    assert "poor" not in unknown
    form = {"q": "", "since": "", "until": "", "result": ""}
    listed = env.get_template("history.html").render(
        calls=[record], form=form, problems=[], results=(), kept=True, **values
    )
    assert '<th class="num">MOS</th>' in listed and "2.91" in listed


class _Message(NamedTuple):
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes


def test_a_captured_ladder_names_known_addresses_and_marks_failures_not_challenges() -> None:
    ua, proxy, gw = ("127.0.0.1", 4000), ("127.0.0.1", 5060), ("192.0.2.9", 5060)
    t = T0.timestamp()
    messages = [
        _Message(t, ua, proxy, b"INVITE sip:+15550199@x SIP/2.0\r\n\r\n"),
        _Message(t + 0.01, proxy, ua, b"SIP/2.0 407 Proxy Authentication Required\r\n\r\n"),
        _Message(t + 0.02, proxy, gw, b"INVITE sip:+15550199@gw SIP/2.0\r\n\r\n"),
        _Message(t + 0.5, gw, proxy, b"SIP/2.0 503 Service Unavailable\r\n\r\n"),
    ]
    columns, arrows = ladder_from_messages(messages, {proxy: "online service 127.0.0.1:5060"})
    assert columns == ("127.0.0.1:4000", "online service 127.0.0.1:5060", "192.0.2.9:5060")
    assert [(a.label, a.failure) for a in arrows] == [
        ("INVITE sip:+15550199@x", False), ("407 Proxy Authentication Required", False),
        ("INVITE sip:+15550199@gw", False), ("503 Service Unavailable", True),
    ]  # fmt: skip
    svg = ladder_svg(columns, arrows, arrows[0].at)
    ET.fromstring(svg)
    assert ">online service<" in svg and ">127.0.0.1:5060<" in svg and "+0.500" in svg
