"""SIPp through the whole deployment of ``hybridvoice up`` (:class:`hybridvoice.app.Lab`, built
on free loopback ports as in ``tests/net/chain_harness.py``): online registrar and proxy,
one appliance with edge and mediation, and SIPp playing the users and the PSTN gateways.

1. outbound: SIPp registers as alice (RFC 3261 §10.2, digest 401, §22.2), then places
   :data:`OUT_CALLS` calls to the lab PSTN number through the online proxy (each one challenged
   407 and sent again with credentials, §22.3): online -> edge -> mediation -> a SIPp ``uas``
   configured as Gateway1. Both SIPp sides: every call successful, 0 unexpected messages.
2. inbound: bob (a SIPp ``uas`` that registered first on the same port) takes :data:`IN_CALLS`
   calls from a SIPp ``uac`` configured as Gateway2: mediation -> edge -> online -> bob.
3. forking (§16.6, §16.7 step 10): bob registered twice; each inbound call rings both, one
   answers and the proxy CANCELs the other, which answers 200 to the CANCEL and 487.

What SIPp needs to pass the online registrar and proxy:

* SIPp 3.6.1 computes only MD5 digests, from the first challenge of a 401/407 (and baresip
  1.0 / libre 1.1 gives up at any challenge that is not MD5): the lab settings challenge with
  MD5 only (``[Online] DigestAlgorithms = "MD5"``); RFC 8760 clients can have "SHA-256 MD5".
* SIPp's digest ``uri`` is ``sip:REMOTE_IP:PORT`` unless ``-auth_uri`` says otherwise; the
  registrar rightly answers 400 when it is not the Request-URI (RFC 2617 §3.2.2.5).
* the built-in ``uas`` does not copy Record-Route into its responses (§12.1.1): the caller's
  ACK and BYE would then skip the proxies, so the registered phones run ``chain_uas.xml``.

Every SIPp has ``-buff_size 4194304`` and ``-timeout``, runs on 127.0.0.1 with free ports and is
stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chain_harness import settings_on_free_ports
from interop_programs import (
    SCENARIOS,
    Program,
    free_port,
    need_binary,
    running,
    sipp_stats,
    wait_bound,
)
from test_mediation_sipp import stop_uas
from test_sipp import SIPP_TIMEOUT, assert_clean, sipp_common, wait_exit

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, LAB_USERS, Lab
from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.mediation.role import MediationRole
from hybridvoice.net.loop import loop_factory
from hybridvoice.sip.uri import SipUri

pytestmark = pytest.mark.interop

DOMAIN = "contoso.example"
BOB_NUMBER = dict(LAB_USERS)["bob"]
OUT_CALLS, OUT_RATE = 500, 80
IN_CALLS, IN_RATE = 200, 50
FORK_CALLS = 5


def gateway(n: int, port: int) -> dict[str, Any]:
    """A UDP gateway on loopback for every number, without OPTIONS pings (a SIPp scenario would
    count each one as an unexpected message)."""
    return {
        "Name": f"Gateway{n}", "IP": "127.0.0.1", "Port": port, "Protocol": "UDP",
        "VoiceRoutes": "LocalRoute", "SendSipOptions": False,
    }  # fmt: skip


def chain_settings(*gateways: dict[str, Any], keep_lab_gateway: bool) -> Settings:
    """The lab settings on free ports; ``gateways`` replace (or follow) the lab gateway."""
    raw = settings_raw(settings_on_free_ports())
    raw["Gateways"] = [*raw["Gateways"][: int(keep_lab_gateway)], *gateways]
    return parse_settings(raw)


@contextlib.asynccontextmanager
async def chain(tmp_path: Path, settings: Settings, *, lab_gateway: bool) -> AsyncIterator[Lab]:
    up = Lab(settings, tmp_path / "lab", lab_gateway=lab_gateway)
    await up.start()
    try:
        yield up
    finally:
        await up.stop()


def mediation_of(up: Lab) -> MediationRole:
    assert up.appliance is not None and up.appliance.mediation is not None
    return up.appliance.mediation


def proxy_port(up: Lab) -> int:
    return up.settings.online.sip_port


def gateway_side_port(up: Lab) -> int:
    port = up.settings.mediation_server.udp_port
    assert port is not None
    return port


async def register(sipp: str, up: Lab, user: str, port: int, tmp: Path) -> None:
    """One REGISTER with digest auth from 127.0.0.1:``port`` (SIPp exits when done)."""
    name = f"reg_{user}_{port}"
    args = [
        sipp, f"127.0.0.1:{proxy_port(up)}", "-sf", str(SCENARIOS / "chain_register.xml"),
        "-key", "user", user, "-key", "domain", DOMAIN, "-au", user, "-ap", LAB_PASSWORD,
        "-auth_uri", DOMAIN, "-m", "1", *sipp_common(port, tmp, name),
    ]  # fmt: skip
    with running(args, tmp / f"{name}.out") as program:
        code = await wait_exit(program, 20)
    assert_clean(sipp_stats(tmp / f"{name}.csv"), 1, name)
    assert code == 0, program.output()[-2000:]


def contacts(up: Lab, user: str) -> set[int]:
    """The ports of ``user``'s registered contacts."""
    assert up.online is not None and up.online.registrar is not None
    bindings = up.online.registrar.lookup(f"sip:{user}@{DOMAIN}", time.monotonic())
    return {b.contact.uri.port for b in bindings if isinstance(b.contact.uri, SipUri)}


