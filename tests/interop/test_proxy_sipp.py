"""Interop: SIPp uac -> hybridvoice Proxy -> SIPp uas over UDP (RFC 3261 §16, §16.6
Record-Route so that ACK and BYE cross the proxy, §16.7 response forwarding, §16.11 the
stateless ACK for the 2xx).

The UAS copies the Record-Route into its responses and the UAC keeps the route set
(``rrs="true"``) and sends its ACK and BYE to ``[next_url]`` with ``[routes]``: every
in-dialog request goes through the proxy. 300 calls at 100 calls/s; both SIPp instances must
report 0 failed calls and 0 unexpected messages. The UAS is ``scenarios/chain_uas.xml`` (the
chain tests' phone behind proxies); the UAC is written into the test's temporary directory;
SIPp is stopped by PID.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from interop_programs import SCENARIOS, free_port, need_binary, running, sipp_stats, wait_bound
from test_sipp import SIPP_TIMEOUT, assert_clean, sipp_common, wait_exit

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.proxy import Forward, Proxy, Target
from hybridvoice.net.transport import Source
from hybridvoice.sip import Request, Response, parse_uri

# SIPp load runs (hundreds of calls a second): alone, after the other tests (scripts/test.sh)
pytestmark = [pytest.mark.interop, pytest.mark.load, pytest.mark.xdist_group("sipp-load")]

CALLS = 300
RATE = 100

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="UAC through a record-routing proxy">
  <send retrans="500" start_txn="invite">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true" response_txn="invite"/>
  <recv response="180" optional="true" response_txn="invite"/>
  <recv response="200" rtd="true" rrs="true" response_txn="invite"/>
  <send ack_txn="invite">
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="100"/>
  <send retrans="500" start_txn="bye">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" response_txn="bye"/>
</scenario>
"""


class ToUas:
    """Every initial request goes to the SIPp UAS; in-dialog requests are let through."""

    def __init__(self, port: int) -> None:
        self.target = Target(parse_uri(f"sip:service@127.0.0.1:{port}"))
        self.forward = Forward(((self.target,),))

    def route(self, request: Request, source: Source) -> Forward:
        return self.forward

    def admit(self, request: Request, source: Source) -> Response | None:
        return None


def test_sipp_uac_through_the_proxy_to_sipp_uas(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    (tmp_path / "uac.xml").write_text(UAC)

    async def main() -> None:
        uas_port = free_port()
        endpoint = Endpoint()
        proxy = Proxy(endpoint, ToUas(uas_port))
        listening = await endpoint.listen("UDP", "127.0.0.1", 0)
        uas_args = [
            sipp, "-sf", str(SCENARIOS / "chain_uas.xml"), "-t", "u1", "-m", str(CALLS),
            *sipp_common(uas_port, tmp_path, "uas"),
        ]  # fmt: skip
        uac_args = [
            sipp, f"127.0.0.1:{listening.local[1]}", "-sf", str(tmp_path / "uac.xml"),
            "-s", "service", "-t", "u1", "-m", str(CALLS), "-r", str(RATE),
            *sipp_common(free_port(), tmp_path, "uac"),
        ]  # fmt: skip
        try:
            with running(uas_args, tmp_path / "uas.out") as uas:
                await wait_bound(uas, uas_port)
                assert uas.returncode is None, uas.output()
                with running(uac_args, tmp_path / "uac.out") as uac:
                    uac_code = await wait_exit(uac, SIPP_TIMEOUT + 10)
                uas_code = await wait_exit(uas, SIPP_TIMEOUT)
            print(f"proxy: {proxy.counters}; {endpoint.counters}")
            assert_clean(sipp_stats(tmp_path / "uac.csv"), CALLS, "uac")
            assert_clean(sipp_stats(tmp_path / "uas.csv"), CALLS, "uas")
            assert uac_code == 0, uac.output()[-2000:]
            assert uas_code == 0, uas.output()[-2000:]
            counters = proxy.counters
            assert counters.requests_forwarded == {"INVITE": CALLS, "BYE": CALLS}
            assert counters.acks_forwarded >= CALLS  # the UAC may repeat its ACK
            assert counters.local_responses == {}
            assert endpoint.parse_errors == 0
        finally:
            await endpoint.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
