"""The call a log line is about: context variables the adapters set around the handling of a
message, read by the log formatter (:mod:`hybridvoice.mgmt.logs`).

No RFC is implemented here; the values are Call-IDs (RFC 3261 §8.1.1.4, §20.8).

- :data:`LEG_CALL_ID`: the SIP message being handled now (one leg of a call), or its Call-ID;
  :func:`leg_call_id` reads the Call-ID. :class:`~hybridvoice.net.endpoint.Endpoint` sets it
  to the received request or response while it runs through the transaction layer and the
  TU, so that every line logged there, in any role (edge proxy, mediation B2BUA, online
  registrar and proxy), names it. The message itself is set (about 60 ns), and its Call-ID
  header looked up only when a line is logged: nothing is spent on lines never written.
- :data:`CALL`: the call's correlation id across its legs: the a-leg's Call-ID, which is also
  the key of its call record (``hybridvoice calls show`` finds a record by either leg's
  Call-ID). The mediation role sets it around every entry into a call (its bridge's guard).

Why context variables and not module state: a :class:`contextvars.ContextVar` holds one value
per execution context, not one per process. The event loop runs each callback in its own copy
of the context and each task keeps the context it was created in, so a value set around one
message is seen by exactly the code handling that message (and by the tasks it starts) and is
reset when the handling returns; two calls handled one after the other never see each other's
ids. Nothing else is kept here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from hybridvoice.sip.message import Message

__all__ = ["CALL", "LEG_CALL_ID", "call_context", "leg_call_id"]

LEG_CALL_ID: Final[ContextVar[Message | str | None]] = ContextVar(
    "hybridvoice_leg_call_id", default=None
)
CALL: Final[ContextVar[str | None]] = ContextVar("hybridvoice_call", default=None)


@contextmanager
def call_context(call: str | None) -> Iterator[None]:
    """Lines logged inside the block carry ``call`` (the correlation id of :data:`CALL`)."""
    token = CALL.set(call)
    try:
        yield
    finally:
        CALL.reset(token)


def leg_call_id() -> str | None:
    """The Call-ID of the leg being handled now (see :data:`LEG_CALL_ID`), if any."""
    leg = LEG_CALL_ID.get()
    if leg is None or isinstance(leg, str):
        return leg
    return leg.headers.get("call-id")
