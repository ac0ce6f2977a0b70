"""Interop with SIPp on loopback (RFC 3261 §13, §17, §18): real calls through the real
endpoint and transaction layer, over UDP and TCP.

(a) SIPp ``uac`` (the transactional scenario, tolerant of a 180 after the 200) calls a tiny
    hybridvoice UAS that answers INVITE 180/200, takes the ACK and answers BYE 200.
(b) a hybridvoice UAC calls SIPp ``uas``: INVITE, 200, ACK, BYE, 200 (dialogs from
    ``hybridvoice.sip.dialog``).

1,000 calls at 200 calls/s each; both sides must report 0 failed calls and SIPp 0 unexpected
messages. SIPp gets ``-buff_size 4194304`` and ``-timeout``; it is stopped by PID.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from interop_programs import (
    SCENARIOS,
    Program,
    free_port,
    need_binary,
    running,
    sipp_stats,
    wait_bound,
)

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.loop import loop_factory
from hybridvoice.net.transport import Destination, Source, Transport
from hybridvoice.sip import Headers, Request, Response, SipUri, make_response, parse_uri
from hybridvoice.sip.dialog import Dialog
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction, TransactionTimeout

pytestmark = pytest.mark.interop

CALLS = 1000
RATE = 200
SIPP_TIMEOUT = 60  # seconds; the test gives up shortly after
SDP = (
    b"v=0\r\no=hv 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
TRANSPORTS = {"UDP": "u1", "TCP": "t1"}


def sipp_common(port: int, workdir: Path, name: str) -> list[str]:
    return [
        "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-buff_size", "4194304",
        "-timeout", f"{SIPP_TIMEOUT}s", "-timeout_error",
        "-trace_stat", "-stf", str(workdir / f"{name}.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(workdir / f"{name}_errors.log"),
    ]  # fmt: skip


async def wait_exit(program: Program, timeout: float) -> int:
    """Wait for the program without blocking the loop our endpoint runs on."""
    deadline = time.monotonic() + timeout
    while program.returncode is None:
        if time.monotonic() > deadline:
            program.stop()
            raise AssertionError(f"{program.args[0]} did not finish in {timeout} s")
        await asyncio.sleep(0.05)
    return program.returncode


def assert_clean(stats: dict[str, str], calls: int, side: str) -> None:
    summary = {k: stats.get(k) for k in (
        "SuccessfulCall(C)", "FailedCall(C)", "FailedUnexpectedMessage(C)", "OutOfCallMsgs(C)",
        "DeadCallMsgs(C)", "Retransmissions(C)",
    )}  # fmt: skip
    print(f"SIPp {side}: {summary}")
    assert int(stats["SuccessfulCall(C)"]) == calls, summary
    assert int(stats["FailedCall(C)"]) == 0, summary
    assert int(stats["FailedUnexpectedMessage(C)"]) == 0, summary
    assert int(stats.get("OutOfCallMsgs(C)", "0") or 0) == 0, summary


# --- (a) SIPp uac -> hybridvoice UAS ------------------------------------------------------------


class Uas:
    """INVITE -> 180, 200 with SDP; ACK counted; BYE -> 200; anything else -> 200."""

    def __init__(self) -> None:
        self.tags = itertools.count(1)
        self.contact = ""
        self.acks = 0
        self.byes = 0
        self.timeouts = 0

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        if request.method == "INVITE":
            tag = f"hv{next(self.tags)}"
            endpoint.send_response(transaction, make_response(request, 180, to_tag=tag))
            ok = make_response(
                request, 200, to_tag=tag, headers=[("Contact", self.contact)],
                body=SDP, content_type="application/sdp",
            )  # fmt: skip
            endpoint.send_response(transaction, ok)
        else:
            if request.method == "BYE":
                self.byes += 1
            endpoint.send_response(transaction, make_response(request, 200))

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        self.acks += 1

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        pass

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        pass

    def on_timeout(
        self, endpoint: Endpoint, transaction: ClientTransaction | ServerTransaction, reason: str
    ) -> None:
        self.timeouts += 1


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_sipp_uac_calls_hybridvoice_uas(kind: str, tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        uas = Uas()
        endpoint = Endpoint(uas)
        listening = await endpoint.listen(kind, "127.0.0.1", 0)
        uas.contact = f"<sip:uas@{listening.sent_by};transport={kind.lower()}>"
        args = [
            sipp, f"127.0.0.1:{listening.local[1]}", "-sf", str(SCENARIOS / "uac_txn.xml"),
            "-s", "uas", "-t", TRANSPORTS[kind], "-m", str(CALLS), "-r", str(RATE),
            *sipp_common(free_port(), tmp_path, "uac"),
        ]  # fmt: skip
        try:
            with running(args, tmp_path / "uac.out") as program:
                code = await wait_exit(program, SIPP_TIMEOUT + 10)
            stats = sipp_stats(tmp_path / "uac.csv")
            print(f"hybridvoice UAS: {endpoint.counters}, {listening.counters}")
            assert_clean(stats, CALLS, "uac")
            assert code == 0, program.output()[-2000:]
            assert uas.acks == CALLS and uas.byes == CALLS
            assert endpoint.parse_errors == 0
        finally:
            await endpoint.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


# --- (b) hybridvoice UAC -> SIPp uas ------------------------------------------------------------


class Call:
    """One call of the UAC: INVITE, ACK the 2xx, BYE, done."""

    __slots__ = ("ack_target", "dialog", "done", "endpoint", "invite")

    def __init__(self, endpoint: Endpoint, invite: Request, done: asyncio.Future[str]) -> None:
        self.endpoint = endpoint
        self.invite = invite
        self.done = done
        self.dialog: Dialog | None = None
        self.ack_target: Destination | None = None

    def finish(self, outcome: str) -> None:
        if not self.done.done():
            self.done.set_result(outcome)

    def on_invite(self, _: ClientTransaction, outcome: Response | TransactionTimeout) -> None:
        if isinstance(outcome, TransactionTimeout):
            self.finish(f"INVITE {outcome.reason}")
            return
        if outcome.status < 200:
            return
        if outcome.status >= 300:
            self.finish(f"INVITE {outcome.status}")
            return
        if self.dialog is None:
            self.dialog = Dialog.from_uac(self.invite, outcome)
            self.ack_target = target_of(self.dialog.remote_target)
            self.send_ack()
            bye = self.dialog.create_request("BYE")
            self.endpoint.send_request(bye, self.ack_target, self.on_bye)
        else:  # a 2xx retransmission: our ACK was lost (§13.2.2.4)
            self.send_ack()

    def send_ack(self) -> None:
        assert self.dialog is not None and self.ack_target is not None
        self.endpoint.send_stateless(self.dialog.create_request("ACK"), self.ack_target)

    def on_bye(self, _: ClientTransaction, outcome: Response | TransactionTimeout) -> None:
        if isinstance(outcome, TransactionTimeout):
            self.finish(f"BYE {outcome.reason}")
        elif outcome.status >= 200:
            self.finish("ok" if outcome.status == 200 else f"BYE {outcome.status}")


def target_of(uri: object) -> Destination:
    assert isinstance(uri, SipUri)
    return Destination((uri.transport or "udp").upper(), uri.host_bare, uri.port or 5060)


def new_invite(n: int, target: str, transport: Transport) -> Request:
    headers = Headers.of(
        [
            ("Max-Forwards", 70),
            ("To", f"<{target}>"),
            ("From", f"<sip:uac@127.0.0.1>;tag=hvuac{n}"),
            ("Call-ID", f"{n}-{time.monotonic_ns()}@hybridvoice"),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:uac@{transport.sent_by};transport={transport.kind.lower()}>"),
        ]
    )
    request = Request("INVITE", parse_uri(target), headers)
    request.set_body(SDP, "application/sdp")
    return request


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_hybridvoice_uac_calls_sipp_uas(kind: str, tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        endpoint = Endpoint()
        listening = await endpoint.listen(kind, "127.0.0.1", 0)
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
                results: list[asyncio.Future[str]] = []

                def start(n: int) -> None:
                    done: asyncio.Future[str] = loop.create_future()
                    results.append(done)
                    invite = new_invite(n, target, listening)
                    call = Call(endpoint, invite, done)
                    endpoint.send_request(invite, destination, call.on_invite)

                t0 = loop.time() + 0.05
                for n in range(CALLS):
                    loop.call_at(t0 + n / RATE, start, n)
                while len(results) < CALLS:
                    await asyncio.sleep(0.05)
                outcomes = await asyncio.wait_for(asyncio.gather(*results), SIPP_TIMEOUT)
                failures = [o for o in outcomes if o != "ok"]
                print(f"hybridvoice UAC: {len(outcomes)} calls, {len(failures)} failed; "
                      f"{endpoint.counters}, {listening.counters}")  # fmt: skip
                assert failures == []
                code = await wait_exit(program, SIPP_TIMEOUT)  # -m: SIPp ends by itself
            assert_clean(sipp_stats(tmp_path / "uas.csv"), CALLS, "uas")
            assert code == 0, program.output()[-2000:]
            assert endpoint.parse_errors == 0
        finally:
            await endpoint.close()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())
