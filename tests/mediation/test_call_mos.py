"""The MOS estimate in the call record, end to end through the role's relay with real UDP:
the relay measures the gateway leg's round trip from the gateway's RR echoing (LSR) the
client's SR it forwarded (RFC 3550 §6.4.1), and the record gets the E-model's MOS with the
poor flag for a call whose far end lost half of what it was sent."""

from __future__ import annotations

from pathlib import Path

from lab_harness import WAIT, lab, run, sdp, settle
from rtp_harness import media_end

from hybridvoice.media import Leg
from hybridvoice.media.rtcp import ReceiverReport, ReportBlock, SenderReport
from hybridvoice.sip.session import Answered

SILENCE = b"\xff" * 160  # 20 ms of PCMU
NTP = 0x83AA7E80_40000000


def test_round_trip_and_mos_reach_the_call_record(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            lab(tmp_path, relay=True) as lab_,
            media_end() as client,
            media_end() as gateway,
        ):
            a = lab_.call_out(offer=sdp(client.port))
            b = await lab_.gateways[0].next_call()
            b.answer(sdp(gateway.port))
            answered = await a.answered(WAIT)
            assert isinstance(answered, Answered)
            relay = lab_.role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            _, edge_rtp, edge_rtcp = relayed.local(Leg.A)
            _, gw_rtp, gw_rtcp = relayed.local(Leg.B)
            for _ in range(60):
                client.send_rtp(("127.0.0.1", edge_rtp), 0, SILENCE)
            for _ in range(60):
                gateway.send_rtp(("127.0.0.1", gw_rtp), 0, SILENCE)
            assert len(await gateway.expect_rtp(60)) == 60
            assert len(await client.expect_rtp(60)) == 60
            client.send_rtcp(("127.0.0.1", edge_rtcp),
                             SenderReport(client.ssrc, ntp_timestamp=NTP))  # fmt: skip
            await gateway.expect_rtcp(1)  # forwarded: the gateway answers it now
            lsr = (NTP >> 16) & 0xFFFFFFFF
            gateway.send_rtcp(
                ("127.0.0.1", gw_rtcp),
                ReceiverReport(gateway.ssrc, reports=(
                    ReportBlock(client.ssrc, fraction_lost=128, cumulative_lost=30, jitter=80,
                                lsr=lsr, dlsr=0),
                )),
            )  # fmt: skip
            await client.expect_rtcp(1)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            record = records.by_call_id(a.call_id)
            assert record is not None and record.b_media is not None
            rtt = record.b_media.reported_round_trip_ms
            assert rtt is not None and rtt >= 0.0
            assert record.a_media is not None and record.a_media.reported_round_trip_ms is None
            # half of what the relay sent the gateway was lost: far below the 3.6 threshold
            assert record.mos is not None and 1.0 <= record.mos < 2.0
            assert record.mos_poor is True

    run(main())
