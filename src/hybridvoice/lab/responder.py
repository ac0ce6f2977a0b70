"""The lab answering machine: a SIP UAS that answers calls and echoes their media.

Behind ``hybridvoice sip serve --answer`` and the built-in lab gateway of ``hybridvoice up``.
:class:`Responder` is an application on the UA core (:class:`~hybridvoice.net.ua.UserAgent`):
OPTIONS are answered 200 by the UA (RFC 3261 §11.2), calls are refused 480 or rung (180) and
answered (200 with an RFC 3264 §6 answer for PCMU, PCMA and RFC 4733 telephone-event), and
held until the other side's BYE; re-INVITE/UPDATE offers are answered on the same port.
With an echo (:class:`~hybridvoice.lab.echo.RtpEcho`, the socket side) the SDP names the
echo's port, where media comes straight back (symmetric RTP, RFC 4961). :func:`answer_sdp` is
the answer itself, without a call or a socket.
"""

from __future__ import annotations

import itertools
from typing import Final, Protocol

from hybridvoice.net.ua import Call, CallUpdate
from hybridvoice.sip.message import Request
from hybridvoice.sip.offer_answer import make_answer
from hybridvoice.sip.sdp import Codec, Origin, SessionDescription
from hybridvoice.sip.session import Disconnected, Offer
from hybridvoice.sip.transaction import ServerTransaction

__all__ = ["ANSWER_CODECS", "MEDIA_PORTS", "MediaPort", "Responder", "answer_sdp"]


class MediaPort(Protocol):
    """Where answered media goes (:class:`~hybridvoice.lab.echo.RtpEcho`)."""

    @property
    def port(self) -> int: ...


#: What ``sip serve --answer`` offers and accepts (RFC 3551 §6, RFC 4733 §7.1.1).
ANSWER_CODECS: Final = (
    Codec("0", "PCMU", 8000),
    Codec("8", "PCMA", 8000),
    Codec("101", "telephone-event", 8000, fmtp="0-16"),
)
#: Media ports ``sip serve --answer`` names in its SDP (even: RTP, RFC 3550 §11).
MEDIA_PORTS: Final = range(40000, 50000, 2)


class Responder:
    """Refuses calls 480, or with ``answer`` rings and answers them; with ``echo`` the SDP
    names the echo's port (media comes back), otherwise a port from :data:`MEDIA_PORTS`
    where nothing listens."""

    def __init__(self, *, answer: bool = False, echo: MediaPort | None = None) -> None:
        self.answer = answer
        self.echo = echo
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
        if self.echo is not None:
            port = self.echo.port
        else:
            port = call.data if isinstance(call.data, int) else next(self._ports)
        call.data = port
        return answer_sdp(offer_body, host, port)


def answer_sdp(offer_body: bytes | None, host: str, port: int) -> bytes | None:
    """The lab's answer to ``offer_body`` (RFC 3264 §6: PCMU, PCMA, telephone-event on
    ``host``:``port``), or its offer when there is none; None: nothing acceptable (488)."""
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
