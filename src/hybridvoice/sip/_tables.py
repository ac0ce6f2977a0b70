"""Constant tables of the sans-IO cores, frozen once at import.

Implements no RFC section itself: the state tables that use it (``_session_*``, ``refer``)
name theirs. ``sip/`` and ``media/`` keep no mutable state at module level
(docs/dev/CONVENTIONS.md, "Core, adapter, assembly"), so a table of transitions
``state -> {input -> next state}`` is a read-only view of read-only views.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

__all__ = ["TableKey", "frozen_table"]

_K = TypeVar("_K")
_I = TypeVar("_I")
_V = TypeVar("_V")


class TableKey(enum.Enum):
    """The base of the enums that key the tables (states, inputs, phases): hashed by
    identity in C. ``Enum.__hash__`` is Python code (``hash(self._name_)``) run on every
    table lookup; members are singletons compared by identity, so identity hashing is
    consistent with their equality."""

    __hash__ = object.__hash__


def frozen_table(table: Mapping[_K, Mapping[_I, _V]]) -> Mapping[_K, Mapping[_I, _V]]:
    """``table`` as a read-only mapping of read-only mappings (each row copied once)."""
    return MappingProxyType({key: MappingProxyType(dict(row)) for key, row in table.items()})
