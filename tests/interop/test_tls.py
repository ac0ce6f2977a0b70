"""SIP over TLS (RFC 3261 §18, §26.2) against real programs: sipsak and baresip.

Everything runs on loopback (127.0.0.1; the TLS call also on ::1) with free ports, with a CA
and a certificate made by the test (:func:`tls_helpers.make_pki`). Peers are started by the
test and stopped by PID; every wait is bounded. How each peer is driven headlessly, and the
quirks of the Debian builds (sipsak checks certificates only at ``-vvv`` and chokes on TLS 1.3
session tickets; baresip 1.0.0 does not verify server certificates), is written down in
``tls_helpers``'s module docstring.

* sipsak -> hybridvoice: OPTIONS over TLS answered 200, certificate checked by sipsak.
* hybridvoice -> baresip: ``hybridvoice.net.options.ping`` over TLS, certificate checked by us.
* baresip -> hybridvoice UAS: a call over TLS (and TCP, UDP): INVITE, 180, 200 with an SDP
  answer for PCMU/PCMA, ACK, RTP from baresip, BYE from either side answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ports import free_port, free_port_pair
from tls_helpers import (
    BaresipControl,
    BaresipPorts,
    Pki,
    Program,
    baresip_argv,
    bracketed,
    client_context,
    make_pki,
    parse_sip_trace,
    require_binary,
    run_program,
    running,
    server_context,
    sipsak_has_tls,
    sipsak_options_argv,
    write_baresip_config,
)

from hybridvoice.net import loop as hv_loop
from hybridvoice.net.endpoint import Endpoint, RequestTimeoutError
from hybridvoice.net.options import ping
from hybridvoice.net.transport import DEFAULT_PORTS, Destination, Source
from hybridvoice.sip.dialog import Dialog, DialogTable
from hybridvoice.sip.headers import parse_address
from hybridvoice.sip.message import Request, Response, make_response
from hybridvoice.sip.offer_answer import make_answer
from hybridvoice.sip.sdp import Codec, Origin, SessionDescription
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction
from hybridvoice.sip.uri import SipUri

pytestmark = pytest.mark.interop

#: Every test's whole run is bounded by this (seconds); single waits are shorter.
TEST_DEADLINE = 60.0
#: What our UAS accepts, in our order of preference.
LOCAL_CODECS = (Codec("0", "PCMU", 8000), Codec("8", "PCMA", 8000))


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run a test body on the project's event loop (uvloop when installed), bounded."""

    async def bounded() -> None:
        async with asyncio.timeout(TEST_DEADLINE):
            await main()

    hv_loop.run(bounded())


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


# --- a small UAS on the real endpoint ---------------------------------------------------------


@dataclass(slots=True)
class Call:
    """What the UAS saw of one incoming call."""

    invite: Request
    source: Source
    dialog: Dialog
    offer: SessionDescription
    answer: SessionDescription
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    bye: Request | None = None
    bye_received: asyncio.Event = field(default_factory=asyncio.Event)


