"""Sans-IO SIP (RFC 3261 and friends): grammar, URIs, headers, messages, parser, SDP,
transactions, dialogs, INVITE sessions, digest authentication and RFC 3263 selection.

Nothing here touches a socket or an event loop: bytes, timer firings and calls go in,
messages and actions come out, and the time is always passed in as ``now``.
"""

from .errors import LocalProtocolError, ParseError, SipError
from .headers import Address, CSeq, Headers, Via, parse_address
from .message import Message, Request, Response, make_ack, make_cancel, make_response
from .parser import KeepAlive, StreamParser, parse_message
from .uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri, uri_equal

__all__ = [
    "AbsoluteUri",
    "Address",
    "CSeq",
    "Headers",
    "KeepAlive",
    "LocalProtocolError",
    "Message",
    "ParseError",
    "Request",
    "Response",
    "SipError",
    "SipUri",
    "StreamParser",
    "TelUri",
    "Uri",
    "Via",
    "make_ack",
    "make_cancel",
    "make_response",
    "parse_address",
    "parse_message",
    "parse_uri",
    "uri_equal",
]
