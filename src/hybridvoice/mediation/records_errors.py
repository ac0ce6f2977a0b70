"""The errors of the call record store (:mod:`hybridvoice.mediation.records`)."""

from __future__ import annotations

__all__ = [
    "DuplicateCallError",
    "RecordStoreError",
    "SchemaVersionError",
    "StoreClosedError",
    "UnknownCallError",
]


class RecordStoreError(RuntimeError):
    """The call record store cannot do what was asked."""


class SchemaVersionError(RecordStoreError):
    """The database was written by a newer hybridvoice (its schema version is unknown here)."""


class UnknownCallError(RecordStoreError, KeyError):
    """No live call has that Call-ID."""


class DuplicateCallError(RecordStoreError):
    """A live call already has that Call-ID."""


class StoreClosedError(RecordStoreError):
    """The store was closed."""
