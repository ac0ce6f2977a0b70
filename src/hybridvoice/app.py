"""The one place where long-lived objects are built from settings and wired together.

Today it builds the lab SIP responder behind ``hybridvoice sip serve``: the real endpoint
(transports, transaction layer) with the UA core (dialogs, INVITE sessions) that runs the
RFC 3261 §8.2 request checks, answers OPTIONS (§11.2) and turns calls away with 480, or with
``--answer`` answers them (RFC 3264 offer/answer, no RTP yet) and holds them until the BYE.
The roles (online service, edge, mediation) are built here as they land.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rich.console import Console

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import DEFAULT_PORTS
from hybridvoice.net.ua import Call, CallUpdate, UserAgent
from hybridvoice.sip.message import Request
from hybridvoice.sip.offer_answer import make_answer
from hybridvoice.sip.sdp import Codec, Origin, SessionDescription
from hybridvoice.sip.session import Disconnected, Offer
from hybridvoice.sip.transaction import ServerTransaction

__all__ = ["ListenSpec", "Responder", "parse_listen", "run_responder"]


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One ``transport:host:port`` listen address."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"


def parse_listen(text: str) -> ListenSpec:
    """Parse ``udp:127.0.0.1:5060``, ``tls:[::1]:5061`` or ``tcp:127.0.0.1`` (default port).

    Raises ``ValueError`` naming the setting and what is wrong with it.
    """
    kind, sep, rest = text.partition(":")
    kind = kind.upper()
    if not sep or kind not in DEFAULT_PORTS:
        raise ValueError(f"listen {text!r}: start with udp:, tcp: or tls:")
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = rest.partition(":")
    if not host:
        raise ValueError(f"listen {text!r}: no host")
    if port_text and (not port_text.isdigit() or not 0 <= int(port_text) <= 65535):
        raise ValueError(f"listen {text!r}: port must be a number from 0 to 65535")
    return ListenSpec(kind, host, int(port_text) if port_text else DEFAULT_PORTS[kind])


#: What ``sip serve --answer`` offers and accepts (RFC 3551 §6, RFC 4733 §7.1.1).
ANSWER_CODECS: Final = (
    Codec("0", "PCMU", 8000),
    Codec("8", "PCMA", 8000),
    Codec("101", "telephone-event", 8000, fmtp="0-16"),
)
#: Media ports ``sip serve --answer`` names in its SDP (even: RTP, RFC 3550 §11).
MEDIA_PORTS: Final = range(40000, 50000, 2)


class Responder:
    """The lab application on the UA core (:class:`~hybridvoice.net.ua.UserAgent`): OPTIONS
    are answered 200 by the UA (§11.2), other requests checked per §8.2; calls are refused
    480, or with ``answer`` rung (180) and answered (200, RFC 3264 §6 answer for PCMU, PCMA
    and telephone-event) and held until the caller's BYE. No RTP flows: the media port is
    only named in the SDP.
    """

    def __init__(self, *, answer: bool = False) -> None:
        self.answer = answer
        self.calls_answered = 0
        self.calls_ended = 0
        self._ports = itertools.cycle(MEDIA_PORTS)

    # --- Application ------------------------------------------------------------------------
    def on_incoming_call(self, call: Call) -> None:
        if not self.answer:
            call.reject(480, headers=[("Warning", '399 hybridvoice "lab responder: no calls"')])
            return
        call.handler = self
        sdp = self._sdp_for(call, call.invite.body or None)
        if sdp is None:
            call.reject(488)
            return
        call.ring()
        call.answer(sdp)
        self.calls_answered += 1

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        return False  # the UA answers OPTIONS and refuses the rest

    # --- CallHandler --------------------------------------------------------------------------
    def on_call_event(self, call: Call, event: CallUpdate) -> None:
        if isinstance(event, Offer):  # re-INVITE or UPDATE with SDP: answer on the same port
            sdp = self._sdp_for(call, event.sdp)
            if sdp is None:
                call.reject_offer(488)
            else:
                call.accept_offer(sdp)
        elif isinstance(event, Disconnected):
            self.calls_ended += 1

    def _sdp_for(self, call: Call, offer_body: bytes | None) -> bytes | None:
        """Our answer to ``offer_body`` (or our offer when there is none); None: 488."""
        host = call.transport.advertised[0] if call.transport is not None else "127.0.0.1"
        port = call.data if isinstance(call.data, int) else next(self._ports)
        call.data = port
        origin = Origin("hybridvoice", str(port), 1, "IN", "IP6" if ":" in host else "IP4", host)
        if offer_body is None:
            rtpmaps = "".join(f"a=rtpmap:{c.rtpmap_value()}\r\n" for c in ANSWER_CODECS)
            formats = " ".join(c.payload_type for c in ANSWER_CODECS)
            return (
                f"v=0\r\no={origin}\r\ns=-\r\nc=IN {origin.addrtype} {host}\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP {formats}\r\n{rtpmaps}a=fmtp:101 0-16\r\n"
            ).encode()
        try:
            offer = SessionDescription.parse(offer_body)
            answer = make_answer(
                offer, ANSWER_CODECS, origin=origin, address=host, ports=[port] * len(offer.media)
            )
        except ValueError:  # SdpError and OfferAnswerError are ValueErrors
            return None
        if all(m.rejected for m in answer.media):
            return None
        return bytes(answer)


def _server_context(cert: str | None, key: str | None) -> ssl.SSLContext:
    if cert is None:
        raise ValueError("tls listeners need --tls-cert (and --tls-key unless the PEM holds it)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.num_tickets = 0  # sipsak and other SIP stacks stumble on TLS 1.3 tickets
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls-cert/tls-key: cannot load {cert}: {exc}") from exc
    return context


async def run_responder(
    listen: Sequence[str],
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    console: Console | None = None,
    answer: bool = False,
) -> None:
    """Listen on every address of ``listen`` and answer until SIGINT/SIGTERM; with
    ``answer`` calls are answered (SDP only, no RTP) instead of refused with 480."""
    specs = [parse_listen(text) for text in listen]
    server_ssl = (
        _server_context(tls_cert, tls_key) if any(s.transport == "TLS" for s in specs) else None
    )
    responder = Responder(answer=answer)
    endpoint = Endpoint()
    ua = UserAgent(endpoint, responder)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in specs:
            try:
                transport = await endpoint.listen(
                    spec.transport,
                    spec.host,
                    spec.port,
                    server_ssl=server_ssl if spec.transport == "TLS" else None,
                )
            except OSError as exc:
                raise ValueError(f"listen {spec}: {exc.strerror or exc}") from exc
            if console is not None:
                host, port = transport.local
                console.print(f"listening on {spec.transport.lower()} {host}:{port}")
        await stop.wait()
    finally:
        ua.close()
        await endpoint.close()
        answered = endpoint.counters.responses_out
        if console is not None and answered:
            summary = ", ".join(f"{n}x {s}" for s, n in sorted(answered.items()))
            console.print(f"answered: {summary}")
            if answer:
                console.print(
                    f"calls: {responder.calls_answered} answered, {responder.calls_ended} ended"
                )
