"""SIP dialogs (RFC 3261 §12), sans-IO.

A ``Dialog`` holds the state of §12.1: the dialog ID, the local and remote sequence
numbers, the local and remote URIs with their tags, the remote target and the route
set. It is created by the UAC from a 1xx-with-tag or 2xx response (§12.1.2) and by the
UAS from the request and the To tag it chose (§12.1.1). It builds in-dialog requests
(§12.2.1.1, including the strict-routing fallback), the ACK for a 2xx (§13.2.2.4) and
in-dialog responses, and checks received requests against the remote sequence number
(§12.2.2). Target refresh follows RFC 6141 §4: for INVITE and UPDATE the remote target
changes when the 2xx is sent or received, not when the request arrives.

``create_request`` and ``create_ack`` leave Via out: the endpoint (or the transaction
layer) adds the top Via with a fresh branch, as for any request it sends (§8.1.1.7).

A ``DialogTable`` indexes anything (dialogs, sessions) by ``DialogId``; it finds the
entry for a received request (local tag = To tag) or a response (local tag = From tag),
and every entry of a dialog set (same Call-ID and local tag: the forks of one INVITE).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from ._tables import TableKey
from .errors import SipError
from .headers import Address, CSeq, Headers
from .message import Message, Request, Response, make_response
from .uri import SipUri, Uri

if TYPE_CHECKING:
    from .value_cache import ValueCache

__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogState",
    "DialogTable",
    "ack_credentials",
]

#: Requests that refresh the remote target (§12.2, RFC 3311 §5, RFC 6665, RFC 3515).
TARGET_REFRESH_METHODS: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
#: Target refreshes committed by the 2xx rather than by the request (RFC 6141 §4).
_REFRESHED_ON_2XX: Final = frozenset({"INVITE", "UPDATE"})
#: Headers of the INVITE an ACK for its 2xx repeats (§13.2.2.4, §22.1).
_ACK_CREDENTIALS: Final = ("Authorization", "Proxy-Authorization")
#: Max-Forwards of requests we originate (§8.1.1.6).
MAX_FORWARDS: Final = 70


class DialogError(SipError):
    """A message cannot create or belong to a dialog (missing tag, Call-ID, CSeq...)."""


class DialogState(TableKey):
    """§12: a dialog is early (1xx) or confirmed (2xx); terminated is our end marker."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID, local tag and remote tag (§12). An absent remote tag is ``""`` (§12.1.2)."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_received_request(cls, request: Request) -> DialogId | None:
        """The ID of the dialog a received request belongs to: the To tag is ours
        (§12.2.2). None outside a dialog (no To tag) or when a header is missing."""
        to, from_, call_id = request.to, request.from_, request.call_id
        if to is None or to.tag is None or from_ is None or call_id is None:
            return None
        return cls(call_id, to.tag, from_.tag or "")

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The ID of the dialog a response belongs to: the From tag is ours (§12.1.2)."""
        to, from_, call_id = response.to, response.from_, response.call_id
        if from_ is None or from_.tag is None or call_id is None or to is None:
            return None
        return cls(call_id, from_.tag, to.tag or "")


def _required(message: Message) -> tuple[Address, Address, str, CSeq]:
    from_, to, call_id, cseq = message.from_, message.to, message.call_id, message.cseq
    if from_ is None or to is None or call_id is None or cseq is None:
        raise DialogError("From, To, Call-ID and CSeq are needed to form a dialog")
    if from_.tag is None:
        raise DialogError("a dialog needs a From tag (§8.1.1.3)")
    return from_, to, call_id, cseq


def _request_uri(uri: Uri) -> Uri:
    """A route URI made fit for a Request-URI: no headers, no method (§19.1.1 table)."""
    if isinstance(uri, SipUri):
        bare = uri.without_param("method")
        return SipUri(
            host=bare.host,
            user=bare.user,
            password=bare.password,
            port=bare.port,
            params=bare.params,
            scheme=bare.scheme,
        )
    return uri


class Dialog:
    """One dialog's state (§12.1) and the requests and responses built from it."""

    __slots__ = (
        "id",
        "invite_seq",
        "local_address",
        "local_contact",
        "local_seq",
        "remote_address",
        "remote_seq",
        "remote_target",
        "route_set",
        "secure",
        "state",
        "values",
    )

    def __init__(
        self,
        *,
        dialog_id: DialogId,
        state: DialogState,
        local_address: Address,
        remote_address: Address,
        local_contact: Address,
        remote_target: Uri,
        route_set: tuple[Address, ...] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        secure: bool = False,
        values: ValueCache | None = None,
    ) -> None:
        self.id = dialog_id
        self.state = state
        #: From (with our tag) and To (with the peer's tag) of our requests (§12.2.1.1)
        self.local_address = local_address
        self.remote_address = remote_address
        self.local_contact = local_contact
        self.remote_target = remote_target
        self.route_set = route_set
        #: None is the RFC's "empty" (§12.1.1)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        #: CSeq number of the last INVITE we sent: ACK and CANCEL reuse it (§13.2.2.4, §9.1)
        self.invite_seq: int | None = None
        #: the parsed-value cache of the messages that made the dialog (the transport's):
        #: the requests built here carry it, so their typed views hit it too
        self.values = values

    def __repr__(self) -> str:
        return f"<Dialog {self.state.value} {self.id}>"

    # --- creation (§12.1) ---------------------------------------------------------------
    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The UAC's dialog from a 1xx with a To tag or a 2xx to ``request`` (§12.1.2):
        route set = the response's Record-Route reversed, remote target = its Contact."""
        from_, _, call_id, cseq = _required(request)
        to = response.to
        if to is None or response.status < 101 or response.status >= 300:
            raise DialogError(f"a {response.status} response does not create a dialog")
        if to.tag is None and response.status < 200:
            raise DialogError("a provisional response without To tag creates no dialog")
        contacts = response.contact
        local_contact = request.contact
        if not local_contact:
            raise DialogError("a dialog-creating request needs a Contact (§8.1.1.8)")
        assert from_.tag is not None
        dialog = cls(
            dialog_id=DialogId(call_id, from_.tag, to.tag or ""),
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            local_address=from_,
            remote_address=to,
            local_contact=local_contact[0],
            # a Contact is mandatory in 2xx (§13.3.1.4); be lenient with 18x without one
            remote_target=contacts[0].uri if contacts else request.uri,
            route_set=tuple(reversed(response.record_route)),
            local_seq=cseq.seq,
            secure=_is_sips(request.uri),
            values=response.headers.value_cache or request.headers.value_cache,
        )
        if request.method == "INVITE":
            dialog.invite_seq = cseq.seq
        return dialog

    @classmethod
    def from_uas(cls, request: Request, response_to_tag: str, local_contact: Address) -> Dialog:
        """The UAS's dialog for ``request`` answered with To tag ``response_to_tag``
        (§12.1.1): route set = Record-Route in order, remote target = Contact. The dialog
        is early; ``create_response`` confirms it when it builds the 2xx."""
        from_, to, call_id, cseq = _required(request)
        contacts = request.contact
        if not contacts:
            raise DialogError("a dialog-creating request needs a Contact (§8.1.1.8)")
        return cls(
            dialog_id=DialogId(call_id, response_to_tag, from_.tag or ""),
            state=DialogState.EARLY,
            local_address=to.with_tag(response_to_tag),
            remote_address=from_,
            local_contact=local_contact,
            remote_target=contacts[0].uri,
            route_set=request.record_route,
            remote_seq=cseq.seq,
            secure=_is_sips(request.uri),
            values=request.headers.value_cache,
        )

    @property
    def local_uri(self) -> Uri:
        return self.local_address.uri

    @property
    def remote_uri(self) -> Uri:
        return self.remote_address.uri

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # --- requests we send (§12.2.1.1) ---------------------------------------------------
    def create_request(
        self,
        method: str,
        *,
        headers: Sequence[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request within this dialog (§12.2.1.1), without Via (the endpoint adds it).

        The CSeq number is the local sequence number plus one, except for ACK and CANCEL
        which reuse the number of the last INVITE (§13.2.2.4, §9.1). Target refresh
        requests carry our Contact.
        """
        if self.state is DialogState.TERMINATED:
            raise DialogError("the dialog is terminated")
        if method in ("ACK", "CANCEL"):
            if self.invite_seq is None:
                raise DialogError(f"no INVITE to {method} in this dialog")
            seq = self.invite_seq
        else:
            seq = 1 if self.local_seq is None else self.local_seq + 1
            self.local_seq = seq
            if method == "INVITE":
                self.invite_seq = seq
        request = self._build(method, seq, headers)
        if method in TARGET_REFRESH_METHODS:
            request.headers.add("Contact", self.local_contact)
        request.set_body(body, content_type)
        return request

    def create_ack(
        self,
        invite_cseq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Sequence[tuple[str, object]] = (),
    ) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_cseq`` (§13.2.2.4): built as
        any in-dialog request but with the INVITE's CSeq number. Pass the INVITE's
        credentials in ``headers`` (``ack_credentials``)."""
        request = self._build("ACK", invite_cseq, headers)
        request.set_body(body, content_type)
        return request

    def _build(self, method: str, seq: int, extra: Sequence[tuple[str, object]]) -> Request:
        uri, routes = self._target_and_routes()
        h = Headers(None, self.values)
        for route in routes:
            h.add("Route", route)
        h.add("Max-Forwards", MAX_FORWARDS)
        h.add("From", self.local_address)
        h.add("To", self.remote_address)
        h.add("Call-ID", self.id.call_id)
        h.add("CSeq", CSeq(seq, method))
        for name, value in extra:
            h.add(name, value)
        return Request(method, uri, h)

    def _target_and_routes(self) -> tuple[Uri, list[Address]]:
        """Request-URI and Route set of §12.2.1.1: loose routing when the first route
        has ``;lr``, otherwise the strict-router fallback (first route in the Request-URI,
        remote target appended as the last Route)."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and first.uri.lr:
            return self.remote_target, list(self.route_set)
        return _request_uri(first.uri), [*self.route_set[1:], Address(self.remote_target)]

    # --- responses we send (§12.1.1, RFC 6141 §4) ----------------------------------------
    def create_response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, object]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """A response to ``request`` (received in, or creating, this dialog) with our To
        tag and, for 1xx/2xx to target refresh requests, our Contact (§12.1.1). A 2xx to
        the initial INVITE confirms the dialog; a 2xx to INVITE/UPDATE commits the target
        refresh (RFC 6141 §4)."""
        response = make_response(
            request,
            status,
            reason,
            to_tag=self.id.local_tag,
            headers=list(headers),
            body=body,
            content_type=content_type,
        )
        if 100 < status < 300 and request.method in TARGET_REFRESH_METHODS:
            response.headers.add("Contact", self.local_contact)
        if 200 <= status < 300 and request.method in _REFRESHED_ON_2XX:
            self._refresh_target(request)
            if request.method == "INVITE" and self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
        return response

    # --- what we receive ------------------------------------------------------------------
    def receive_request(self, request: Request) -> Response | None:
        """Check a request received in this dialog (§12.2.2). Returns the error response
        to send (500 for an out-of-order CSeq, 400 without CSeq) or None when accepted.

        ACK and CANCEL reuse the INVITE's number and are not ordered against it.
        """
        cseq = request.cseq
        if cseq is None:
            return make_response(request, 400, "Missing CSeq")
        if request.method in ("ACK", "CANCEL"):
            return None
        if self.remote_seq is not None and cseq.seq < self.remote_seq:
            return make_response(request, 500, "CSeq Out of Order")
        self.remote_seq = cseq.seq
        if request.method in TARGET_REFRESH_METHODS - _REFRESHED_ON_2XX:
            self._refresh_target(request)
        return None

    def receive_response(self, response: Response) -> None:
        """Update the dialog from a response to a request we sent in it (§12.2.1.2,
        §13.2.2.4): a 2xx to INVITE/UPDATE refreshes the remote target; a 2xx confirms an
        early dialog and recomputes its route set; a 1xx of an early dialog may move its
        target; 481 and 408 terminate the dialog, as does a failed initial INVITE (§12.3).
        """
        cseq = response.cseq
        status = response.status
        method = "" if cseq is None else cseq.method
        early_invite = method == "INVITE" and self.state is DialogState.EARLY
        if status in (408, 481) or (status >= 300 and early_invite):
            self.terminate()
            return
        if status < 300 and (early_invite or (status >= 200 and method in _REFRESHED_ON_2XX)):
            self._refresh_target(response)
        if early_invite and 200 <= status < 300:
            self.state = DialogState.CONFIRMED
            self.route_set = tuple(reversed(response.record_route))

    def _refresh_target(self, message: Message) -> None:
        contacts = message.contact
        if contacts:
            self.remote_target = contacts[0].uri


def _is_sips(uri: Uri) -> bool:
    # §12.1.1/§12.1.2 also ask for TLS; the transport is not known here, a sips:
    # Request-URI implies it (§26.2.2)
    return isinstance(uri, SipUri) and uri.secure


def ack_credentials(invite: Request) -> list[tuple[str, object]]:
    """The INVITE's credentials, which the ACK for its 2xx repeats (§13.2.2.4, §22.1)."""
    return [(name, value) for name in _ACK_CREDENTIALS for value in invite.headers.get_all(name)]


# --- the table ------------------------------------------------------------------------------

T = TypeVar("T")


class DialogTable(Generic[T]):
    """Entries (dialogs, sessions...) keyed by ``DialogId``, grouped by dialog set."""

    __slots__ = ("_sets",)

    def __init__(self) -> None:
        # (call_id, local_tag) -> remote_tag -> entry
        self._sets: dict[tuple[str, str], dict[str, T]] = {}

    def __len__(self) -> int:
        return sum(len(forks) for forks in self._sets.values())

    def __contains__(self, dialog_id: object) -> bool:
        return isinstance(dialog_id, DialogId) and self.get(dialog_id) is not None

    def __iter__(self) -> Iterator[DialogId]:
        for (call_id, local_tag), forks in list(self._sets.items()):
            for remote_tag in list(forks):
                yield DialogId(call_id, local_tag, remote_tag)

    def add(self, dialog_id: DialogId, entry: T) -> None:
        """Add or replace the entry of ``dialog_id``."""
        key = (dialog_id.call_id, dialog_id.local_tag)
        self._sets.setdefault(key, {})[dialog_id.remote_tag] = entry

    def get(self, dialog_id: DialogId) -> T | None:
        forks = self._sets.get((dialog_id.call_id, dialog_id.local_tag))
        return None if forks is None else forks.get(dialog_id.remote_tag)

    def remove(self, dialog_id: DialogId) -> T | None:
        """Remove and return the entry of ``dialog_id`` (None if there was none)."""
        key = (dialog_id.call_id, dialog_id.local_tag)
        forks = self._sets.get(key)
        if forks is None:
            return None
        entry = forks.pop(dialog_id.remote_tag, None)
        if not forks:
            del self._sets[key]
        return entry

    def match_request(self, request: Request) -> T | None:
        """The entry of the dialog a received request belongs to (§12.2.2)."""
        dialog_id = DialogId.of_received_request(request)
        return None if dialog_id is None else self.get(dialog_id)

    def match_response(self, response: Response) -> T | None:
        """The entry of the dialog a response belongs to (§12.2.1.2)."""
        dialog_id = DialogId.of_response(response)
        return None if dialog_id is None else self.get(dialog_id)

    def dialog_set(self, call_id: str, local_tag: str) -> dict[str, T]:
        """Every entry sharing Call-ID and local tag (the forks of one INVITE, §12.1.2),
        by remote tag: where a 2xx from a new fork belongs (§13.2.2.4)."""
        return dict(self._sets.get((call_id, local_tag), {}))
