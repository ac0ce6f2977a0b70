"""What every SIP transport shares (RFC 3261 §18, RFC 3581): addresses, the receive-side Via
processing, response routing and the answer to a malformed request.

The concrete transports live in :mod:`hybridvoice.net.udp` (UDP, §18.1.1/§18.2.1 on datagrams)
and :mod:`hybridvoice.net.stream` (TCP and TLS, framing per §18.3). They hand every message that
parsed to a :class:`MessageSink` (the endpoint) together with a :class:`Source`, and send bytes
with ``send``. Nothing here does I/O.

* §18.2.1: a request gets ``received=`` in its top Via when the sent-by host is not the source
  address, and (RFC 3581 §4) ``rport=`` with the source port when the Via asks for it.
* §18.2.2 and RFC 3581 §4: where a response goes, :func:`response_address`.
* §18.1.2: a response whose top Via was not written by us is dropped, :func:`via_is_ours`.
* §21.4.1 (project rule): a request that does not parse but whose request line and top Via can
  be read is answered 400 (or the parser's status hint: 505, 513...), :func:`error_response`.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, get_args

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.headers import Headers, Via, parse_via_list
from hybridvoice.sip.message import REASON_PHRASES, Message, Request, Response

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_PORTS",
    "DROP_REASONS",
    "RELIABLE",
    "BoundTransport",
    "Connection",
    "Destination",
    "DropReason",
    "MessageSink",
    "NetError",
    "SendErrorCallback",
    "Source",
    "Transport",
    "TransportCounters",
    "TransportError",
    "bare_host",
    "check_cseq",
    "drop_reason",
    "error_response",
    "family_of",
    "response_address",
    "stamp_via",
    "via_host",
    "via_is_ours",
]

#: Default ports by transport name (§19.1.2, §26.2).
DEFAULT_PORTS: Final[dict[str, int]] = {"UDP": 5060, "TCP": 5060, "TLS": 5061}
#: Transports that are reliable (§17: no retransmissions, timers K/D zero).
RELIABLE: Final[frozenset[str]] = frozenset({"TCP", "TLS"})
#: The largest message accepted by default, header section plus body.
DEFAULT_MAX_SIZE: Final = 65535
#: Socket buffers for listening sockets (PERFORMANCE.md: short stalls overflow small ones).
DEFAULT_BUFFER_SIZE: Final = 4 * 1024 * 1024


class NetError(Exception):
    """Base class of the errors raised by ``hybridvoice.net``."""


class TransportError(NetError):
    """A message could not be sent: no transport for the destination, connect or write failed."""


#: Called with the error when bytes handed to ``send`` could not be delivered to the kernel.
SendErrorCallback = Callable[[Exception], None]


# Destination and Source: slotted, read-only by contract but not frozen (several are built for
# every message; a frozen dataclass's __init__ pays object.__setattr__ per field, 3.5 times
# the cost), hashed by value as before (unsafe_hash: nothing assigns their fields).
@dataclass(slots=True, unsafe_hash=True)
class Destination:
    """Where to send a request: transport name, IP literal (no brackets) and port.

    ``server_name`` is the name a TLS certificate is checked against (SNI); the IP otherwise.
    ``local`` picks the transport to send from by its bound address when an endpoint has
    several of one kind (a dual-homed edge: the internal or the external interface).
    """

    transport: str
    host: str
    port: int
    server_name: str | None = None
    local: tuple[str, int] | None = None

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE


class Connection(Protocol):
    """One TCP or TLS connection (or an in-process pipe), as the endpoint sees it."""

    @property
    def is_open(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def write_message(self, message: Request | Response) -> None:
        """Send ``message``: serialised onto a socket, or a copy handed over a pipe."""
        ...


class Transport(Protocol):
    """One listening transport (a UDP socket, or a TCP/TLS listener with its connections)."""

    @property
    def kind(self) -> str:
        """``"UDP"``, ``"TCP"`` or ``"TLS"``: the Via sent-protocol transport (§20.42)."""
        ...

    @property
    def reliable(self) -> bool: ...

    @property
    def family(self) -> socket.AddressFamily: ...

    @property
    def local(self) -> tuple[str, int]:
        """The bound address (IP literal without brackets, port)."""
        ...

    @property
    def advertised(self) -> tuple[str, int]:
        """The address we put in Via sent-by (§18.1.1): the bound one unless configured."""
        ...

    @property
    def sent_by(self) -> str:
        """The Via sent-by we write into requests: ``host:port`` (IPv6 in brackets)."""
        ...

    @property
    def counters(self) -> TransportCounters: ...

    def send(
        self,
        data: bytes,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        on_error: SendErrorCallback | None = None,
    ) -> None:
        """Send ``data`` to (host, port), reusing or opening a connection on streams."""
        ...

    def send_message(
        self,
        message: Request | Response,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        on_error: SendErrorCallback | None = None,
    ) -> None:
        """``send(bytes(message), ...)``; a stream transport hands a copy of ``message`` over
        an in-process pipe instead when (host, port) is a listener of this process."""
        ...

    def close(self) -> None: ...


class BoundTransport:
    """What every concrete transport keeps about its socket: the address family, the address
    it is bound to and the one it advertises in Via and Contact (they differ behind NAT)."""

    __slots__ = ("_advertised", "_family", "_local")

    _advertised: tuple[str, int]
    _family: socket.AddressFamily
    _local: tuple[str, int]

    @property
    def family(self) -> socket.AddressFamily:
        return self._family

    @property
    def local(self) -> tuple[str, int]:
        return self._local

    @property
    def advertised(self) -> tuple[str, int]:
        return self._advertised


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see Destination
class Source:
    """Where a received message came from; the endpoint passes it as transaction context so
    that a response can go back the same way (§18.2.2)."""

    transport: Transport
    host: str
    port: int
    connection: Connection | None = None
    #: where a response goes when not on ``connection``: :func:`response_address` of the
    #: request's stamped top Via, worked out once on receipt
    reply: tuple[str, int] | None = None


class MessageSink(Protocol):
    """What a transport delivers parsed messages to (the endpoint)."""

    def on_request(self, request: Request, source: Source) -> None: ...

    def on_response(self, response: Response, source: Source) -> None: ...


#: Why a message was dropped or refused: the label values of the drop counter, a fixed set
#: (never text from the wire). The parser's defects (``ParseError.kind``): ``malformed``
#: (any other syntax error), ``unparseable`` (no header section), ``bare_cr_lf``,
#: ``bad_number``, ``bad_host``, ``bad_start_line``, ``bad_version``, ``bad_content_length``,
#: ``oversized``, ``missing_header`` (no Via). Then the transport's own: ``via_mismatch``
#: (a response not sent to us, §18.1.2), ``head_timeout`` (a message head not complete in
#: time: the connection is closed), ``truncated`` (a stream closed by the peer in the middle
#: of a message), ``source_limit`` / ``connection_limit`` (a connection
#: refused by the per-source or the total cap), ``socket_error`` (a read failed),
#: ``send_queue_full`` / ``write_buffer_full`` (outgoing: the peer does not read) and
#: ``internal_error`` (a bug above the transport; logged).
DropReason = Literal[
    "malformed",
    "unparseable",
    "bare_cr_lf",
    "bad_number",
    "bad_host",
    "bad_start_line",
    "bad_version",
    "bad_content_length",
    "oversized",
    "missing_header",
    "via_mismatch",
    "head_timeout",
    "truncated",
    "source_limit",
    "connection_limit",
    "socket_error",
    "send_queue_full",
    "write_buffer_full",
    "internal_error",
]
DROP_REASONS: Final[frozenset[str]] = frozenset(get_args(DropReason))


def drop_reason(error: ParseError) -> DropReason:
    """The drop-counter label of a parse error: its kind (``malformed`` if unknown)."""
    kind = error.kind
    return kind if kind in DROP_REASONS else "malformed"  # type: ignore[return-value]


@dataclass(slots=True)
class TransportCounters:
    """Plain counters of one transport. ``drops`` counts every received message that was
    not delivered (and every outgoing one given up), by :data:`DropReason`; ``answered``
    counts those of them that got an error response (400, 505, 513...), by the same reason.
    """

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    keepalive_pings: int = 0
    keepalive_pongs: int = 0
    error_responses: int = 0
    send_errors: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    idle_closed: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    #: TLS peers refused, by (peer, :data:`~hybridvoice.net.identity.RefusalReason`)
    tls_refused: dict[tuple[str, str], int] = field(default_factory=dict)

    def drop(self, reason: DropReason, *, answered: bool = False) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if answered:
            self.answered[reason] = self.answered.get(reason, 0) + 1


# --- addresses --------------------------------------------------------------------------


def bare_host(host: str) -> str:
    """``[::1]`` -> ``::1``; other hosts unchanged."""
    return host[1:-1] if host.startswith("[") else host


def via_host(host: str) -> str:
    """An IP literal as written in a Via or URI: IPv6 in brackets (§19.1.1)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _same_address(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return ipaddress.ip_address(bare_host(a)) == ipaddress.ip_address(bare_host(b))
    except ValueError:
        return False


def stamp_via(message: Message, host: str, port: int) -> Via | None:
    """Add ``received``/``rport`` to the top Via of a received request (§18.2.1, RFC 3581 §4).

    ``received`` is added when the sent-by host is not the source address, and always when
    the Via carries an empty ``rport`` (RFC 3581 §4 requires both then). Returns the (possibly
    updated) top Via, or None when there is none. Raises ``ParseError`` on a malformed Via.
    """
    via = message.top_via
    if via is None:
        return None
    if via.wants_rport and via.rport is None:
        new = via.with_param("received", host).with_param("rport", str(port))
    elif not _same_address(via.host, host):
        new = via.with_param("received", host)
    else:
        return via
    headers = message.headers
    headers.pop_first_value("Via")
    headers.prepend("Via", new)
    return new


def check_cseq(message: Message) -> None:
    """A message without CSeq cannot belong to a transaction (§17.1.3, §17.2.3): the
    transport refuses it (``missing_header``) rather than hand it to a layer that could
    only drop it unseen."""
    if message.cseq is None:
        raise ParseError("no CSeq header", kind="missing_header")


def via_is_ours(via: Via | None, transport: Transport) -> bool:
    """§18.1.2: the top Via of a response must carry the sent-by this transport writes.

    A client-only transport (advertised port 0) writes no port, so only the host is compared.
    """
    if via is None:
        return False
    host, port = transport.advertised
    if port:
        via_port = via.port if via.port is not None else DEFAULT_PORTS.get(via.transport, 5060)
        if via_port != port:
            return False
    return _same_address(via.host, host)


def response_address(via: Via, reliable: bool) -> tuple[str, int]:
    """Where a response goes when it cannot use the request's connection (§18.2.2).

    Unreliable: ``maddr`` (port from sent-by), else ``received`` with ``rport`` (RFC 3581 §4)
    or the sent-by port, else the sent-by itself. Reliable: ``received`` (else sent-by host)
    with the sent-by port. Ports default per transport (§18.2.2: 5060, 5061 for TLS).
    """
    default = DEFAULT_PORTS.get(via.transport, 5060)
    sent_by_port = via.port if via.port is not None else default
    if not reliable:
        maddr = via.maddr
        if maddr is not None:
            return bare_host(maddr), sent_by_port
        received = via.received
        if received is not None:
            rport = via.rport
            return bare_host(received), rport if rport is not None else sent_by_port
    received = via.received
    return bare_host(received if received is not None else via.host), sent_by_port


# --- the answer to a request that does not parse -----------------------------------------

_COPIED: Final = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To"}
_COPIED.update({"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"})
_PRINTABLE: Final = frozenset(range(0x20, 0x7F))


def _sanitise(text: str, limit: int = 120) -> str:
    """A reason phrase must be UTF-8 text without CR/LF (§25.1); keep printable ASCII."""
    return "".join(c if ord(c) in _PRINTABLE else "?" for c in text[:limit])


def error_response(data: bytes, error: ParseError) -> Response | None:
    """The response to a request that failed to parse, or None when there is none to send.

    When the request line and the top Via can be read, this is ``error.status_hint`` (400,
    505, 513...) with the parser's reason in the phrase (§21.4.1), carrying the Via, From,
    To (with a tag, §8.2.6.2), Call-ID and CSeq lines as received, so the client can match it
    (§8.1.3.3, §17.1.3). Responses, ACK (§17.1.1.3: never answered) and garbage give None.
    """
    end = data.find(b"\r\n\r\n")
    head = data[: end if end >= 0 else 4096].decode("utf-8", "replace")
    head = head.lstrip("\r\n")
    # Lines end where the parser ends them; a line holding a bare CR or LF (an injection
    # attempt, or garbage) is not copied.
    lines = [
        line
        for line in (head.split("\r\n") if "\r\n" in head else head.split("\n"))
        if "\r" not in line and "\n" not in line
    ]
    if not lines:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/") or parts[0] == "ACK":
        return None
    if not parts[0].isascii() or not parts[0].isalpha():
        return None
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        canon = _COPIED.get(name.strip().lower())
        if colon and canon is not None:
            value = value.strip()
            if canon == "To" and "tag=" not in value:
                value = f"{value};tag={secrets.token_hex(4)}"
            headers.add(canon, value)
    vias = headers.get_all("Via")
    if not vias:
        return None
    try:
        parse_via_list(vias[:1])
    except ParseError:
        return None
    status = error.status_hint if 400 <= error.status_hint <= 699 else 400
    reason = f"{REASON_PHRASES.get(status, 'Bad Request')} ({_sanitise(error.reason)})"
    headers.add("Content-Length", 0)
    return Response(status, reason, headers)
