"""A real softphone through the whole deployment of ``hybridvoice up`` (:class:`hybridvoice.app.Lab`
on free loopback ports, the built-in lab gateway answering and echoing, media anchored).

baresip (headless: its own config dir, ``ausine`` as microphone, ``aubridge`` as speaker,
driven over ``ctrl_tcp``; how, in ``tls_helpers``'s module docstring) registers as alice with
digest authentication (RFC 3261 §10.2, §22.2) through its outbound proxy, the online service;
dials the lab PSTN number (the INVITE is challenged 407 and sent again, §22.3); the call goes
online -> edge -> mediation -> lab gateway and is answered. RTP flows both ways through the
mediation role's relay: from baresip to the gateway, and the gateway's echo back to baresip
(both legs' counters, live from the relay and in the call record of ``GET /v1/calls/{id}``).
baresip hangs up; its BYE crosses the chain and the record says the caller ended the call.

The lab settings challenge with MD5 only (``[Online] DigestAlgorithms``): baresip 1.0.0
(libre 1.1.0) gives up at a SHA-256 challenge.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_programs import need_binary
from ports import free_port, free_port_pair
from test_chain_sipp import DOMAIN, chain, chain_settings, contacts, mediation_of
from tls_helpers import (
    BaresipControl,
    BaresipPorts,
    Program,
    baresip_argv,
    parse_sip_trace,
    running,
    write_baresip_config,
)

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.net.loop import loop_factory

pytestmark = pytest.mark.interop

TEST_DEADLINE = 50.0  # seconds, the whole test; single waits are shorter


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TEST_DEADLINE):
            await main()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(bounded())


def write_config(directory: Path, ports: BaresipPorts, proxy_port: int) -> Path:
    """The headless config of ``tls_helpers``, with alice's account: registration every 600 s
    through the online service as outbound proxy, G.711 only."""
    config = write_baresip_config(directory, ports, pki=None, transport="udp")
    account = (
        f"<sip:alice@{DOMAIN};transport=udp>;auth_pass={LAB_PASSWORD}"
        f';outbound="sip:127.0.0.1:{proxy_port}";regint=600'
        ";audio_codecs=pcmu,pcma;answermode=manual"
    )
    (config / "accounts").write_text(account + "\n")
    return config


async def until(what: str, check: Callable[[], Any], program: Program, timeout: float) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s; baresip:\n{program.text()[-4000:]}")
        await asyncio.sleep(0.05)
    return result


def invite_call_id(program: Program) -> str:
    """The Call-ID of the INVITE baresip sent (its ``-s`` trace)."""
    found = re.search(r"^INVITE .*?^Call-ID: *(\S+)", program.text(), re.M | re.S)
    assert found is not None, program.text()[-4000:]
    return found[1]


async def call_record(up: Lab, call_id: str) -> dict[str, Any]:
    """The appliance API's record of the call once it has ended."""
    assert up.appliance is not None and up.appliance.api is not None
    admin = {"Authorization": f"Bearer {up.admin_token}"}
    async with httpx.AsyncClient(base_url=up.appliance.api.url, timeout=5, headers=admin) as client:
        deadline = time.monotonic() + 60  # bounded generously: it ends at the event
        while True:
            answer = await client.get(f"/v1/calls/{call_id}")
            if answer.status_code == 200 and answer.json()["state"] == "ended":
                record: dict[str, Any] = answer.json()
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no ended record for {call_id}: {answer.text}")
            await asyncio.sleep(0.1)


def test_baresip_registers_and_calls_the_pstn_rtp_both_ways(tmp_path: Path) -> None:
    baresip = need_binary("baresip", "baresip")

    async def main() -> None:
        settings = chain_settings(keep_lab_gateway=True)
        async with chain(tmp_path, settings, lab_gateway=True) as up:
            relay = mediation_of(up).relay
            assert relay is not None  # media anchored: the tenant has media bypass off
            ports = BaresipPorts(host="127.0.0.1", sip=free_port_pair(), ctrl=free_port())
            config = write_config(tmp_path / "baresip", ports, up.settings.online.sip_port)
            async with contextlib.AsyncExitStack() as stack:
                argv = baresip_argv(baresip, config, seconds=40, ipv6=False)
                phone = await stack.enter_async_context(running(argv, tmp_path / "baresip.out"))
                ctrl = await BaresipControl.connect(ports.ctrl, phone, timeout=10)
                stack.push_async_callback(ctrl.close)

                # registered at start, usually before ctrl_tcp is connected: ask the registrar
                await until("alice registered", lambda: contacts(up, "alice"), phone, 10)
                assert len(contacts(up, "alice")) == 1

                await ctrl.send("dial", f"sip:{LAB_PSTN_NUMBER}@{DOMAIN}")
                event = await ctrl.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=10)
                assert event["type"] == "CALL_ESTABLISHED", (ctrl.events, phone.text()[-4000:])
                call_id = invite_call_id(phone)

                def both_ways() -> bool:
                    """Half a second of 20 ms packets from each side, through the relay."""
                    stats = [c.stats() for c in relay.calls.values()]
                    return len(stats) == 1 and min(stats[0].a.packets, stats[0].b.packets) >= 25

                await until("RTP through the relay both ways", both_ways, phone, 10)
                await ctrl.send("hangup")
                await ctrl.wait_event("CALL_CLOSED", timeout=10)
                await until("the relay released", lambda: not relay.calls, phone, 10)
                record = await call_record(up, call_id)
                await ctrl.send("quit")
                assert await phone.wait(5) == 0

        trace = parse_sip_trace(phone.text())
        sent = [m.start_line.split()[0] for m in trace if m.source.endswith(f":{ports.sip}")]
        got = [(m.start_line, m.cseq) for m in trace if not m.source.endswith(f":{ports.sip}")]
        print(f"baresip sent {sent}; record media {record['a_media']} / {record['b_media']}")
        assert ("SIP/2.0 401 Unauthorized", got[0][1]) == got[0]  # REGISTER challenged
        assert any(s.startswith("SIP/2.0 407") and c.endswith("INVITE") for s, c in got)
        assert any(s == "SIP/2.0 200 OK" and c.endswith("BYE") for s, c in got)
        assert record["direction"] == "outbound" and record["media_mode"] == "anchored"
        assert LAB_PSTN_NUMBER in record["callee"]
        assert record["disconnect_side"] == "caller"
        for leg in ("a_media", "b_media"):  # a: baresip's leg, b: the gateway's
            assert record[leg]["packets_received"] >= 25, record
            assert record[leg]["packets_sent"] >= 25, record

    run(main)