class Uas:
    """A transaction user: answers OPTIONS 200 and INVITE 180 then 200 (SDP answer, G.711),
    takes the ACK and answers BYE 200, keeping what it saw."""

    def __init__(self, media_port: int, host: str = "127.0.0.1") -> None:
        self.media_port = media_port
        self.host = host
        self.options: list[tuple[Request, Source]] = []
        self.calls: list[Call] = []
        self.call_arrived = asyncio.Event()
        self.dialogs: DialogTable[Call] = DialogTable()
        self.unexpected: list[str] = []

    # TransactionUser
    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        source = transaction.context
        assert isinstance(source, Source)
        if request.method == "OPTIONS":
            self.options.append((request, source))
            endpoint.send_response(
                transaction,
                make_response(
                    request,
                    200,
                    to_tag=secrets.token_hex(4),
                    headers=[
                        ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"),
                        ("Accept", "application/sdp"),
                    ],
                ),
            )
        elif request.method == "INVITE":
            self._invite(endpoint, transaction, request, source)
        elif request.method == "BYE":
            call = self.dialogs.match_request(request)
            if call is None:
                endpoint.send_response(transaction, make_response(request, 481))
                return
            error = call.dialog.receive_request(request)
            if error is not None:
                endpoint.send_response(transaction, error)
                return
            endpoint.send_response(transaction, call.dialog.create_response(request, 200))
            call.dialog.terminate()
            call.bye = request
            call.bye_received.set()
        else:
            self.unexpected.append(request.method)
            endpoint.send_response(transaction, make_response(request, 501, to_tag="x"))

    def _invite(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request, source: Source
    ) -> None:
        transport = source.transport
        contact = parse_address(f"<sip:hv@{transport.sent_by};transport={transport.kind.lower()}>")
        dialog = Dialog.from_uas(request, secrets.token_hex(4), contact)
        offer = SessionDescription.parse(request.body)
        answer = make_answer(
            offer,
            LOCAL_CODECS,
            origin=Origin(
                "hybridvoice",
                str(secrets.randbelow(2**31)),
                1,
                "IN",
                "IP6" if ":" in self.host else "IP4",
                self.host,
            ),
            address=self.host,
            ports=[self.media_port] * len(offer.media),
        )
        call = Call(request, source, dialog, offer, answer)
        self.calls.append(call)
        self.dialogs.add(dialog.id, call)
        endpoint.send_response(transaction, dialog.create_response(request, 180))
        endpoint.send_response(
            transaction,
            dialog.create_response(
                request, 200, body=bytes(answer), content_type="application/sdp"
            ),
        )
        self.call_arrived.set()

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        call = self.dialogs.match_request(request)
        if call is None:
            self.unexpected.append("ACK without dialog")
            return
        call.acked.set()

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        self.unexpected.append(f"response {response.status}")

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        pass  # a retransmitted 2xx: nothing to do here

    def on_timeout(
        self,
        endpoint: Endpoint,
        transaction: ClientTransaction | ServerTransaction,
        reason: str,
    ) -> None:
        self.unexpected.append(f"timeout {transaction.method} {reason}")


class RtpCounter(asyncio.DatagramProtocol):
    """The UAS's media port: counts the RTP packets baresip sends, by payload type."""

    def __init__(self) -> None:
        self.payload_types: list[int] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2:  # RTP version 2 (RFC 3550 §5.1)
            self.payload_types.append(data[1] & 0x7F)
            self.arrived.set()


async def open_rtp_counter(host: str) -> tuple[asyncio.DatagramTransport, RtpCounter, int]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(RtpCounter, local_addr=(host, 0))
    return transport, protocol, int(transport.get_extra_info("sockname")[1])


