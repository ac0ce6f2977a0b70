"""REFER, its implicit subscription, and Replaces, sans-IO.

RFC 3515 §2.1 (Refer-To), §2.4.4-§2.4.5 (the implicit ``refer`` subscription: 202, then
NOTIFYs whose ``message/sipfrag`` bodies carry the status line of the referenced request,
the last one with ``Subscription-State: terminated``), §2.4.6 (the ``id`` parameter of
``Event: refer`` is the REFER's CSeq number); RFC 3420 §2 (``message/sipfrag``: a start line
and optional headers); RFC 3892 §3 (Referred-By); RFC 3891 §3 and §6.1 (the Replaces header:
Call-ID, ``to-tag``, ``from-tag`` and ``early-only``; the recipient matches it with its own
local tag = ``to-tag``), §6 (Replaces escaped in a Refer-To URI's headers); RFC 4488 §4
(``Refer-Sub: false``: no implicit subscription).

The call-control events a session emits for REFER (``Refer``, ``ReferResult``,
``ReferNotify``) live here and are re-exported by ``hybridvoice.sip.session``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar
from urllib.parse import quote, unquote

from ._tables import TableKey, frozen_table, step
from .dialog import Dialog, DialogId, DialogTable
from .errors import LocalProtocolError, ParseError
from .headers import Address, parse_address
from .message import Message, Request, Response
from .uri import SipUri

__all__ = [
    "NOTIFIER_TABLE",
    "SIPFRAG",
    "SUBSCRIBER_TABLE",
    "NotifierPhase",
    "Refer",
    "ReferError",
    "ReferNotify",
    "ReferResult",
    "ReferState",
    "ReferTo",
    "Replaces",
    "SubscriberPhase",
    "event_is_refer",
    "is_final_notify",
    "match_replaces",
    "notify_headers",
    "parse_refer_to",
    "parse_replaces",
    "parse_sipfrag",
    "referred_by",
    "replaces_of",
    "sipfrag",
    "wants_subscription",
]

#: RFC 3420 §2 with the version RFC 3515 §2.4.5 asks for.
SIPFRAG: Final = "message/sipfrag;version=2.0"
#: How long the implicit subscription lives unless told otherwise (RFC 3515 §2.4.5).
_EXPIRES: Final = 60
_STATUS_LINE: Final = re.compile(r"SIP/2\.0\s+([1-6]\d\d)(?:\s+(.*))?", re.IGNORECASE)
_REASONS: Final[Mapping[int, str]] = MappingProxyType({
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
    403: "Forbidden", 404: "Not Found", 408: "Request Timeout", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
    603: "Decline",
})  # fmt: skip

T = TypeVar("T")


# --- events for the application -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refer:
    """The peer asks us to send a request to ``refer_to`` (RFC 3515 §2.4.2): accept (202)
    with ``accept_refer`` then report with ``notify_refer``, or ``reject_refer``.
    ``subscription`` is False when the peer sent ``Refer-Sub: false`` (RFC 4488)."""

    refer_to: Address
    referred_by: Address | None
    replaces: Replaces | None
    subscription: bool = True


@dataclass(frozen=True, slots=True)
class ReferResult:
    """The final response to our REFER (202: accepted; the progress follows as NOTIFYs)."""

    status: int


@dataclass(frozen=True, slots=True)
class ReferNotify:
    """A NOTIFY of our REFER's subscription: the referenced request's status (sipfrag);
    ``final`` when the subscription ended with it."""

    status: int
    final: bool


# --- Replaces (RFC 3891) ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Replaces:
    """``Replaces: call-id;to-tag=..;from-tag=..[;early-only]`` (RFC 3891 §6.1). The tags
    are as seen by the sender of the INVITE: its peer's (our) tag is ``to_tag``."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"

    @property
    def dialog_id(self) -> DialogId:
        """The dialog at the recipient (§3: local tag = to-tag, remote tag = from-tag)."""
        return DialogId(self.call_id, self.to_tag, self.from_tag)

    @classmethod
    def of_dialog(cls, dialog_id: DialogId, *, early_only: bool = False) -> Replaces:
        """The Replaces naming ``dialog_id`` (ours) for an INVITE sent to our peer in it."""
        return cls(dialog_id.call_id, dialog_id.remote_tag, dialog_id.local_tag, early_only)


