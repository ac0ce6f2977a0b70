"""In-process SIP hops: roles hosted by one process talk through pipes, not sockets.

One asyncio process may host several roles (ARCHITECTURE.md): an appliance always hosts its
edge and mediation roles, ``hybridvoice up`` hosts the online service too. Their SIP hops are
real hops (each role keeps its own transactions, Via, Record-Route and address checks), but
putting a message on a loopback TCP connection costs a serialisation, two system calls,
stream framing and a full parse on the other side, for a message the sender already holds
parsed. A :class:`LocalExchange`, made by whoever assembles the roles and given to their
endpoints, knows the stream listeners of the process by address; a stream transport that
sends to one of them connects through a :class:`PipeEnd` pair instead of a socket.

What crosses a pipe is a copy of the message (the header list and its parsed views, which are
immutable; the body): the receiver may change it freely, the sender keeps its own. It is
delivered on a later turn of the event loop, in order, as bytes on a connection would be:
never inside the sender's call. The receiving transport treats it like a message framed off
a connection (Via ``received`` stamping, §18.1.2 Via check on responses, counters), and its
:class:`~hybridvoice.net.transport.Source` is the pipe, so responses go back the same way
(§18.2.2). Both ends share the transport kind (TCP or TLS): in one process there is no wire for
TLS to protect, but there are still identities to check. A TLS pipe carries, in place of the
handshake, the identity of the certificate each side's context presents
(:func:`~hybridvoice.net.tls.identity_of`): the client's end gets the identity of the listener
it reached, the listener's end the client's, as ``peer_identity`` (what a TLS connection
learns from the peer's certificate). The client checks the listener's identity for the name it
connects to as a handshake would (RFC 5922 §7.2; a mismatch is refused and counted as
``name-mismatch``), and the roles check the peer identity of a pipe as of a socket.

Bytes written to a pipe (an error answer, a stateless forward) are parsed first, so every way
of sending works on it.

Nothing crosses a pipe that a socket would not carry; what is lost is the view from outside:
a packet capture shows no SIP between roles of one process. The SIP capture
(:mod:`.trace_tap`) does: a pipe hop is captured once, when written, as from the sender's
listening address to the receiver's. ``hybridvoice up --wire`` (no
exchange) puts every hop on sockets.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import parse_message

from .transport import TransportError

if TYPE_CHECKING:
    from .identity import PeerIdentity
    from .stream import StreamTransport

__all__ = ["LocalExchange", "PipeEnd"]


class LocalExchange:
    """The stream listeners of one process by (kind, host, port): bound and advertised."""

    __slots__ = ("_listeners", "pipes_opened")

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, str, int], StreamTransport] = {}
        self.pipes_opened = 0

    def add(self, transport: StreamTransport) -> None:
        """Make ``transport`` reachable by pipe at its bound and advertised addresses."""
        for host, port in (transport.local, transport.advertised):
            if port:
                self._listeners.setdefault((transport.kind, host, port), transport)

    def remove(self, transport: StreamTransport) -> None:
        for key in [k for k, t in self._listeners.items() if t is transport]:
            del self._listeners[key]

    def find(self, kind: str, host: str, port: int) -> StreamTransport | None:
        """The listener of ``kind`` at (host, port) in this process, if any."""
        return self._listeners.get((kind, host, port))

    def refusal(self, client: StreamTransport, server: StreamTransport, name: str) -> str | None:
        """Why ``client`` may not open a TLS pipe to ``server`` for ``name`` (the listener's
        certificate does not hold it, RFC 5922 §7.2), or None; a listener whose identity is
        unknown is taken as it is."""
        identity = server.identity
        if client.kind != "TLS" or identity is None or identity.matches(name):
            return None
        return f"pipe to {name}: the certificate holds {identity}"

    def connect(self, client: StreamTransport, server: StreamTransport) -> PipeEnd:
        """A pipe between two transports: returns the client's end; the server's end is
        registered with the server as a connection from the client's address."""
        loop = client.loop
        ours = PipeEnd(client, server.local, loop)
        theirs = PipeEnd(server, client.local, loop)
        ours.peer, theirs.peer = theirs, ours
        if client.kind == "TLS":  # each end learns who the other is, as from a handshake
            ours.peer_identity, theirs.peer_identity = server.identity, client.identity
        server._register(theirs)
        client._register(ours)
        self.pipes_opened += 1
        return ours

    def __len__(self) -> int:
        return len(self._listeners)


class PipeEnd:
    """One end of an in-process connection, as a stream transport sees its connections:
    ``host``/``port`` are the other side's listening address."""

    __slots__ = (
        "_inbox",
        "_loop",
        "_scheduled",
        "host",
        "last_active",
        "owner",
        "partial_since",
        "peer",
        "peer_identity",
        "port",
    )

    #: a pipe carries whole messages: never a partial one (see StreamLimits.head_timeout)
    partial_since: float

    def __init__(
        self, owner: StreamTransport, remote: tuple[str, int], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.owner = owner
        self.host, self.port = remote
        self.peer: PipeEnd | None = None
        #: TLS: the identity of the other end's certificate (see the module docstring)
        self.peer_identity: PeerIdentity | None = None
        self.last_active = loop.time()
        self.partial_since = 0.0
        self._loop = loop
        self._inbox: list[Request | Response] = []
        self._scheduled = False

    @property
    def is_open(self) -> bool:
        return self.peer is not None

    def write_message(self, message: Request | Response) -> None:
        """Hand a copy of ``message`` to the other end (delivered on a later loop turn)."""
        peer = self.peer
        if peer is None:
            raise TransportError(f"pipe to {self.host}:{self.port} is closed")
        counters = self.owner.counters
        counters.messages_out += 1
        tap = self.owner.tap or peer.owner.tap  # one capture per hop, by either end
        if tap is not None:
            tap(self.owner.kind, self.owner.local, peer.owner.local, bytes(message), True,
                message.call_id)  # fmt: skip
        self.last_active = self._loop.time()
        peer._inbox.append(message.copy())
        if not peer._scheduled:
            peer._scheduled = True
            self._loop.call_soon(peer._flush)

    def write(self, data: bytes) -> None:
        """Bytes (an error answer, a stateless forward): parsed, then handed over."""
        if not data.strip(b"\r\n"):
            return  # a keep-alive: a pipe needs none
        try:
            message = parse_message(data, self.owner.values)
        except ParseError as exc:  # our own bytes: a bug, but never a crash
            self.owner.counters.drop("internal_error")
            raise TransportError(f"unparsable message for {self.host}:{self.port}") from exc
        self.write_message(message)

    def _flush(self) -> None:
        self._scheduled = False
        inbox, self._inbox = self._inbox, []
        if self.peer is None:
            return
        self.last_active = self._loop.time()
        deliver = self.owner._deliver
        for message in inbox:
            deliver(message, self)

    def close_timed_out(self) -> None:  # pragma: no cover - a pipe never holds a partial message
        self.close()

    def close(self) -> None:
        """Close both ends (each unregisters from its transport)."""
        peer, self.peer = self.peer, None
        self.owner._unregister(self)
        if peer is not None:
            peer.close()

    def __repr__(self) -> str:
        return f"<PipeEnd {self.owner.kind} to {self.host}:{self.port}>"
