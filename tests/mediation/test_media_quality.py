"""Media quality in the call records, end to end through the role's relay with real UDP:
RTP counters and loss from sequence numbers (RFC 3550 A.3) and the loss and jitter each far
end reports in its RTCP sender and receiver reports (§6.4.1), per leg."""

from __future__ import annotations

from pathlib import Path

from lab_harness import WAIT, lab, run, sdp, settle
from rtp_harness import media_end

from hybridvoice.media import Leg
from hybridvoice.media.rtcp import ReceiverReport, ReportBlock, SenderReport
from hybridvoice.mediation.media_sdp import parse_sdp
from hybridvoice.sip.session import Answered

SILENCE = b"\xff" * 160  # 20 ms of PCMU


def test_rtcp_reported_loss_and_jitter_reach_the_call_record(tmp_path: Path) -> None:
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
            assert isinstance(answered, Answered) and answered.sdp is not None
            relay = lab_.role.relay
            assert relay is not None
            (relayed,) = relay.calls.values()
            _, edge_rtp, edge_rtcp = relayed.local(Leg.A)
            _, gw_rtp, gw_rtcp = relayed.local(Leg.B)
            to_client, to_gateway = parse_sdp(answered.sdp), parse_sdp(b.invite.body)
            assert to_client is not None and to_client.media[0].port == edge_rtp
            assert to_gateway is not None and to_gateway.media[0].port == gw_rtp

            # RTP both ways; the client loses 3 packets on the way (a gap in its sequence)
            for n in range(60):
                if n == 50:
                    client.seq += 3
                client.send_rtp(("127.0.0.1", edge_rtp), 0, SILENCE)
            for _ in range(40):
                gateway.send_rtp(("127.0.0.1", gw_rtp), 0, SILENCE)
            assert len(await gateway.expect_rtp(60)) == 60
            assert len(await client.expect_rtp(40)) == 40

            # RTCP: the client's SR reports on the gateway's stream, the gateway's RR on the
            # client's (jitter in 8 kHz timestamp units: 40 = 5 ms, 160 = 20 ms)
            client.send_rtcp(
                ("127.0.0.1", edge_rtcp),
                SenderReport(client.ssrc, packet_count=60, octet_count=60 * 160, reports=(
                    ReportBlock(gateway.ssrc, fraction_lost=13, cumulative_lost=2, jitter=40),
                )),
            )  # fmt: skip
            gateway.send_rtcp(
                ("127.0.0.1", gw_rtcp),
                ReceiverReport(gateway.ssrc, reports=(
                    ReportBlock(client.ssrc, fraction_lost=64, cumulative_lost=7, jitter=160),
                )),
            )  # fmt: skip
            (forwarded_sr,) = await gateway.expect_rtcp(1)  # the relay passes RTCP on
            (forwarded_rr,) = await client.expect_rtcp(1)
            assert isinstance(forwarded_sr, SenderReport) and forwarded_sr.ssrc == client.ssrc
            assert isinstance(forwarded_rr, ReceiverReport) and forwarded_rr.ssrc == gateway.ssrc

            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            record = records.by_call_id(a.call_id)
            assert record is not None and record.a_media is not None
            assert record.b_media is not None
            edge, gw = record.a_media, record.b_media  # outbound: the a-leg is the edge's
            assert (edge.packets_received, edge.packets_sent) == (60, 40)
            assert (gw.packets_received, gw.packets_sent) == (40, 60)
            assert (edge.bytes_received, gw.bytes_received) == (60 * 172, 40 * 172)
            assert (edge.packets_lost, gw.packets_lost) == (3, 0)  # from sequence numbers
            assert (edge.rtcp_packets, gw.rtcp_packets) == (1, 1)
            assert edge.reported_packets_lost == 2 and edge.reported_jitter_ms == 5.0
            assert edge.reported_fraction_lost == 13 / 256
            assert gw.reported_packets_lost == 7 and gw.reported_jitter_ms == 20.0
            assert gw.reported_fraction_lost == 0.25
            assert (record.a_reported_lost, record.a_reported_jitter_ms) == (2, 5.0)
            assert (record.b_reported_lost, record.b_reported_jitter_ms) == (7, 20.0)

    run(main())


def test_no_rtcp_leaves_the_reported_columns_empty(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_, media_end() as client:
            a = lab_.call_out(offer=sdp(client.port))
            b = await lab_.gateways[0].next_call()
            b.answer(sdp(client.port + 2))
            await a.answered(WAIT)
            a.bye()
            await b.ended(WAIT)
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            record = records.by_call_id(a.call_id)
            assert record is not None and record.a_media is not None
            assert record.a_media.reported_packets_lost is None
            assert record.a_reported_lost is None and record.b_reported_jitter_ms is None

    run(main())
