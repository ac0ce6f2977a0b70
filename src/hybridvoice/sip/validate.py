"""Request and response checks that need policy, not grammar (RFC 3261 §8.2, §16.3, §18.1.2).

``parse_message`` accepts every syntactically valid message; what a UAS or a proxy does
with it next depends on what it supports. The functions here answer that question with
the response to send (built by ``make_response``, with the headers the RFC asks for), or
``None`` when the request may go on.

UAS (``check_request``), in this order:

- a request without the mandatory To, From, Call-ID, CSeq or Via (§8.1.1), or with several
  values of a single-value header (§7.3.1, §20; RFC 4475 §3.3.8), is not a valid request:
  400 naming the header(s). Max-Forwards may be missing (RFC 2543 clients, RFC 4475 §3.4.1).
- §8.2.1 method inspection: 405 (known method) or 501 (unknown method), with Allow.
- §8.2.2.1 Request-URI scheme not supported: 416.
- §8.2.2.2 merged requests: 482, through an optional callback into the transaction layer.
- §8.2.2.3 Require with option tags we do not support: 420 with Unsupported.
- §8.2.3 content processing: 415 with Accept, Accept-Encoding or Accept-Language.
- §21.4.7 an Accept that excludes every body we would answer with: 406 (RFC 4475 §3.3.15).

A UAS ignores Max-Forwards: an endpoint processes a request with Max-Forwards 0 as if it
were positive (RFC 4475 §3.3.11). A proxy does not (``check_proxy_request``, §16.3: URI
scheme 416, Max-Forwards 483 or an OPTIONS answered per §11, loop detection 482,
Proxy-Require 420). ACK is never answered (§17.1.1.3): a non-None result for an ACK means
"drop it".

``check_response`` is the §18.1.2 check of the client transport: a response whose top Via
was not inserted by us is dropped, and so is one that would be forwarded to a broadcast
address (RFC 4475 §3.3.10).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ._abnf import param_get, parse_params
from .errors import ParseError
from .headers import Via
from .message import Request, Response, make_response

__all__ = [
    "KNOWN_METHODS",
    "SINGLE_VALUE_HEADERS",
    "UasPolicy",
    "check_proxy_request",
    "check_request",
    "check_response",
    "options_response",
]

#: Methods of RFC 3261 and its extensions (IANA "Methods and Response Codes").
KNOWN_METHODS: Final = frozenset(
    {
        "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
        "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
    }
)  # fmt: skip

#: Headers whose grammar allows exactly one value (§20), as the canonical name to report.
SINGLE_VALUE_HEADERS: Final = (
    "To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type",
    "Expires", "Min-Expires", "Date", "MIME-Version", "Timestamp", "Retry-After",
    "Organization", "Priority", "Subject", "Reply-To", "RSeq", "RAck",
)  # fmt: skip

#: §8.1.1: every request carries these (Max-Forwards too, but RFC 2543 UAs omit it).
_MANDATORY: Final = ("To", "From", "Call-ID", "CSeq", "Via")

#: Methods whose Require/Proxy-Require are ignored (§8.2.2.3, §16.3 step 5 note).
_NO_REQUIRE: Final = frozenset({"ACK", "CANCEL"})

#: Dialog-creating methods: exactly one Contact (§8.1.1.8).
_DIALOG_CREATING: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER"})

_DEFAULT_PORTS: Final[Mapping[str, int]] = MappingProxyType({"TLS": 5061, "WSS": 443, "WS": 80})


@dataclass(frozen=True, slots=True)
class UasPolicy:
    """What a UAS (or a proxy answering for itself) supports. Tuples keep header order.

    ``answer_types`` are the body types we send in answers to ``answer_methods``
    (application/sdp for INVITE): an Accept that rules all of them out gets a 406.
    """

    allowed_methods: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS")
    supported: tuple[str, ...] = ()
    accepted_types: tuple[str, ...] = ("application/sdp",)
    accepted_encodings: tuple[str, ...] = ("identity",)
    accepted_languages: tuple[str, ...] = ("en",)
    schemes: tuple[str, ...] = ("sip", "sips")
    answer_types: tuple[str, ...] = ("application/sdp",)
    answer_methods: tuple[str, ...] = ("INVITE",)


def _list_values(request: Request, name: str) -> list[str]:
    """The non-empty comma-separated values of every ``name`` line."""
    return [v for v in request.headers.values(name) if v]


#: lookup keys (lower-case canonical names, as ``Headers`` stores them) of the headers
#: :func:`_malformed` checks, with the name to report
_MANDATORY_KEYS: Final = tuple((name.lower(), name) for name in _MANDATORY)
_SINGLE_KEYS: Final = tuple((name.lower(), name) for name in SINGLE_VALUE_HEADERS)
_SINGLE: Final = frozenset(key for key, _ in _SINGLE_KEYS)


def _malformed(request: Request) -> str | None:
    """The reason phrase of a 400 when mandatory or single-value headers are wrong.

    This runs for every request a proxy or UAS takes: the mandatory ones are found by scans
    in C of the header list's keys, the single-value ones by one pass over the keys (then
    counted only when one of them is there twice)."""
    headers = request.headers
    keys = headers._keys
    missing = [name for key, name in _MANDATORY_KEYS if key not in keys]
    if missing:
        return "Missing " + ", ".join(missing)
    single = [key for key in keys if key in _SINGLE]
    repeated = []
    if len(set(single)) != len(single):
        repeated = [name for key, name in _SINGLE_KEYS if single.count(key) > 1]
    lines = keys.count("contact")
    if (
        (lines > 1 or (lines == 1 and "," in headers._items[keys.index("contact")][2]))
        and request.method in _DIALOG_CREATING  # (else one value: no need to split)
        and not request.contact_star
        and len(headers.values("Contact")) > 1
    ):
        repeated.append("Contact")
    if repeated:
        return "Multiple values in " + ", ".join(repeated)
    return None


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip(" \t").lower()


def _acceptable(media_range: str, media_type: str) -> bool:
    """Whether ``media_type`` matches one Accept value (``*/*``, ``type/*``; q=0 refuses)."""
    rng, semi, params_text = media_range.partition(";")
    if semi:
        try:
            q = param_get(parse_params(";" + params_text), "q")
        except ValueError:
            q = None
        if q is not None and q.strip("0.") == "" and q[:1] == "0":
            return False
    rng = rng.strip(" \t").lower()
    if rng in ("*/*", media_type):
        return True
    top, _, sub = rng.partition("/")
    return sub == "*" and media_type.partition("/")[0] == top


def _language_ok(tag: str, languages: tuple[str, ...]) -> bool:
    tag = tag.lower()
    return any(tag == lang or tag.startswith(lang + "-") for lang in languages)


def _check_content(request: Request, policy: UasPolicy, to_tag: str | None) -> Response | None:
    """§8.2.3: body type, encoding and language we understand; else 415."""
    if not request.body:
        return None
    headers = request.headers
    content_type = headers.get("Content-Type")
    accepted = {t.lower() for t in policy.accepted_types}
    if content_type is not None and _media_type(content_type) not in accepted:
        extra = ", ".join(policy.accepted_types)
        return make_response(request, 415, to_tag=to_tag, headers=[("Accept", extra)])
    encodings = {e.lower() for e in policy.accepted_encodings} | {"identity"}
    if any(e.lower() not in encodings for e in _list_values(request, "Content-Encoding")):
        extra = ", ".join(policy.accepted_encodings)
        return make_response(request, 415, to_tag=to_tag, headers=[("Accept-Encoding", extra)])
    languages = tuple(lang.lower() for lang in policy.accepted_languages)
    if any(not _language_ok(t, languages) for t in _list_values(request, "Content-Language")):
        extra = ", ".join(policy.accepted_languages)
        return make_response(request, 415, to_tag=to_tag, headers=[("Accept-Language", extra)])
    return None


def _check_accept(request: Request, policy: UasPolicy, to_tag: str | None) -> Response | None:
    """§21.4.7: 406 when no body type we would answer with is acceptable (§20.1)."""
    if request.method not in policy.answer_methods or "Accept" not in request.headers:
        return None
    ranges = _list_values(request, "Accept")  # an empty Accept means: no body at all
    types = [t.lower() for t in policy.answer_types]
    if any(_acceptable(r, t) for r in ranges for t in types):
        return None
    return make_response(
        request,
        406,
        to_tag=to_tag,
        headers=[
            ("Accept", ", ".join(policy.answer_types)),
            ("Warning", '399 - "No acceptable body type in the Accept header field"'),
        ],
    )


def _unsupported_list_values(request: Request, name: str, supported: tuple[str, ...]) -> list[str]:
    known = {t.lower() for t in supported}
    return [t for t in _list_values(request, name) if t.lower() not in known]


def check_request(
    request: Request,
    *,
    policy: UasPolicy,
    to_tag: str | None = None,
    is_merged: Callable[[Request], bool] | None = None,
) -> Response | None:
    """The §8.2 UAS checks, in RFC order; the error response to send, or None to go on.

    ``to_tag`` is the tag the UAS puts in the To of its responses (§8.2.6.2).
    ``is_merged(request)`` tells whether a request without To tag matches an ongoing
    transaction by From tag, Call-ID and CSeq but not by §17.2.3 (§8.2.2.2, 482).
    """
    reason = _malformed(request)
    if reason is not None:
        return make_response(request, 400, reason, to_tag=to_tag)

    # §8.2.1 method inspection
    method = request.method
    if method != "ACK" and method not in policy.allowed_methods:
        status = 405 if method in KNOWN_METHODS else 501
        allow = ", ".join(policy.allowed_methods)
        return make_response(request, status, to_tag=to_tag, headers=[("Allow", allow)])

    # §8.2.2.1 To and Request-URI: the Request-URI scheme must be one we handle
    if request.uri.scheme.lower() not in policy.schemes:
        return make_response(request, 416, to_tag=to_tag)

    # §8.2.2.2 merged requests
    to = request.to
    if is_merged is not None and to is not None and to.tag is None and is_merged(request):
        return make_response(request, 482, to_tag=to_tag)

    # §8.2.2.3 Require
    if method not in _NO_REQUIRE:
        unsupported = _unsupported_list_values(request, "Require", policy.supported)
        if unsupported:
            extra = [("Unsupported", ", ".join(unsupported))]
            return make_response(request, 420, to_tag=to_tag, headers=extra)

    # §8.2.3 content processing, then what we would send back (§21.4.7)
    response = _check_content(request, policy, to_tag)
    if response is None:
        response = _check_accept(request, policy, to_tag)
    return response


def options_response(request: Request, *, policy: UasPolicy, to_tag: str | None = None) -> Response:
    """200 to an OPTIONS we answer ourselves (§11.2): Allow, Accept, Accept-Encoding,
    Accept-Language and Supported describe what we can do."""
    headers = [
        ("Allow", ", ".join(policy.allowed_methods)),
        ("Accept", ", ".join(policy.accepted_types)),
        ("Accept-Encoding", ", ".join(policy.accepted_encodings)),
        ("Accept-Language", ", ".join(policy.accepted_languages)),
    ]
    if policy.supported:  # an empty Supported header is legal but pointless
        headers.append(("Supported", ", ".join(policy.supported)))
    return make_response(request, 200, to_tag=to_tag, headers=headers)


def check_proxy_request(
    request: Request,
    *,
    policy: UasPolicy,
    to_tag: str | None = None,
    loop_detected: Callable[[Request], bool] | None = None,
) -> Response | None:
    """The §16.3 request validation of a proxy; the response to send, or None to forward.

    Steps: reasonable syntax (mandatory headers, 400), URI scheme (416), Max-Forwards
    (483; an OPTIONS with Max-Forwards 0 is answered per §11 with ``options_response``),
    optional loop detection (``loop_detected(request)``, 482; see §16.3 step 4) and
    Proxy-Require (420 with Unsupported listing the tags not in ``policy.supported``).
    Proxy-Authorization (step 6) is the authentication module's job.
    """
    reason = _malformed(request)
    if reason is not None:
        return make_response(request, 400, reason, to_tag=to_tag)
    if request.uri.scheme.lower() not in policy.schemes:
        return make_response(request, 416, to_tag=to_tag)
    if request.max_forwards == 0:
        if request.method == "OPTIONS":
            return options_response(request, policy=policy, to_tag=to_tag)
        return make_response(request, 483, to_tag=to_tag)
    if loop_detected is not None and loop_detected(request):
        return make_response(request, 482, to_tag=to_tag)
    if request.method not in _NO_REQUIRE:
        unsupported = _unsupported_list_values(request, "Proxy-Require", policy.supported)
        if unsupported:
            extra = [("Unsupported", ", ".join(unsupported))]
            return make_response(request, 420, to_tag=to_tag, headers=extra)
    return None


def _sent_by(host: str, port: int | None, transport: str) -> tuple[str, int]:
    host = host.lower()
    if host.startswith("["):
        host = host[1:-1]
    return host, port if port is not None else _DEFAULT_PORTS.get(transport.upper(), 5060)


def _is_broadcast(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255")


def _next_hop_host(via: Via) -> str:
    """Where a response to ``via`` goes (§18.2.2): maddr, else received, else sent-by."""
    return via.maddr or via.received or via.host


def check_response(
    response: Response, *, local_sent_by: Collection[tuple[str, int | None]]
) -> bool:
    """§18.1.2: keep (True) a response only when its top Via carries one of our sent-by
    values; also drop one whose next Via would send it to a broadcast address (RFC 4475
    §3.3.10). A missing port means the transport's default (5060, 5061 for TLS).
    """
    try:
        vias = response.via
    except ParseError:
        return False
    if not vias:
        return False
    top = vias[0]
    ours = {_sent_by(h, p, top.transport) for h, p in local_sent_by}
    if _sent_by(top.host, top.port, top.transport) not in ours:
        return False
    return not any(_is_broadcast(_next_hop_host(via)) for via in vias[1:2])