async def within(what: str, awaitable: Awaitable[Any], timeout: float, program: Program) -> Any:
    """``awaitable`` within ``timeout`` s, else fail showing what the peer printed."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise AssertionError(f"{what} within {timeout} s; peer output:\n{program.text()}") from None


# --- sipsak -> hybridvoice --------------------------------------------------------------------


async def _check_sipsak_tls(sipsak: str) -> None:
    if not await sipsak_has_tls(sipsak):
        pytest.fail(f"{sipsak} was built without TLS support (no TLS_SUPPORT in --version)")


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_sipsak_options_over_tls(pki: Pki, name: str) -> None:
    """sipsak sends OPTIONS over TLS, checks our certificate for ``name`` against the test CA
    and gets our 200; our endpoint saw the request arrive on its TLS transport."""

    sipsak = require_binary("sipsak", "sipsak")

    async def main() -> None:
        await _check_sipsak_tls(sipsak)
        uas = Uas(media_port=0)
        endpoint = Endpoint(uas)
        try:
            tls = await endpoint.listen("TLS", "127.0.0.1", 0, server_ssl=server_context(pki))
            argv = sipsak_options_argv(sipsak, "127.0.0.1", tls.local[1], ca=pki.ca, name=name)
            result = await run_program(argv, timeout=20)
        finally:
            await endpoint.close()
        assert result.returncode == 0, f"{' '.join(argv)} -> {result.returncode}\n{result.output}"
        assert "SIP/2.0 200" in result.output
        assert "does not match" not in result.output
        assert "not trustworthy" not in result.output
        assert "Protocol: TLS" in result.output  # the handshake report sipsak prints at -vvv
        assert len(uas.options) == 1
        request, source = uas.options[0]
        assert source.transport.kind == "TLS"
        assert request.top_via is not None and request.top_via.transport == "TLS"
        assert endpoint.counters.responses_out == {200: 1}
        assert uas.unexpected == []

    run(main)


def test_sipsak_rejects_certificate_of_unknown_ca(pki: Pki, tmp_path: Path) -> None:
    """The check sipsak does is real: with another CA it refuses the handshake (exit 3)
    and our endpoint never sees a request."""

    sipsak = require_binary("sipsak", "sipsak")

    async def main() -> None:
        await _check_sipsak_tls(sipsak)
        other = make_pki(tmp_path / "other-pki", ca_name="some other CA")
        uas = Uas(media_port=0)
        endpoint = Endpoint(uas)
        try:
            tls = await endpoint.listen("TLS", "127.0.0.1", 0, server_ssl=server_context(pki))
            argv = sipsak_options_argv(
                sipsak, "127.0.0.1", tls.local[1], ca=other.ca, name="127.0.0.1"
            )
            result = await run_program(argv, timeout=20)
        finally:
            await endpoint.close()
        assert result.returncode == 3, result.output
        assert "not trustworthy" in result.output
        assert uas.options == []

    run(main)


# --- hybridvoice -> baresip -------------------------------------------------------------------


@dataclass(slots=True)
class Phone:
    program: Program
    ctrl: BaresipControl
    ports: BaresipPorts


async def _start_baresip(
    stack: contextlib.AsyncExitStack,
    baresip: str,
    tmp_path: Path,
    pki: Pki,
    transport: str,
    host: str = "127.0.0.1",
) -> Phone:
    """baresip with its own config dir, up and controllable; stopped when ``stack`` closes
    (``-t 40``: it also quits by itself should everything else fail)."""
    ports = BaresipPorts(host=host, sip=free_port_pair(host), ctrl=free_port())
    config = write_baresip_config(tmp_path / "baresip", ports, pki=pki, transport=transport)
    program = await stack.enter_async_context(
        running(
            baresip_argv(baresip, config, seconds=40, ipv6=":" in host), tmp_path / "baresip.out"
        )
    )
    ctrl = await BaresipControl.connect(ports.ctrl, program, timeout=10)
    stack.push_async_callback(ctrl.close)
    return Phone(program, ctrl, ports)


async def _quit(phone: Phone) -> int | None:
    """Ask baresip to quit and wait for it (the ``running`` context kills it otherwise)."""
    await phone.ctrl.send("quit")
    return await phone.program.wait(5)


def test_options_ping_over_tls_to_baresip(pki: Pki, tmp_path: Path) -> None:
    """``hybridvoice.net.options.ping`` over TLS to baresip's TLS listener: our client checks
    baresip's certificate (made by the test CA) and gets baresip's 200; with a context that
    does not trust that CA the handshake fails and nothing reaches baresip."""
    baresip = require_binary("baresip", "baresip")

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            phone = await _start_baresip(stack, baresip, tmp_path, pki, "TLS")
            uri = f"sip:alice@127.0.0.1:{phone.ports.tls};transport=tls"
            result = await ping(uri, tls_context=client_context(pki.ca), timeout=5)
            assert result.response.status == 200, result.response

            other = make_pki(tmp_path / "other-pki", ca_name="some other CA")
            # the failed handshake is a transport error of the transaction (TRANSACTION_API.md)
            with pytest.raises(RequestTimeoutError) as refused:
                await ping(uri, tls_context=client_context(other.ca), timeout=5)
            assert refused.value.reason == "transport"
            assert await _quit(phone) == 0
        trace = parse_sip_trace(phone.program.text())
        received = [m for m in trace if m.destination.endswith(f":{phone.ports.tls}")]
        assert [m.start_line.split()[0] for m in received] == ["OPTIONS"], trace
        assert all(m.transport == "TLS" for m in trace)

    run(main)


# --- baresip -> hybridvoice UAS: a call -------------------------------------------------------


def _destination(uri: Any, kind: str) -> Destination:
    """Where an in-dialog request to the remote target ``uri`` goes (no DNS: an IP literal)."""
    assert isinstance(uri, SipUri), uri
    transport = (uri.transport or kind).upper()
    return Destination(transport, uri.host_bare, uri.port or DEFAULT_PORTS[transport])


CALL_CASES = [
    pytest.param(transport, hangup, host, id=f"{transport}-{name}-bye-from-{hangup}")
    for transport, host, name in [
        ("TLS", "127.0.0.1", "ipv4"),
        ("TLS", "::1", "ipv6"),
        ("TCP", "127.0.0.1", "ipv4"),
        ("UDP", "127.0.0.1", "ipv4"),
    ]
    for hangup in ("baresip", "hybridvoice")
]


@pytest.mark.parametrize(("transport", "hangup", "host"), CALL_CASES)
def test_baresip_call(pki: Pki, tmp_path: Path, transport: str, hangup: str, host: str) -> None:
    """baresip dials our UAS over ``transport``; 180, 200 with a G.711 answer, ACK, RTP
    flows, then a BYE from ``hangup`` is answered 200, and both sides saw every step."""
    baresip = require_binary("baresip", "baresip")

    async def main() -> None:
        rtp_transport, rtp, media_port = await open_rtp_counter(host)
        uas = Uas(media_port, host)
        endpoint = Endpoint(uas)
        try:
            if transport == "TLS":
                listening = await endpoint.listen(
                    "TLS",
                    host,
                    0,
                    server_ssl=server_context(pki),
                    client_ssl=client_context(pki.ca),
                )
            else:
                listening = await endpoint.listen(transport, host, 0)
            our_address = f"{bracketed(host)}:{listening.local[1]}"
            async with contextlib.AsyncExitStack() as stack:
                phone = await _start_baresip(stack, baresip, tmp_path, pki, transport, host)
                ctrl = phone.ctrl
                await ctrl.send("dial", f"sip:bob@{our_address}")
                event = await ctrl.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=10)
                assert event["type"] == "CALL_ESTABLISHED", (ctrl.events, phone.program.text())
                await within("no INVITE reached the UAS", uas.call_arrived.wait(), 5, phone.program)
                call = uas.calls[0]
                await within("no ACK for the 2xx", call.acked.wait(), 5, phone.program)
                await within("no RTP from baresip", rtp.arrived.wait(), 5, phone.program)

                if hangup == "baresip":
                    await ctrl.send("hangup")
                    await within("no BYE from baresip", call.bye_received.wait(), 5, phone.program)
                else:
                    bye = call.dialog.create_request("BYE")
                    response = await endpoint.request(
                        bye, _destination(call.dialog.remote_target, transport), timeout=5
                    )
                    assert response.status == 200, response
                closed = await ctrl.wait_event("CALL_CLOSED", timeout=5)
                if hangup == "baresip":
                    await _wait_for_trace(phone.program, "SIP/2.0 200", "BYE", timeout=5)
                assert await _quit(phone) == 0
        finally:
            await endpoint.close()
            rtp_transport.close()

        # what the UAS saw
        assert len(uas.calls) == 1
        assert call.source.transport.kind == transport
        assert call.invite.top_via is not None and call.invite.top_via.transport == transport
        offered = [c.encoding.upper() for c in call.offer.media[0].codecs()]
        assert {"PCMU", "PCMA"} <= set(offered)
        answered = [c.encoding.upper() for c in call.answer.media[0].codecs()]
        assert answered and answered[0] == offered[0]
        assert set(rtp.payload_types) <= {0, 8}
        assert call.acked.is_set()
        if hangup == "baresip":
            assert call.bye is not None
        assert endpoint.counters.responses_out.get(180) == 1
        assert uas.unexpected == []

        # what baresip saw
        types = ctrl.event_types()
        assert types.index("CALL_RINGING") < types.index("CALL_ESTABLISHED")
        assert types.index("CALL_ESTABLISHED") < types.index("CALL_CLOSED")
        assert closed["type"] == "CALL_CLOSED"
        trace = parse_sip_trace(phone.program.text())
        assert trace and all(m.transport == transport for m in trace), trace
        from_us = [(m.start_line, m.cseq.split()[-1]) for m in trace if m.source == our_address]
        assert ("SIP/2.0 180 Ringing", "INVITE") in from_us
        assert ("SIP/2.0 200 OK", "INVITE") in from_us
        if hangup == "baresip":
            assert ("SIP/2.0 200 OK", "BYE") in from_us
        else:
            # our BYE goes to baresip's Contact: its listening port (a new connection on TCP/TLS)
            phone_port = phone.ports.tls if transport == "TLS" else phone.ports.sip
            byes = [m for m in trace if m.start_line.startswith("BYE ")]
            assert [m.destination for m in byes] == [f"{bracketed(host)}:{phone_port}"], trace
            assert any(m.start_line == "SIP/2.0 200 OK" and m.cseq.endswith("BYE") for m in trace)

    run(main)


async def _wait_for_trace(program: Program, start: str, method: str, *, timeout: float) -> None:
    """Poll baresip's trace until it shows a message starting ``start`` for ``method``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for message in parse_sip_trace(program.text()):
            if message.start_line.startswith(start) and message.cseq.endswith(method):
                return
        if loop.time() > deadline:
            raise AssertionError(f"baresip never traced {start} for {method}:\n{program.text()}")
        await asyncio.sleep(0.05)
