"""The relay's round trip per leg (media/relay.py, RFC 3550 §6.4.1): an SR from one leg's
far end, forwarded, echoed as LSR with DLSR in the other far end's report block."""

from __future__ import annotations

import pytest

from hybridvoice.media import Leg, RelaySession
from hybridvoice.media.rtcp import ReceiverReport, ReportBlock, SenderReport, serialize_rtcp

NTP = 0x83AA7E80_40000000  # some NTP time; LSR is its middle 32 bits
LSR = (NTP >> 16) & 0xFFFFFFFF


def session() -> RelaySession:
    s = RelaySession("c", (20000, 20001), (20002, 20003))
    s.set_remote(Leg.A, "127.0.0.1", 30000)
    s.set_remote(Leg.B, "127.0.0.1", 30002)
    return s


def test_round_trip_of_each_leg_on_the_relays_clock() -> None:
    s = session()
    s.a.on_rtcp(serialize_rtcp([SenderReport(0xA, ntp_timestamp=NTP)]), now=100.0)
    # b's far end held the SR 0.5 s (DLSR in 1/65536 s) and its report came 0.62 s later
    block = ReportBlock(0xA, lsr=LSR, dlsr=int(0.5 * 65536))
    s.b.on_rtcp(serialize_rtcp([ReceiverReport(0xB, (block,))]), now=100.62)
    stats = s.stats()
    assert stats.b.round_trip_ms == pytest.approx(120.0, abs=0.1)
    assert stats.a.round_trip_ms is None  # a's far end reported nothing


@pytest.mark.parametrize(
    ("lsr", "now"),
    [(0, 100.62), (LSR + 1, 100.62), (LSR, 100.2)],
    ids=["no-sr-yet", "unknown-sr", "negative"],
)
def test_no_round_trip_when_it_cannot_be_known(lsr: int, now: float) -> None:
    s = session()
    s.a.on_rtcp(serialize_rtcp([SenderReport(0xA, ntp_timestamp=NTP)]), now=100.0)
    block = ReportBlock(0xA, lsr=lsr, dlsr=int(0.5 * 65536))
    s.b.on_rtcp(serialize_rtcp([ReceiverReport(0xB, (block,))]), now=now)
    assert s.stats().b.round_trip_ms is None


def test_only_the_last_few_sender_reports_are_kept() -> None:
    s = session()
    for n in range(50):
        sr = SenderReport(0xA, ntp_timestamp=NTP + (n << 32))
        s.a.on_rtcp(serialize_rtcp([sr]), now=100.0 + n)
    assert len(s.a.sr_arrivals) <= 8
