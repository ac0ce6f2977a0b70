"""The one error of the sizing model (:mod:`~hybridvoice.planning.erlang`,
:mod:`~hybridvoice.planning.sizing`, :mod:`~hybridvoice.planning.appliances`)."""

from __future__ import annotations

__all__ = ["SizingError"]


class SizingError(ValueError):
    """A sizing input out of range: ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
