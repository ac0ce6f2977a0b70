"""The vocabulary of the UA core (``ua_core``): what it asks its adapter to do, and the
Protocols through which it sees the adapter's objects.

RFC 3261 §17.1 (a request goes out in a new client transaction), §13.2.2.4 / §17.1.1.3
(the ACK for a 2xx goes out statelessly), §9.1 (CANCEL of the INVITE's transaction),
§17.2 (a response in its server transaction) and RFC 6026 §7.1 (a 2xx retransmitted by
the TU outside any transaction), §8.2 / §11 (an out-of-dialog request the application may
answer itself), §13.3.1 (a new call for the application).

Every action is a slotted dataclass, read-only by contract but not frozen: several are built
for every message, and a frozen dataclass's ``__init__`` costs 3.5 times as much (one
``object.__setattr__`` call per field). Actions about one call name its :class:`Leg`
(``leg``); the adapter keeps the events of one leg in order and runs a re-entrant
command's actions after the batch in progress. Import these names from
``hybridvoice.sip.ua_core``, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .message import Request, Response
from .transaction import ServerTransaction
from .uri import Uri

if TYPE_CHECKING:
    from ._ua_leg import Leg
    from .session import CallEvent, Disconnected

__all__ = [
    "Authenticator",
    "CallEnded",
    "CancelInvite",
    "Deliver",
    "IncomingCall",
    "NewTransaction",
    "Respond",
    "RespondDirect",
    "SendAck",
    "SourceLike",
    "TransportLike",
    "UaAction",
    "Unhandled",
]


class TransportLike(Protocol):
    """What the core reads of a transport (the adapter's object): its Via transport name
    (§20.42), its sent-by (§18.1.1) and the address it advertises."""

    @property
    def kind(self) -> str: ...

    @property
    def sent_by(self) -> str: ...

    @property
    def advertised(self) -> tuple[str, int]: ...


class SourceLike(Protocol):
    """Where a request came from (the adapter's object): the core reads its transport for
    the Contact of a new call; the rest is opaque and goes back in ``RespondDirect``."""

    @property
    def transport(self) -> TransportLike: ...


class Authenticator(Protocol):
    """RFC 3261 §22.2 digest answers for the requests of one call (``DigestAuth``)."""

    def begin(self) -> None:
        """A new request: each realm may be challenged once more."""

    def answer(self, response: Response) -> bool:
        """Take a 401/407: True when the request may go again with credentials."""
        ...

    def apply(self, request: Request) -> None:
        """Put the credentials on a request about to be sent."""


@dataclass(slots=True)
class NewTransaction:
    """Send ``request`` in a new client transaction (§17.1): to ``destination`` (opaque,
    the adapter's; the initial INVITE's next hop when the application gave one), else to
    ``hop``, the first Route or the Request-URI (§8.1.2), which the adapter resolves
    (RFC 3263). ``initial`` marks the dialog-creating INVITE of a caller's call: the
    transaction a later ``CancelInvite`` refers to."""

    leg: Leg
    request: Request
    destination: object | None
    hop: Uri | None
    initial: bool = False


@dataclass(slots=True)
class SendAck:
    """Send the ACK for a 2xx statelessly (§13.2.2.4, §17.1.1.3) to ``hop``."""

    leg: Leg
    request: Request
    hop: Uri


@dataclass(slots=True)
class CancelInvite:
    """CANCEL the leg's initial INVITE client transaction (§9.1)."""

    leg: Leg


@dataclass(slots=True)
class Respond:
    """Send ``response`` in its server ``transaction`` (§17.2). ``leg`` is None for a
    request outside any call (checks, OPTIONS, 481, CANCEL of nothing)."""

    leg: Leg | None
    transaction: ServerTransaction
    response: Response


@dataclass(slots=True)
class RespondDirect:
    """Send a 2xx to an INVITE directly to ``source`` (opaque, where the INVITE came from):
    its server transaction has left the Accepted state (RFC 6026 §7.1, §13.3.1.4)."""

    leg: Leg
    source: object
    response: Response


@dataclass(slots=True)
class Deliver:
    """A call-control event of the leg, for the application's handler (in order)."""

    leg: Leg
    event: CallEvent | Disconnected


@dataclass(slots=True)
class IncomingCall:
    """A new INVITE passed the §8.2 checks (and RFC 3891 matching): offer the call to the
    application (``leg.replaces``: the leg it replaces)."""

    leg: Leg


@dataclass(slots=True)
class CallEnded:
    """The leg is disconnected and forgotten by the core (after its ``Disconnected``)."""

    leg: Leg


@dataclass(slots=True)
class Unhandled:
    """An out-of-dialog request other than INVITE/ACK passed the checks: the application may
    answer it; if it does not, the adapter sends ``UaCore.default_response(request, tag)``
    (OPTIONS 200 per §11.2, 481 for in-dialog methods, else 405/501)."""

    transaction: ServerTransaction
    request: Request
    to_tag: str
    leg: None = None


#: Everything the core asks its adapter to do.
UaAction = (
    NewTransaction
    | SendAck
    | CancelInvite
    | Respond
    | RespondDirect
    | Deliver
    | IncomingCall
    | CallEnded
    | Unhandled
)
