"""The test harness of the INVITE session tests (``test_session_setup``,
``test_session_midcall``): INVITE sessions wired together in memory (UAC <-> one or more
UASes), every message going through bytes and the parser, under a fake clock; SDP bodies
and a parsed initial INVITE (RFC 3261 §13, RFC 3264 offers as opaque bytes)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

from hybridvoice.sip import Request, Response, make_cancel, parse_message
from hybridvoice.sip.session import (
    Event,
    InviteSession,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    State,
)

__all__ = [
    "ANSWER", "HELD", "HOLD", "OFFER", "RESUME", "RESUMED", "Message", "Net", "label", "last",
    "make_invite", "sdp", "statuses",
]  # fmt: skip


def sdp(owner: str, direction: str = "sendrecv", version: int = 1) -> bytes:
    return (
        f"v=0\r\no={owner} 1 {version} IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
        f"t=0 0\r\nm=audio 49170 RTP/AVP 0\r\na={direction}\r\n"
    ).encode()


OFFER, ANSWER = sdp("alice"), sdp("bob")
HOLD, HELD = sdp("alice", "sendonly", 2), sdp("bob", "recvonly", 2)
RESUME, RESUMED = sdp("alice", "sendrecv", 3), sdp("bob", "sendrecv", 3)


def make_invite(body: bytes = OFFER, extra: bytes = b"") -> Request:
    head = (
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:alice@client.atlanta.example.com>\r\n" + extra
    )
    if body:
        head += b"Content-Type: application/sdp\r\n"
    message = parse_message(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert isinstance(message, Request)
    return message


Message = Request | Response


class Net:
    """A UAC and its UASes, one record-routing proxy between them. ``drop`` loses
    messages; ``frozen`` sessions no longer see their timers (a crashed peer)."""

    def __init__(
        self,
        invite: Request | None = None,
        uac_config: SessionConfig | None = None,
        record_route: tuple[str, ...] = (),
    ) -> None:
        self.now = 0.0
        self.record_route = record_route
        self.uac = InviteSession.outgoing(
            invite or make_invite(), config=uac_config, rng=random.Random(1)
        )
        self.uases: dict[str, InviteSession] = {}
        self.app: dict[str, list[Event]] = defaultdict(list)
        self.log: list[tuple[float, str, Message]] = []
        self.drop: Callable[[Message], bool] = lambda message: False
        self.frozen: set[str] = set()
        self.invites: list[Request] = []  # the INVITEs as they arrived at the UAS side
        self._branch = 0
        self.pump()

    @property
    def invite(self) -> Request:
        return self.invites[-1]

    def add_uas(self, tag: str, config: SessionConfig | None = None) -> InviteSession:
        uas = InviteSession.incoming(
            self.invite,
            tag,
            f"<sip:bob@{tag}.biloxi.example.com>",
            config=config,
            rng=random.Random(tag),
        )
        self.uases[tag] = uas
        self.pump()
        return uas

    def sessions(self) -> dict[str, InviteSession]:
        return {"uac": self.uac, **self.uases}

    def pump(self) -> None:
        busy = True
        while busy:
            busy = False
            for name, session in self.sessions().items():
                for event in session.events():
                    busy = True
                    self.route(name, event)

    def route(self, sender: str, event: Event) -> None:
        match event:
            case SendRequest(request):
                self.send_request(sender, request)
            case SendCancel(_):
                for uas in self.uases.values():
                    self.deliver(sender, make_cancel(self.invite), uas)
            case SendResponse(response, _):
                if sender == "uac":
                    assert response.from_ is not None and response.from_.tag is not None
                    self.deliver(sender, response, self.uases[response.from_.tag])
                else:
                    self.deliver(sender, response, self.uac)
            case _:
                self.app[sender].append(event)

    def send_request(self, sender: str, request: Request) -> None:
        """What the endpoint does: a top Via; then what the proxy does: Record-Route."""
        request = request.copy()
        self._branch += 1
        host = "client.atlanta.example.com" if sender == "uac" else f"{sender}.biloxi.example.com"
        request.headers.prepend("Via", f"SIP/2.0/UDP {host};branch=z9hG4bK{self._branch}")
        assert request.to is not None
        if request.to.tag is None:  # an initial INVITE
            for value in self.record_route:
                request.headers.add("Record-Route", value)
            message = self.deliver(sender, request, None)
            if isinstance(message, Request):
                self.invites.append(message)
        elif sender == "uac":
            self.deliver(sender, request, self.uases[request.to.tag])
        else:
            self.deliver(sender, request, self.uac)

    def deliver(self, sender: str, message: Message, to: InviteSession | None) -> Message | None:
        if self.drop(message):
            return None
        wire = parse_message(bytes(message))
        self.log.append((self.now, sender, wire))
        if isinstance(wire, Request) and to is not None:
            to.receive_request(wire, self.now)
        elif isinstance(wire, Response) and to is not None:
            to.receive_response(wire, self.now)
        return wire

    def run_until(self, end: float) -> None:
        """Advance the clock deadline by deadline up to ``end``."""
        while True:
            deadlines = [
                (deadline, name)
                for name, session in self.sessions().items()
                if name not in self.frozen and (deadline := session.next_deadline()) is not None
            ]
            if not deadlines or min(deadlines)[0] > end:
                break
            self.now, name = min(deadlines)
            self.sessions()[name].handle_timer(self.now)
            self.pump()
        self.now = end

    def requests(self, sender: str, method: str) -> list[tuple[float, Request]]:
        """When ``sender`` sent requests of ``method``, and what it sent."""
        return [
            (when, message)
            for when, who, message in self.log
            if who == sender and isinstance(message, Request) and message.method == method
        ]

    def responses(self, sender: str, what: str) -> list[tuple[float, Response]]:
        """When ``sender`` sent responses ``what`` ("200 INVITE"), and what it sent."""
        return [
            (when, message)
            for when, who, message in self.log
            if who == sender and isinstance(message, Response) and label(message) == what
        ]

    def answered_call(self, tag: str = "b", **config: object) -> InviteSession:
        uas = self.add_uas(tag, SessionConfig(**config) if config else None)  # type: ignore[arg-type]
        uas.ring()
        uas.answer(ANSWER, self.now)
        self.pump()
        assert self.uac.state is State.CONFIRMED and uas.state is State.CONFIRMED
        return uas


def last(net: Net, side: str) -> Event:
    """The latest call-control event ``side`` saw."""
    return net.app[side][-1]


def label(response: Response) -> str:
    assert response.cseq is not None
    return f"{response.status} {response.cseq.method}"


def statuses(net: Net, sender: str) -> list[str]:
    return [label(m) for _, who, m in net.log if who == sender and isinstance(m, Response)]
