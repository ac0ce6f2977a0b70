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

The same over TLS: baresip registers and calls over TLS, and every hop of the chain is TLS
(``test_chain_tls``'s settings), as issue 11 asks: "baresip over TLS and with SRTP through
the whole chain".

``mediaenc=srtp`` offers ``RTP/AVP`` with ``a=crypto`` (best effort), ``srtp-mand`` offers
``RTP/SAVP``: both are answered in kind.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from chain_harness import settings_on_free_ports
from interop_programs import SCENARIOS, need_binary
from interop_programs import Program as SippProgram
from ports import free_port, free_port_pair
from test_chain_baresip import run, until
from test_chain_sipp import DOMAIN, chain, contacts, gateway, mediation_of
from test_chain_tls import TLS_HOPS
from test_sipp import sipp_common
from tls_helpers import (
    BaresipControl,
    BaresipPorts,
    Pki,
    baresip_argv,
    client_context,
    make_pki,
    running,
    server_context,
    write_baresip_config,
)

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.media import CallStats

pytestmark = pytest.mark.interop


def _gateway_uas(sipp: str, port: int, tmp: Path) -> SippProgram:
    args = [
        sipp, "-sf", str(SCENARIOS / "uas_rtp.xml"), "-rtp_echo",
        "-mi", "127.0.0.1", "-mp", str(free_port_pair()),
        "-trace_logs", "-log_file", str(tmp / "gw_log.txt"), "-trace_msg",
        "-message_file", str(tmp / "gw_messages.txt"), *sipp_common(port, tmp, "gw"),
    ]  # fmt: skip
    return SippProgram(args, tmp / "gw.out")


def _settings(gw_port: int, **sections: dict[str, Any]) -> Settings:
    """The lab on free ports with the SIPp gateway as Gateway1 (``MediaEncryption = RTP``)."""
    raw = settings_raw(settings_on_free_ports(**sections))
    raw["MediationServer"]["ClientMediaEncryption"] = "Optional"
    raw["Gateways"] = [gateway(1, gw_port) | {"MediaEncryption": "RTP"}]
    return parse_settings(raw)


def _baresip_config(
    tmp: Path, ports: BaresipPorts, up: Lab, mediaenc: str, pki: Pki | None
) -> Path:
    """alice's account through the online service (UDP, or TLS with ``pki``), with SRTP."""
    transport = "udp" if pki is None else "tls"
    config = write_baresip_config(tmp / "baresip", ports, pki=pki, transport=transport)
    with (config / "config").open("a") as f:
        f.write("module srtp.so\n")
    proxy = f"sip:127.0.0.1:{up.settings.online.sip_port};transport={transport}"
    account = (
        f"<sip:alice@{DOMAIN};transport={transport}>;auth_pass={LAB_PASSWORD}"
        f';outbound="{proxy}";regint=600'
        f";audio_codecs=pcmu,pcma;answermode=manual;mediaenc={mediaenc}"
    )
    (config / "accounts").write_text(account + "\n")
    return config


async def _srtp_call(
    tmp: Path, up: Lab, gw_port: int, mediaenc: str, pki: Pki | None = None
) -> tuple[CallStats, str]:
    """baresip calls the PSTN through ``up``; the relay's counters mid-call, baresip's trace."""
    baresip = need_binary("baresip", "baresip")
    sipp = need_binary("sipp", "sip-tester")
    relay = mediation_of(up).relay
    assert relay is not None  # media anchored: the tenant has media bypass off
    gw = _gateway_uas(sipp, gw_port, tmp)
    ports = BaresipPorts(host="127.0.0.1", sip=free_port_pair(), ctrl=free_port())
    config = _baresip_config(tmp, ports, up, mediaenc, pki)
    try:
        async with contextlib.AsyncExitStack() as stack:
            argv = baresip_argv(baresip, config, seconds=40, ipv6=False)
            phone = await stack.enter_async_context(running(argv, tmp / "baresip.out"))
            ctrl = await BaresipControl.connect(ports.ctrl, phone, timeout=10)
            stack.push_async_callback(ctrl.close)
            await until("alice registered", lambda: contacts(up, "alice"), phone, 10)

            await ctrl.send("dial", f"sip:{LAB_PSTN_NUMBER}@{DOMAIN}")
            event = await ctrl.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=10)
            assert event["type"] == "CALL_ESTABLISHED", (ctrl.events, phone.text()[-4000:])

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
    return stats, phone.text()


def _check(stats: CallStats, trace: str, tmp: Path, mediaenc: str) -> None:
    print(f"mediaenc={mediaenc}: client leg {stats.a}; gateway leg {stats.b}")
    assert stats.a.srtp and not stats.b.srtp  # SRTP toward baresip, RTP toward the gateway
    assert (stats.a.srtp_auth_failures, stats.a.srtp_replays) == (0, 0)
    # baresip (libre) sends one plain 16-byte RTCP APP "PING" as it opens the stream: it is
    # not SRTCP and is dropped as such (libsrtp: "unsupported parameter")
    assert stats.a.srtp_errors <= 1
    assert min(stats.a.packets, stats.b.packets) >= 25
    assert "a=crypto:" in trace and ("RTP/SAVP" in trace) == (mediaenc == "srtp-mand")
    offer = (tmp / "gw_messages.txt").read_text()
    assert "m=audio" in offer and "RTP/AVP" in offer and "a=crypto" not in offer


@pytest.mark.parametrize("mediaenc", ["srtp", "srtp-mand"])
def test_baresip_srtp_through_the_chain_to_an_rtp_gateway(tmp_path: Path, mediaenc: str) -> None:
    async def main() -> None:
        gw_port = free_port()
        async with chain(tmp_path, _settings(gw_port), lab_gateway=False) as up:
            stats, trace = await _srtp_call(tmp_path, up, gw_port, mediaenc)
        _check(stats, trace, tmp_path, mediaenc)

    run(main)


def test_baresip_over_tls_with_srtp_through_the_tls_chain(tmp_path: Path) -> None:
    """Signalling over TLS on every hop (baresip -> online -> edge -> mediation, certificates
    from a test CA, the roles on sockets: ``wire``), media SRTP to the relay, RTP beyond."""
    pki = make_pki(tmp_path / "pki")

    async def main() -> None:
        gw_port = free_port()
        up = Lab(
            _settings(gw_port, **TLS_HOPS), tmp_path / "lab", lab_gateway=False, wire=True,
            server_ssl=server_context(pki), client_ssl=client_context(pki.ca),
        )  # fmt: skip
        await up.start()
        try:
            assert up.settings.online.sip_protocol == "TLS"
            stats, trace = await _srtp_call(tmp_path, up, gw_port, "srtp", pki)
        finally:
            await up.stop()
        assert "transport=tls" in trace.lower()
        _check(stats, trace, tmp_path, "srtp")

    run(main)
