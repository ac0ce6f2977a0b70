"""Interop with SIPp through the UA core (``hybridvoice.net.ua``): RFC 3261 §13 calls over
the real endpoint, transaction layer, dialog table and INVITE sessions, over UDP and TCP.

(a) SIPp ``uac`` (the transactional scenario) calls a ``UserAgent`` whose application rings
    (180) and answers (200 with SDP); the session takes the ACK and answers the BYE.
(b) a ``UserAgent`` calls SIPp ``uas``: INVITE, 180, 200, ACK, then BYE from the handler
    of the ``Answered`` event.

1,000 calls at 500 calls/s each; both sides must report 0 failed calls and SIPp 0
unexpected messages. SIPp gets ``-buff_size 4194304`` and ``-timeout``; it is stopped by PID.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from interop_programs import SCENARIOS, free_port, need_binary, running, sipp_stats, wait_bound
from test_sipp import SDP, SIPP_TIMEOUT, TRANSPORTS, assert_clean, sipp_common, wait_exit

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Destination
from hybridvoice.net.ua import Call, CallUpdate, UserAgent
from hybridvoice.sip import Request
from hybridvoice.sip.session import Answered, Cause, Confirmed, Disconnected
from hybridvoice.sip.transaction import ServerTransaction

pytestmark = pytest.mark.interop

CALLS = 1000
RATE = int(os.environ.get("HV_SIPP_RATE", "500"))  # calls/s; raise it to probe capacity


class Tally:
    """Counts what the calls did; the application answers every incoming call."""

    def __init__(self) -> None:
        self.confirmed = 0
        self.answered = 0
        self.ended: dict[str, int] = {}
        self.done = asyncio.Event()

    def on_incoming_call(self, call: Call) -> None:
        call.handler = self
        call.ring()
        call.answer(SDP)

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False

    def on_call_event(self, call: Call, event: CallUpdate) -> None:
        if isinstance(event, Confirmed):
            self.confirmed += 1
        elif isinstance(event, Answered):
            self.answered += 1
            call.bye()
        elif isinstance(event, Disconnected):
            key = f"{event.cause} {event.side}"
            self.ended[key] = self.ended.get(key, 0) + 1
            if sum(self.ended.values()) >= CALLS:
                self.done.set()


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_sipp_uac_calls_the_ua(kind: str, tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        tally = Tally()
        endpoint = Endpoint()
        ua = UserAgent(endpoint, tally)
        listening = await endpoint.listen(kind, "127.0.0.1", 0)
        args = [
            sipp, f"127.0.0.1:{listening.local[1]}", "-sf", str(SCENARIOS / "uac_txn.xml"),
            "-s", "uas", "-t", TRANSPORTS[kind], "-m", str(CALLS), "-r", str(RATE),
            *sipp_common(free_port(), tmp_path, "uac"),
        ]  # fmt: skip
        try:
            t0 = time.monotonic()
            with running(args, tmp_path / "uac.out") as program:
                code = await wait_exit(program, SIPP_TIMEOUT + 10)
            elapsed = time.monotonic() - t0
            await asyncio.wait_for(tally.done.wait(), 10)
            stats = sipp_stats(tmp_path / "uac.csv")
            print(f"UA UAS {kind}: {CALLS} calls in {elapsed:.2f} s, {tally.ended}; "
                  f"{endpoint.counters}")  # fmt: skip
            assert_clean(stats, CALLS, "uac")
            assert code == 0, program.output()[-2000:]
            assert tally.confirmed == CALLS
            assert tally.ended == {f"{Cause.NORMAL} remote": CALLS}
            assert endpoint.parse_errors == 0
            assert len(ua.dialogs) == 0 and not ua.calls
        finally:
            ua.close()
            await endpoint.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_the_ua_calls_sipp_uas(kind: str, tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tally = Tally()
        endpoint = Endpoint()
        ua = UserAgent(endpoint, tally)
        await endpoint.listen(kind, "127.0.0.1", 0)
        port = free_port()
        args = [
            sipp, "-sn", "uas", "-t", TRANSPORTS[kind], "-m", str(CALLS),
            *sipp_common(port, tmp_path, "uas"),
        ]  # fmt: skip
        target = f"sip:service@127.0.0.1:{port}"
        destination = Destination(kind, "127.0.0.1", port)
        try:
            with running(args, tmp_path / "uas.out") as program:
                await wait_bound(program, port, kind.lower())
                assert program.returncode is None, program.output()

                def start() -> None:
                    ua.invite(
                        target, from_="<sip:uac@127.0.0.1>", sdp=SDP,
                        destination=destination, handler=tally,
                    )  # fmt: skip

                t0 = loop.time() + 0.05
                for n in range(CALLS):
                    loop.call_at(t0 + n / RATE, start)
                await asyncio.wait_for(tally.done.wait(), SIPP_TIMEOUT)
                elapsed = loop.time() - t0
                print(f"UA UAC {kind}: {CALLS} calls in {elapsed:.2f} s, {tally.ended}; "
                      f"{endpoint.counters}")  # fmt: skip
                assert tally.answered == CALLS
                assert tally.ended == {f"{Cause.NORMAL} local": CALLS}
                code = await wait_exit(program, SIPP_TIMEOUT)  # -m: SIPp ends by itself
            assert_clean(sipp_stats(tmp_path / "uas.csv"), CALLS, "uas")
            assert code == 0, program.output()[-2000:]
            assert endpoint.parse_errors == 0
            assert len(ua.dialogs) == 0 and not ua.calls
        finally:
            ua.close()
            await endpoint.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
