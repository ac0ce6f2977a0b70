"""SIP requests and responses (RFC 3261 §7) and the builders every role uses.

A message is its start line, a ``Headers`` list and a body. ``bytes(message)``
serialises it; the typed properties (``via``, ``from_``, ``to``, ``cseq``...) parse on
demand and are cached in the header list. ``make_response`` follows §8.2.6.2 and
``make_cancel``/``make_ack`` follow §9.1 and §17.1.1.3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from .errors import LocalProtocolError
from .headers import (
    _MISSING,
    Address,
    CSeq,
    Headers,
    Via,
    first_address,
    parse_address_list,
    parse_call_id,
    parse_cseq,
    parse_uint,
    parse_via_list,
)
from .headers import line_safe as _line_safe
from .uri import Uri

__all__ = [
    "REASON_PHRASES",
    "Message",
    "Request",
    "Response",
    "make_ack",
    "make_cancel",
    "make_response",
]

#: Default reason phrases (RFC 3261 §21 and later RFCs).
REASON_PHRASES: Final[Mapping[int, str]] = MappingProxyType({
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted",
})  # fmt: skip

_max_forwards = parse_uint(255, "Max-Forwards")
_content_length = parse_uint(2**31 - 1, "Content-Length")


class Message:
    """What requests and responses share: headers, body and the typed header views."""

    __slots__ = ("_body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self._body = body

    # body and its length stay in step
    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self.headers.set("Content-Length", len(value))

    def set_body(self, body: bytes, content_type: str | None) -> None:
        """Set the body, Content-Type (removed when None) and Content-Length together."""
        if content_type is None:
            self.headers.remove("Content-Type")
        else:
            self.headers.set("Content-Type", content_type)
        self.body = body

    # typed views (§20); each raises ParseError when the header is malformed
    @property
    def via(self) -> tuple[Via, ...]:
        cached = self.headers._cache.get("via", _MISSING)  # the parsed view, without a call
        if cached is _MISSING:
            cached = self.headers.typed("via", parse_via_list)
        return cached or ()

    @property
    def top_via(self) -> Via | None:
        vias = self.headers._cache.get("via", _MISSING)
        if vias is _MISSING:
            vias = self.via
        return vias[0] if vias else None

    @property
    def from_(self) -> Address | None:
        cached = self.headers._cache.get("from", _MISSING)
        if cached is _MISSING:
            return self.headers.typed("from", _first_address)
        return cached  # type: ignore[no-any-return]

    @property
    def to(self) -> Address | None:
        cached = self.headers._cache.get("to", _MISSING)
        if cached is _MISSING:
            return self.headers.typed("to", _first_address)
        return cached  # type: ignore[no-any-return]

    @property
    def call_id(self) -> str | None:
        return self.headers.typed("call-id", parse_call_id)

    @property
    def cseq(self) -> CSeq | None:
        cached = self.headers._cache.get("cseq", _MISSING)
        if cached is _MISSING:
            return self.headers.typed("cseq", parse_cseq)
        return cached  # type: ignore[no-any-return]

    @property
    def contact(self) -> tuple[Address, ...]:
        """Contact addresses; empty for none and for ``Contact: *`` (see ``contact_star``)."""
        if self.contact_star:
            return ()
        # a parsed message's view was made (and its contact-params checked) by the parser;
        # one built or changed by code is read as written (its roles check what they use)
        return self.headers.typed("contact", parse_address_list) or ()

    @property
    def contact_star(self) -> bool:
        return self.headers.get("Contact") == "*"

    @property
    def route(self) -> tuple[Address, ...]:
        return self.headers.typed("route", parse_address_list) or ()

    @property
    def record_route(self) -> tuple[Address, ...]:
        return self.headers.typed("record-route", parse_address_list) or ()

    @property
    def max_forwards(self) -> int | None:
        return self.headers.typed("max-forwards", _max_forwards)

    @property
    def content_length(self) -> int | None:
        return self.headers.typed("content-length", _content_length)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else value.partition(";")[0].strip().lower()

    # serialisation
    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._start_line()]
        lines += [f"{name}: {value}" for _, name, value in self.headers._items]
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self._body

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Message)
        return (
            self._start_line() == other._start_line()
            and self.headers == other.headers
            and self._body == other._body
        )

    __hash__ = None  # type: ignore[assignment]


_first_address = first_address  # the view that hits the headers' value cache


class Request(Message):
    """A SIP request: method, Request-URI, headers, body."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: Uri, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def _start_line(self) -> str:
        line = f"{self.method} {self.uri} SIP/2.0"
        return _line_safe(line, "request line") if "\n" in line or "\r" in line else line

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.headers.get('Call-ID')}>"

    def copy(self) -> Request:
        return Request(self.method, self.uri, self.headers.copy(), self._body)


