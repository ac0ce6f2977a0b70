"""A real call through ``hybridvoice up``'s pieces (the Lab: online service, appliance with
edge and mediation, lab gateway), its trace fetched from the appliance API as pcap and read by
Debian's tshark (stopped by PID): every SIP message of the call (INVITE, 100, 180/183, 200,
ACK, BYE, 200), nothing malformed. Once with the gateway on UDP, once on TCP."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from chain_harness import call_once, lab, settings_on_free_ports
from ports import free_port
from typer.testing import CliRunner
from ua_harness import run

from hybridvoice.cli import app as cli_app
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.mgmt.appliance_traces_api import PCAP_MEDIA_TYPE

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]


def tshark(path: Path, *args: str) -> list[str]:
    proc = subprocess.Popen(["tshark", "-n", "-r", str(path), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return [line.strip() for line in out.splitlines() if line.strip()]


def fetch_trace(tmp_path: Path, protocol: str) -> tuple[Path, str]:
    gateway = {"Protocol": protocol, "Port": free_port()}
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path / "state")})
    raw = settings_raw(settings)
    raw["Gateways"][0].update(gateway)
    settings = type(settings).model_validate(raw)
    found: list[tuple[bytes, str, str]] = []

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            # the lab gateway answers after a second: every hop's server transaction sends
            # its 100 Trying first (RFC 3261 §17.2.1: after 200 ms without an answer)
            assert up.gateway is not None
            responder = up.gateway.responder
            answer, loop = responder.on_incoming_call, asyncio.get_running_loop()
            responder.on_incoming_call = lambda call: loop.call_later(1.0, answer, call)
            result = await call_once(up)
            assert result.ok, result
            assert result.call_id is not None and up.appliance is not None
            assert up.appliance.api is not None
            headers = {"Authorization": f"Bearer {up.admin_token}"}
            async with httpx.AsyncClient(base_url=up.appliance.api.url, headers=headers) as h:
                answer = await h.get(f"/v1/calls/{result.call_id}/trace.pcap")
                assert answer.status_code == 200, answer.text
                assert answer.headers["content-type"] == PCAP_MEDIA_TYPE
                record = (await h.get(f"/v1/calls/{result.call_id}")).json()
                by_record = await h.get(f"/v1/calls/{record['record_id']}/trace.pcap")
                assert by_record.content == answer.content
                missing = await h.get("/v1/calls/no-such-call/trace.pcap")
                assert missing.status_code == 404 and "no SIP held" in missing.text
                anonymous = await httpx.AsyncClient(base_url=up.appliance.api.url).get(
                    f"/v1/calls/{result.call_id}/trace.pcap"
                )
                assert anonymous.status_code == 401
            # the command line saves the same file: `hybridvoice calls trace ID --out FILE`
            saved = tmp_path / "cli.pcap"
            args = ["calls", "trace", result.call_id, "--out", str(saved),
                    "--appliance", up.appliance.api.url]  # fmt: skip
            env = {"HYBRIDVOICE_TOKEN": up.admin_token or ""}
            ran = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=env)
            assert ran.exit_code == 0, ran.output
            assert saved.read_bytes() == answer.content and "tshark -r" in ran.output
            bad = await asyncio.to_thread(CliRunner().invoke, cli_app,
                                          [*args[:2], "nope", *args[3:]], env=env)  # fmt: skip
            assert bad.exit_code == 1 and "no SIP held for call 'nope'" in bad.output
            found.append((answer.content, record["a_call_id"], record["b_call_id"]))

    run(main(), timeout=120)
    content, _a_call_id, b_call_id = found[0]
    path = tmp_path / "call.pcap"
    path.write_bytes(content)
    return path, b_call_id


def ladder(path: Path, call_id: str) -> list[str]:
    return tshark(path, "-Y", f'sip.Call-ID == "{call_id}"', "-T", "fields",
                  "-e", "sip.Method", "-e", "sip.Status-Code")  # fmt: skip


def in_order(expected: list[str], rows: list[str]) -> bool:
    """``expected`` is a subsequence of ``rows`` (retransmissions may come in between)."""
    remaining = iter(rows)
    return all(any(row == want for row in remaining) for want in expected)


LADDER = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"]


@pytest.mark.parametrize("protocol", ["UDP", "TCP"])
def test_a_calls_pcap_has_every_sip_message_and_nothing_malformed(
    tmp_path: Path, protocol: str
) -> None:
    path, gateway_leg = fetch_trace(tmp_path, protocol)
    rows = tshark(path, "-Y", "sip", "-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code")
    for expected in ("INVITE", "407", "100", "180", "200", "ACK", "BYE"):
        assert expected in rows, rows
    # every hop is there: caller -> online (challenged first: 407) -> edge -> mediation ->
    # gateway, the pipes between the roles as TCP; each with the whole ladder in order
    hops = set()
    for line in tshark(path, "-Y", 'sip.Method == "INVITE"', "-T", "fields", "-e", "ip.src",
                       "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport",
                       "-e", "udp.dstport"):  # fmt: skip
        _, tcp_src, tcp_dst, udp_src, udp_dst = [*line.split("\t"), "", "", "", ""][:5]
        hops.add(("tcp", tcp_src, tcp_dst) if tcp_src else ("udp", udp_src, udp_dst))
    assert len(hops) == 4, hops
    for proto, sport, dport in hops:
        filt = f"sip && {proto}.port == {sport} && {proto}.port == {dport}"
        messages = tshark(path, "-Y", filt, "-T", "fields", "-e", "sip.Method",
                          "-e", "sip.Status-Code")  # fmt: skip
        assert in_order(LADDER, messages), (proto, sport, dport, messages)
    # the gateway leg alone, over the gateway's transport
    leg = ladder(path, gateway_leg)
    assert in_order(LADDER, leg), leg
    transport = "udp" if protocol == "UDP" else "tcp"
    on_transport = tshark(path, "-Y", f'{transport} && sip.Call-ID == "{gateway_leg}"')
    assert len(on_transport) == len(leg)
    assert tshark(path, "-Y", "_ws.malformed || _ws.expert.severity >= error") == []
