"""One call leg of the UA core (``ua_core``): an :class:`~hybridvoice.sip.session.InviteSession`
with what the UA keeps about it, and the application's commands.

RFC 3261 §13.2.1 / §13.3.1 (ring, answer, reject), §9.1 (cancel), §15 (bye: CANCEL, 603 or
BYE as the state requires; a Reason per RFC 3326 §2 on the BYE), §14 (re-INVITE), RFC 3311
(UPDATE), RFC 3264 (accept or reject the peer's offer), RFC 3515 / RFC 3891 (REFER, its
NOTIFYs, Replaces). Each command runs the session's method and returns the UA actions it
produced (``UaCore.drain``), so that the caller carries them out at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from .refer import ReferTo, Replaces
from .session import Role, State

if TYPE_CHECKING:
    from ._ua_actions import Authenticator, TransportLike, UaAction
    from .dialog import DialogId
    from .headers import Address
    from .session import InviteSession
    from .transaction import ServerTransaction
    from .ua_core import UaCore

__all__ = ["SETUP", "Leg"]

#: The states of a call being set up (no final response yet).
SETUP: Final = frozenset({State.CALLING, State.INCOMING, State.EARLY})


class Leg:
    """One call leg as the UA core sees it. ``owner`` is free for the adapter (its call
    object); ``transport``, ``source`` and ``destination`` are the adapter's, opaque here."""

    __slots__ = (
        "_core", "auth", "bye_headers", "cancel_asked", "deadline", "destination",
        "dialog_ids", "ended", "owner", "replaces", "server_txs", "session", "source", "transport",
    )  # fmt: skip

    def __init__(
        self,
        core: UaCore,
        session: InviteSession,
        transport: TransportLike | None,
        source: object = None,
    ) -> None:
        self._core = core
        self.session = session
        self.transport = transport  # where the INVITE came in or went out
        self.source = source  # an incoming call: where its INVITE came from
        self.owner: Any = None  # the adapter's call object, whatever its type
        #: an INVITE with Replaces (RFC 3891): the leg it replaces, matched by the core
        self.replaces: Leg | None = None
        self.destination: object = None  # UAC: the initial INVITE's next hop, if given
        self.auth: Authenticator | None = None  # UAC: answers 401/407 (§22.2)
        self.cancel_asked = False  # UAC: cancel() or bye() before the answer
        self.bye_headers: tuple[tuple[str, object], ...] = ()  # bye(headers=...): on the BYE
        self.dialog_ids: tuple[DialogId, ...] = ()  # what the dialog table holds for us
        self.server_txs: dict[int, ServerTransaction] = {}  # id(request) -> its transaction
        self.deadline: float | None = None  # the session deadline queued in the core
        self.ended = False  # CallEnded was emitted

    def __repr__(self) -> str:
        return f"<Leg {self.session.role.value} {self.call_id} {self.session.state.value}>"

    @property
    def call_id(self) -> str:
        return self.session.invite.call_id or ""

    @property
    def incoming(self) -> bool:
        return self.session.role is Role.UAS

    @property
    def disconnected(self) -> bool:
        return self.session.state is State.DISCONNECTED

    # --- the application's commands -------------------------------------------------------
    def ring(self, sdp: bytes | None = None, *, status: int = 180) -> list[UaAction]:
        """UAS: 180 Ringing, or 183 with early-media ``sdp`` (§13.3.1.1)."""
        self.session.ring(sdp, status=status)
        return self._core.drain(self)

    def answer(self, sdp: bytes | None, now: float) -> list[UaAction]:
        """UAS: 200 with ``sdp``, retransmitted until the ACK (§13.3.1.4)."""
        self.session.answer(sdp, now)
        return self._core.drain(self)

    def reject(
        self, status: int, reason: str | None = None, *, headers: Sequence[tuple[str, object]] = ()
    ) -> list[UaAction]:
        """UAS: a 3xx-6xx final response (§13.3.1.3)."""
        self.session.reject(status, reason, headers=headers)
        return self._core.drain(self)

    def cancel(self) -> list[UaAction]:
        """UAC: CANCEL the unanswered INVITE (§9.1)."""
        self.session.cancel()
        self.cancel_asked = True
        return self._core.drain(self)

    def bye(self, *, headers: Sequence[tuple[str, object]] = ()) -> list[UaAction]:
        """Hang up in any state: CANCEL, 603 or BYE as the state requires (§15); ``headers``
        go on the BYE."""
        if not self.incoming and self.session.state in SETUP:
            self.cancel_asked = True
        self.bye_headers = tuple(headers)
        self.session.bye()
        return self._core.drain(self)

    def reinvite(self, sdp: bytes | None) -> list[UaAction]:
        """A re-INVITE offering ``sdp`` (§14.1)."""
        self.session.reinvite(sdp)
        return self._core.drain(self)

    def update(self, sdp: bytes | None = None) -> list[UaAction]:
        """An UPDATE (RFC 3311), with or without an offer."""
        self.session.update(sdp)
        return self._core.drain(self)

    def accept_offer(self, sdp: bytes | None, now: float) -> list[UaAction]:
        """Answer the peer's ``Offer`` (RFC 3264 §6)."""
        self.session.accept_offer(sdp, now)
        return self._core.drain(self)

    def reject_offer(self, status: int = 488) -> list[UaAction]:
        """Refuse the peer's ``Offer``; the session goes on (§14.2)."""
        self.session.reject_offer(status)
        return self._core.drain(self)

    def refer(
        self,
        target: Address,
        *,
        replaces: Replaces | None = None,
        referred_by: Address | None = None,
        subscription: bool = True,
    ) -> list[UaAction]:
        """Ask the peer to call ``target`` (RFC 3515 §2.4.1; with ``replaces``, RFC 3891)."""
        refer_to = ReferTo(target, replaces)
        self.session.refer(refer_to, referred_by=referred_by, subscription=subscription)
        return self._core.drain(self)

    def accept_refer(self) -> list[UaAction]:
        """202 to the peer's REFER and the first NOTIFY (RFC 3515 §2.4.4)."""
        self.session.accept_refer()
        return self._core.drain(self)

    def reject_refer(self, status: int = 603) -> list[UaAction]:
        self.session.reject_refer(status)
        return self._core.drain(self)

    def notify_refer(self, status: int, reason: str | None = None) -> list[UaAction]:
        """A NOTIFY with the referenced call's status (RFC 3515 §2.4.5)."""
        self.session.notify_refer(status, reason)
        return self._core.drain(self)

    def release(self) -> None:
        """Forget this ended leg's transactions and owner: its INVITE server transaction
        points back at it (``tu_data``) and lives on for up to 64*T1 (RFC 6026), so that
        the leg and its call form no reference cycle left to the cyclic collector."""
        for tx in self.server_txs.values():
            if tx.tu_data is self:
                tx.tu_data = None
        self.server_txs.clear()
        self.owner = None
        self.replaces = None