def parse_replaces(text: str) -> Replaces:
    """Parse a Replaces header value; ``ParseError`` (400) when a part is missing."""
    call_id, *params = (part.strip() for part in text.split(";"))
    values: dict[str, str | None] = {}
    for param in params:
        name, eq, value = param.partition("=")
        values[name.strip().lower()] = value.strip() if eq else None
    to_tag, from_tag = values.get("to-tag"), values.get("from-tag")
    if not call_id or not to_tag or not from_tag:
        raise ParseError(f"Replaces needs a Call-ID, to-tag and from-tag: {text!r}")
    return Replaces(call_id, to_tag, from_tag, "early-only" in values)


def replaces_of(request: Request) -> Replaces | None:
    """The Replaces header of an INVITE (None without one; ``ParseError`` when bad or
    repeated, RFC 3891 §3: 400)."""
    values = request.headers.values("Replaces")
    if not values:
        return None
    if len(values) > 1:
        raise ParseError("more than one Replaces header (RFC 3891 §3)")
    return parse_replaces(values[0])


def match_replaces(table: DialogTable[T], replaces: Replaces) -> T | None:
    """The entry of the dialog a Replaces names, from the recipient's side (RFC 3891 §3)."""
    return table.get(replaces.dialog_id)


# --- Refer-To and Referred-By (RFC 3515 §2.1, RFC 3892) ----------------------------------------
@dataclass(frozen=True, slots=True)
class ReferTo:
    """A Refer-To: the target (its URI without the Replaces header) and the Replaces."""

    target: Address
    replaces: Replaces | None = None

    def address(self) -> Address:
        """The header value, with the Replaces escaped into the URI's headers (§6)."""
        if self.replaces is None:
            return self.target
        uri = self.target.uri
        if not isinstance(uri, SipUri):
            raise ParseError("only a SIP URI can carry a Replaces (RFC 3891 §6)")
        escaped = quote(str(self.replaces), safe="")
        headers = (*(h for h in uri.headers if h[0].lower() != "replaces"), ("Replaces", escaped))
        return self.target._replace(uri=uri._replace(headers=headers))


def parse_refer_to(request: Request) -> ReferTo:
    """The REFER's Refer-To (exactly one, RFC 3515 §2.4.1; else ``ParseError``, 400)."""
    values = request.headers.values("Refer-To")
    if len(values) != 1:
        raise ParseError("a REFER needs exactly one Refer-To (RFC 3515 §2.4.1)")
    address = parse_address(values[0])
    uri = address.uri
    replaces = None
    if isinstance(uri, SipUri) and uri.headers:
        kept = []
        for name, value in uri.headers:
            if name.lower() == "replaces":
                replaces = parse_replaces(unquote(value))
            else:
                kept.append((name, value))
        address = address._replace(uri=uri._replace(headers=tuple(kept)))
    return ReferTo(address, replaces)


def referred_by(message: Message) -> Address | None:
    """The Referred-By (RFC 3892 §3), None without one or when it does not parse."""
    value = message.headers.get("Referred-By")
    if value is None:
        return None
    try:
        return parse_address(value)
    except ParseError:
        return None


def wants_subscription(request: Request) -> bool:
    """False when the REFER asks for no implicit subscription (RFC 4488 §4)."""
    value = request.headers.get("Refer-Sub")
    return value is None or value.strip().lower() != "false"


# --- the implicit subscription's NOTIFY (RFC 3515 §2.4.5, RFC 3420) ------------------------
def sipfrag(status: int, reason: str | None = None) -> bytes:
    """The sipfrag body of a NOTIFY: the referenced request's status line."""
    return f"SIP/2.0 {status} {reason or _REASONS.get(status, 'Unknown')}\r\n".encode()


def parse_sipfrag(body: bytes) -> int:
    """The status of a sipfrag's status line; ``ParseError`` when it has none."""
    first = body.decode("utf-8", "replace").lstrip().split("\n", 1)[0].strip()
    m = _STATUS_LINE.fullmatch(first)
    if m is None:
        raise ParseError(f"not a sipfrag status line: {first[:60]!r}")
    return int(m.group(1))


def notify_headers(refer_seq: int, final: bool) -> list[tuple[str, object]]:
    """Event and Subscription-State of a NOTIFY for the REFER with CSeq ``refer_seq``."""
    state = "terminated;reason=noresource" if final else f"active;expires={_EXPIRES}"
    return [("Event", f"refer;id={refer_seq}"), ("Subscription-State", state)]


