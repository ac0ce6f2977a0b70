"""baresip with SDES-SRTP (``mediaenc``, RFC 4568) through the whole chain of ``hybridvoice
up`` to a SIPp gateway speaking plain RTP (issue 11, "SRTP toward clients").

baresip registers as alice through the online service and dials the PSTN: online -> edge ->
mediation -> SIPp ``uas`` (``scenarios/uas_rtp.xml`` with ``-rtp_echo``) configured as
Gateway1 with ``MediaEncryption = RTP``. The mediation role answers baresip's ``a=crypto``
with its own key and ends SRTP at its relay: baresip's leg is SRTP (the relay decrypts what
baresip sends and encrypts the gateway's echo toward it), the gateway's leg plain RTP. Media
both ways is counted at the relay, with no SRTP authentication failure or replay, and the
gateway saw an ``RTP/AVP`` offer without ``a=crypto``.

baresip's one plain RTCP APP packet at stream start is counted as an SRTP error and dropped.

``mediaenc=srtp`` offers ``RTP/AVP`` with ``a=crypto`` (best effort), ``srtp-mand`` offers
``RTP/SAVP``: both are answered in kind.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from conftest import SCENARIOS, need_binary
from conftest import Program as SippProgram
from ports import free_port, free_port_pair
from test_chain_baresip import invite_call_id, run, until, write_config
from test_chain_sipp import chain, chain_settings, contacts, gateway, mediation_of
from test_sipp import sipp_common
from tls_helpers import BaresipControl, BaresipPorts, baresip_argv, running

from hybridvoice.app import LAB_PSTN_NUMBER
from hybridvoice.cms.settings import parse_settings

pytestmark = pytest.mark.interop


def _gateway_uas(sipp: str, port: int, tmp: Path) -> SippProgram:
    args = [
        sipp, "-sf", str(SCENARIOS / "uas_rtp.xml"), "-rtp_echo",
        "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
        "-trace_logs", "-log_file", str(tmp / "gw_log.txt"), "-trace_msg",
        "-message_file", str(tmp / "gw_messages.txt"), *sipp_common(port, tmp, "gw"),
    ]  # fmt: skip
    return SippProgram(args, tmp / "gw.out")


@pytest.mark.parametrize("mediaenc", ["srtp", "srtp-mand"])
def test_baresip_srtp_through_the_chain_to_an_rtp_gateway(tmp_path: Path, mediaenc: str) -> None:
    baresip = need_binary("baresip", "baresip")
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        gw_port = free_port()
        base = chain_settings(gateway(1, gw_port), keep_lab_gateway=False)
        raw = base.model_dump(by_alias=True, mode="json", exclude_none=True)
        raw["Gateways"][0]["MediaEncryption"] = "RTP"
        raw["MediationServer"]["ClientMediaEncryption"] = "Optional"
        async with chain(tmp_path, parse_settings(raw), lab_gateway=False) as up:
            relay = mediation_of(up).relay
            assert relay is not None  # media anchored: the tenant has media bypass off
            gw = _gateway_uas(sipp, gw_port, tmp_path)
            ports = BaresipPorts(host="127.0.0.1", sip=free_port_pair(), ctrl=free_port())
            config = write_config(tmp_path / "baresip", ports, up.settings.online.sip_port)
            with (config / "config").open("a") as f:
                f.write("module srtp.so\n")
            accounts = config / "accounts"
            accounts.write_text(accounts.read_text().strip() + f";mediaenc={mediaenc}\n")
            try:
                async with contextlib.AsyncExitStack() as stack:
                    argv = baresip_argv(baresip, config, seconds=40, ipv6=False)
                    phone = await stack.enter_async_context(running(argv, tmp_path / "baresip.out"))
                    ctrl = await BaresipControl.connect(ports.ctrl, phone, timeout=10)
                    stack.push_async_callback(ctrl.close)
                    await until("alice registered", lambda: contacts(up, "alice"), phone, 10)

                    await ctrl.send("dial", f"sip:{LAB_PSTN_NUMBER}@contoso.example")
                    event = await ctrl.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=10)
                    assert event["type"] == "CALL_ESTABLISHED", (ctrl.events, phone.text()[-4000:])
                    invite_call_id(phone)

                    def both_ways() -> bool:
                        stats = [c.stats() for c in relay.calls.values()]
                        return len(stats) == 1 and min(stats[0].a.packets, stats[0].b.packets) >= 25

                    await until("media through the relay both ways", both_ways, phone, 10)
                    (call,) = relay.calls.values()
                    stats = call.stats()
                    await ctrl.send("hangup")
                    await ctrl.wait_event("CALL_CLOSED", timeout=10)
                    await until("the relay released", lambda: not relay.calls, phone, 10)
                    await ctrl.send("quit")
                    assert await phone.wait(5) == 0
            finally:
                gw.stop()

        print(f"mediaenc={mediaenc}: client leg {stats.a}; gateway leg {stats.b}")
        assert stats.a.srtp and not stats.b.srtp  # SRTP toward baresip, RTP toward the gateway
        assert (stats.a.srtp_auth_failures, stats.a.srtp_replays) == (0, 0)
        # baresip (libre) sends one plain 16-byte RTCP APP "PING" as it opens the stream: it
        # is not SRTCP and is dropped as such (libsrtp: "unsupported parameter")
        assert stats.a.srtp_errors <= 1
        assert min(stats.a.packets, stats.b.packets) >= 25
        trace = phone.text()
        assert "a=crypto:" in trace and ("RTP/SAVP" in trace) == (mediaenc == "srtp-mand")
        offer = (tmp_path / "gw_messages.txt").read_text()
        assert "m=audio" in offer and "RTP/AVP" in offer and "a=crypto" not in offer

    run(main)