async def settle(role: MediationRole) -> None:
    """Until no call is bridged. The bound only ends a stuck test: a leg toward a gateway
    killed mid-call ends by Timer B or F (64*T1 = 32 s) at the latest."""
    for _ in range(2000):
        if not role.b2bua.bridges and role.admission.active == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(role.b2bua.bridges)} calls still bridged")


def run(main: Any) -> None:
    """The whole test, bounded: the site's start, the SIPp runs (each bounded by
    SIPP_TIMEOUT) and the settling; generous, so that only a stuck test ends here."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(asyncio.wait_for(main, SIPP_TIMEOUT * 3))


def uas(sipp: str, port: int, tmp: Path, name: str, scenario: str | None = None) -> Program:
    how = ["-sf", str(SCENARIOS / scenario)] if scenario else ["-sn", "uas"]
    return Program([sipp, *how, *sipp_common(port, tmp, name)], tmp / f"{name}.out")


def gateway_uac(sipp: str, up: Lab, port: int, tmp: Path, calls: int, rate: int) -> list[str]:
    """A SIPp gateway calling bob's number at the mediation role's gateway side."""
    return [
        sipp, f"127.0.0.1:{gateway_side_port(up)}", "-sf", str(SCENARIOS / "uac_txn.xml"),
        "-s", BOB_NUMBER, "-m", str(calls), "-r", str(rate), *sipp_common(port, tmp, "pstn"),
    ]  # fmt: skip


def test_registered_sipp_user_calls_the_pstn_through_the_chain(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        gw_port, alice_port = free_port(), free_port()
        settings = chain_settings(gateway(1, gw_port), keep_lab_gateway=False)
        async with chain(tmp_path, settings, lab_gateway=False) as up:
            role = mediation_of(up)
            gw = uas(sipp, gw_port, tmp_path, "gw")
            try:
                await wait_bound(gw, gw_port)
                await register(sipp, up, "alice", alice_port, tmp_path)
                assert contacts(up, "alice") == {alice_port}
                args = [
                    sipp, f"127.0.0.1:{proxy_port(up)}",
                    "-sf", str(SCENARIOS / "chain_uac_auth_call.xml"), "-s", LAB_PSTN_NUMBER,
                    "-key", "user", "alice", "-key", "domain", DOMAIN,
                    "-au", "alice", "-ap", LAB_PASSWORD, "-auth_uri", f"{LAB_PSTN_NUMBER}@{DOMAIN}",
                    "-m", str(OUT_CALLS),
                    "-r", str(OUT_RATE), *sipp_common(alice_port, tmp_path, "alice"),
                ]  # fmt: skip
                with running(args, tmp_path / "alice.out") as alice:
                    code = await wait_exit(alice, SIPP_TIMEOUT - 5)
                await settle(role)
                await stop_uas(gw)
            finally:
                gw.stop()
            stats = sipp_stats(tmp_path / "alice.csv")
            assert_clean(stats, OUT_CALLS, "alice (uac)")
            assert_clean(sipp_stats(tmp_path / "gw.csv"), OUT_CALLS, "gateway (uas)")
            assert code == 0, alice.output()[-2000:]
            assert role.b2bua.stats.answered == OUT_CALLS
            print(
                f"alice: {OUT_CALLS} calls at {OUT_RATE} cps, rtd={stats.get('ResponseTime1(P)')}"
            )

    run(main())


def test_gateway_calls_a_registered_sipp_user_through_the_chain(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        pstn_port, bob_port = free_port(), free_port()
        settings = chain_settings(gateway(2, pstn_port), keep_lab_gateway=True)
        async with chain(tmp_path, settings, lab_gateway=True) as up:
            role = mediation_of(up)
            await register(sipp, up, "bob", bob_port, tmp_path)
            assert contacts(up, "bob") == {bob_port}
            bob = uas(sipp, bob_port, tmp_path, "bob", "chain_uas.xml")
            try:
                await wait_bound(bob, bob_port)  # the proxy's first INVITE to him arrives
                args = gateway_uac(sipp, up, pstn_port, tmp_path, IN_CALLS, IN_RATE)
                with running(args, tmp_path / "pstn.out") as pstn:
                    code = await wait_exit(pstn, SIPP_TIMEOUT - 5)
                await settle(role)
                await stop_uas(bob)
            finally:
                bob.stop()
            assert_clean(sipp_stats(tmp_path / "pstn.csv"), IN_CALLS, "gateway (uac)")
            assert_clean(sipp_stats(tmp_path / "bob.csv"), IN_CALLS, "bob (uas)")
            assert code == 0, pstn.output()[-2000:]
            assert role.b2bua.stats.answered == IN_CALLS

    run(main())


def test_inbound_call_forks_to_both_registrations_one_answers_the_other_is_cancelled(
    tmp_path: Path,
) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        pstn_port, answering_port, ringing_port = free_port(), free_port(), free_port()
        settings = chain_settings(gateway(2, pstn_port), keep_lab_gateway=True)
        async with chain(tmp_path, settings, lab_gateway=True) as up:
            role = mediation_of(up)
            for port in (answering_port, ringing_port):
                await register(sipp, up, "bob", port, tmp_path)
            assert contacts(up, "bob") == {answering_port, ringing_port}
            phones = [
                uas(sipp, answering_port, tmp_path, "bob_answers", "chain_uas.xml"),
                uas(sipp, ringing_port, tmp_path, "bob_rings", "chain_uas_cancelled.xml"),
            ]
            try:
                for phone, port in zip(phones, (answering_port, ringing_port), strict=True):
                    await wait_bound(phone, port)  # both forks ring, neither is retransmitted
                args = [*gateway_uac(sipp, up, pstn_port, tmp_path, FORK_CALLS, 10), "-l", "1"]
                with running(args, tmp_path / "pstn.out") as pstn:
                    code = await wait_exit(pstn, SIPP_TIMEOUT - 10)
                await settle(role)
                for phone in phones:
                    await stop_uas(phone)
            finally:
                for phone in phones:
                    phone.stop()
            assert_clean(sipp_stats(tmp_path / "pstn.csv"), FORK_CALLS, "gateway (uac)")
            assert_clean(sipp_stats(tmp_path / "bob_answers.csv"), FORK_CALLS, "bob answers")
            # every call rang the second phone too, and was cancelled there: 200, 487, ACK
            assert_clean(sipp_stats(tmp_path / "bob_rings.csv"), FORK_CALLS, "bob cancelled")
            assert code == 0, pstn.output()[-2000:]
            assert role.b2bua.stats.answered == FORK_CALLS

    run(main())