def is_final_notify(request: Request) -> bool:
    """The NOTIFY ends the subscription (``Subscription-State: terminated``)."""
    state = request.headers.get("Subscription-State") or ""
    return state.strip().lower().startswith("terminated")


def event_is_refer(request: Request) -> bool:
    """The NOTIFY is for a refer subscription (RFC 3515 §2.4.4)."""
    event = request.headers.get("Event") or ""
    return event.split(";", 1)[0].strip().lower() == "refer"


# --- the REFER state of one dialog (used by ``InviteSession``) ----------------------------
class ReferError(LocalProtocolError):
    """The application asked for a REFER step the subscription's state does not allow."""


class NotifierPhase(TableKey):
    """The peer's REFER as we handle it (RFC 3515 §2.4.4-§2.4.5)."""

    IDLE = "idle"
    PENDING = "REFER awaiting accept/reject"
    NOTIFYING = "subscription active: we send NOTIFYs"


class SubscriberPhase(TableKey):
    """Our REFER (RFC 3515 §2.4.4-§2.4.5, RFC 4488 §4)."""

    IDLE = "idle"
    SENT = "REFER sent"
    SUBSCRIBED = "subscription active: NOTIFYs arrive"


class _E(TableKey):
    REFER = "REFER"
    ACCEPT_SUBSCRIBED = "202 with a subscription"
    DONE = "answered without a subscription, or the final NOTIFY"
    ACCEPTED_SUBSCRIBED = "2xx with a subscription"
    ABANDON = "session over"


_NP, _SP = NotifierPhase, SubscriberPhase
#: Every transition of the peer's REFER on our side (the notifier), and only these.
NOTIFIER_TABLE: Final[Mapping[NotifierPhase, Mapping[_E, NotifierPhase]]] = frozen_table({
    _NP.IDLE: {_E.REFER: _NP.PENDING, _E.ABANDON: _NP.IDLE},
    _NP.PENDING: {
        _E.ACCEPT_SUBSCRIBED: _NP.NOTIFYING, _E.DONE: _NP.IDLE, _E.ABANDON: _NP.IDLE,
    },
    _NP.NOTIFYING: {_E.DONE: _NP.IDLE, _E.ABANDON: _NP.IDLE},
})  # fmt: skip
#: Every transition of our REFER (the subscriber), and only these; a final NOTIFY may
#: overtake the REFER's 2xx (RFC 3515 §2.4.5).
SUBSCRIBER_TABLE: Final[Mapping[SubscriberPhase, Mapping[_E, SubscriberPhase]]] = frozen_table(
    {
        _SP.IDLE: {_E.REFER: _SP.SENT},
        _SP.SENT: {_E.ACCEPTED_SUBSCRIBED: _SP.SUBSCRIBED, _E.DONE: _SP.IDLE},
        _SP.SUBSCRIBED: {_E.ACCEPTED_SUBSCRIBED: _SP.SUBSCRIBED, _E.DONE: _SP.IDLE},  # a copy
    }
)