class Response(Message):
    """A SIP response: status code, reason phrase, headers, body."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        if reason is None:
            try:  # [] on the read-only table costs less than .get
                reason = REASON_PHRASES[status]
            except KeyError:
                reason = ""
        self.reason = reason

    def _start_line(self) -> str:
        line = f"SIP/2.0 {self.status} {self.reason}"
        return _line_safe(line, "status line") if "\n" in line or "\r" in line else line

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.headers.get('Call-ID')}>"

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self._body)


# --- builders --------------------------------------------------------------------------

_COPIED_TO_RESPONSE: Final = ("via", "from", "call-id", "cseq")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, object]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request`` per §8.2.6.2: Via, From, Call-ID, CSeq copied; To gets
    ``to_tag`` unless it already has one (100 Trying never gets a tag, §8.2.6.2); for
    dialog-forming 1xx/2xx the Record-Route set is copied (§12.1.1).
    """
    out = Headers(None, request.headers._values)
    for line in request.headers._items:
        if line[0] in _COPIED_TO_RESPONSE:
            out._items.append(line)
            out._keys.append(line[0])
    to = request.headers.get("To")
    if to is not None:
        if to_tag is not None and status != 100:
            address = request.to
            if address is not None and address.tag is None:
                to = f"{to};tag={to_tag}"
        out.add("To", to)
    if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE", "REFER", "NOTIFY"):
        for value in request.headers.get_all("Record-Route"):
            out.add("Record-Route", value)
    if status == 100:
        timestamp = request.headers.get("Timestamp")
        if timestamp is not None:
            out.add("Timestamp", timestamp)  # §8.2.6.1
    if headers:
        for extra_name, extra_value in headers:
            out.add(extra_name, extra_value)
    else:  # the copied lines are the request's, verbatim: so are their parsed views
        cache, copied = out._cache, request.headers._cache
        for key in _COPIED_TO_RESPONSE:
            if key in copied:
                cache[key] = copied[key]
    response = Response(status, reason, out)
    response.set_body(body, content_type)
    return response


def make_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE (§9.1): same Request-URI, Call-ID, To, From, top Via
    and Route set; CSeq number of the INVITE with method CANCEL.
    """
    cseq = invite.cseq
    if cseq is None:
        raise LocalProtocolError("an INVITE without CSeq cannot be cancelled")
    h = Headers()
    top = invite.headers.values("Via")[0]
    h.add("Via", top)
    for name in ("Max-Forwards", "From", "To", "Call-ID"):
        value = invite.headers.get(name)
        if value is not None:
            h.add(name, value)
    h.add("CSeq", CSeq(cseq.seq, "CANCEL"))
    for value in invite.headers.get_all("Route"):
        h.add("Route", value)
    h.add("Content-Length", 0)
    return Request("CANCEL", invite.uri, h)


def make_ack(invite: Request, response: Response) -> Request:
    """ACK for a non-2xx final response, built by the client transaction (§17.1.1.3):
    Request-URI, Call-ID, From, top Via and Route of the INVITE, To of the response.
    """
    cseq = invite.cseq
    if cseq is None:
        raise LocalProtocolError("an INVITE without CSeq cannot be acknowledged")
    h = Headers()
    h.add("Via", invite.headers.values("Via")[0])
    for name in ("Max-Forwards", "From"):
        value = invite.headers.get(name)
        if value is not None:
            h.add(name, value)
    to = response.headers.get("To")
    if to is not None:
        h.add("To", to)
    call_id = invite.headers.get("Call-ID")
    if call_id is not None:
        h.add("Call-ID", call_id)
    h.add("CSeq", CSeq(cseq.seq, "ACK"))
    for value in invite.headers.get_all("Route"):
        h.add("Route", value)
    h.add("Content-Length", 0)
    return Request("ACK", invite.uri, h)