class ReferState:
    """One REFER each way at a time in a dialog: the peer's (``incoming``, then the
    subscription we notify) and ours (``outgoing``, then the NOTIFYs we receive), each a
    machine with its table (``NOTIFIER_TABLE``, ``SUBSCRIBER_TABLE``)."""

    __slots__ = ("incoming", "notifier", "notify_seq", "outgoing", "subscribed", "subscriber")

    def __init__(self) -> None:
        self.incoming: Request | None = None  # the peer's REFER, awaiting accept/reject
        self.notify_seq: int | None = None  # the CSeq of the REFER we send NOTIFYs for
        self.outgoing: Request | None = None  # our REFER, until its subscription ends
        self.subscribed = False  # our REFER's subscription is active
        self.notifier = _NP.IDLE
        self.subscriber = _SP.IDLE

    def _notifier(self, event: _E) -> None:
        self.notifier = step(NOTIFIER_TABLE, self.notifier, event, "the peer's REFER", ReferError)

    def _subscriber(self, event: _E) -> None:
        self.subscriber = step(SUBSCRIBER_TABLE, self.subscriber, event, "our REFER", ReferError)

    # --- the peer's REFER -----------------------------------------------------------------
    def receive_refer(self, dialog: Dialog, request: Request) -> Response | Refer:
        """A REFER in ``dialog``: the event for the application, or the error to answer
        (400 malformed, 491 while another REFER of the peer is pending)."""
        if self.incoming is not None or self.notify_seq is not None:
            return dialog.create_response(request, 491)
        try:
            refer_to = parse_refer_to(request)
        except ParseError as exc:
            return dialog.create_response(request, 400, str(exc)[:80])
        self._notifier(_E.REFER)
        self.incoming = request
        subscription = wants_subscription(request)
        return Refer(refer_to.target, referred_by(request), refer_to.replaces, subscription)

    def accept(self, dialog: Dialog) -> tuple[Response, Request | None]:
        """202 Accepted and the first NOTIFY (100 Trying, RFC 3515 §2.4.5); no NOTIFY when
        the peer declined the subscription (RFC 4488 §4: the 202 says ``Refer-Sub: false``)."""
        request = self._pending()
        self.incoming = None
        if not wants_subscription(request):
            self._notifier(_E.DONE)
            headers = [("Refer-Sub", "false")]
            return dialog.create_response(request, 202, headers=headers), None
        assert request.cseq is not None
        self._notifier(_E.ACCEPT_SUBSCRIBED)
        self.notify_seq = request.cseq.seq
        return dialog.create_response(request, 202), self.notify(dialog, 100)

    def reject(self, dialog: Dialog, status: int) -> Response:
        if not 300 <= status < 700:
            raise ReferError(f"{status} is not a failure status")
        request = self._pending()
        self._notifier(_E.DONE)
        self.incoming = None
        return dialog.create_response(request, status)

    def notify(self, dialog: Dialog, status: int, reason: str | None = None) -> Request:
        """A NOTIFY with the referenced request's status; a final status ends it."""
        seq = self.notify_seq
        if seq is None:
            raise ReferError("no accepted REFER subscription to notify")
        final = status >= 200
        if final:
            self._notifier(_E.DONE)
            self.notify_seq = None
        return dialog.create_request(
            "NOTIFY", headers=notify_headers(seq, final), body=sipfrag(status, reason),
            content_type=SIPFRAG,
        )  # fmt: skip

    def abandon(self, dialog: Dialog) -> tuple[Response, Request] | None:
        """The session ends: a REFER still waiting for the application gets 481."""
        self._notifier(_E.ABANDON)
        request, self.incoming = self.incoming, None
        self.notify_seq = None
        return None if request is None else (dialog.create_response(request, 481), request)

    def _pending(self) -> Request:
        if self.incoming is None:
            raise ReferError("there is no REFER to answer")
        return self.incoming

    # --- our REFER ------------------------------------------------------------------------
    def send_refer(
        self,
        dialog: Dialog,
        refer_to: ReferTo,
        *,
        referred_by: Address | None = None,
        subscription: bool = True,
        headers: Sequence[tuple[str, object]] = (),
    ) -> Request:
        if self.outgoing is not None:
            raise ReferError("a REFER of ours is still in progress")
        extra: list[tuple[str, object]] = [("Refer-To", refer_to.address())]
        if referred_by is not None:
            extra.append(("Referred-By", referred_by))
        if not subscription:
            extra.append(("Refer-Sub", "false"))
        self._subscriber(_E.REFER)
        self.outgoing = dialog.create_request("REFER", headers=[*extra, *headers])
        return self.outgoing

    def receive_response(self, response: Response) -> ReferResult | None:
        """A final response to our REFER (NOTIFY responses need nothing)."""
        out, cseq = self.outgoing, response.cseq
        if out is None or cseq is None or cseq != out.cseq or response.status < 200:
            return None
        status = response.status
        self.subscribed = (
            200 <= status < 300
            and (response.headers.get("Refer-Sub") or "").strip().lower() != "false"
        )
        self._subscriber(_E.ACCEPTED_SUBSCRIBED if self.subscribed else _E.DONE)
        if not self.subscribed:
            self.outgoing = None
        return ReferResult(status)

    def receive_notify(
        self, dialog: Dialog, request: Request
    ) -> tuple[Response, ReferNotify | None]:
        """A NOTIFY of our REFER's subscription: 200 and the progress; 481 for none
        (RFC 6665 §4.1.3), 400 for a body that is not a sipfrag status line."""
        out = self.outgoing
        if out is None or not event_is_refer(request):
            return dialog.create_response(request, 481), None
        try:
            status = parse_sipfrag(request.body)
        except ParseError as exc:
            return dialog.create_response(request, 400, str(exc)[:80]), None
        final = is_final_notify(request)
        if final:
            self._subscriber(_E.DONE)
            self.outgoing, self.subscribed = None, False
        return dialog.create_response(request, 200), ReferNotify(status, final)
