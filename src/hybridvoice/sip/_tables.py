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

from .errors import LocalProtocolError

__all__ = ["TableKey", "frozen_table", "step"]

_K = TypeVar("_K")
_I = TypeVar("_I")
_V = TypeVar("_V")
_S = TypeVar("_S", bound="TableKey")
_T = TypeVar("_T", bound="TableKey")


class TableKey(enum.Enum):
    """The base of the enums that key the tables (states, inputs, phases): hashed by
    identity in C. ``Enum.__hash__`` is Python code (``hash(self._name_)``) run on every
    table lookup; members are singletons compared by identity, so identity hashing is
    consistent with their equality."""

    __hash__ = object.__hash__


def frozen_table(table: Mapping[_K, Mapping[_I, _V]]) -> Mapping[_K, Mapping[_I, _V]]:
    """``table`` as a read-only mapping of read-only mappings (each row copied once)."""
    return MappingProxyType({key: MappingProxyType(dict(row)) for key, row in table.items()})


def step(
    table: Mapping[_S, Mapping[_T, _S]],
    state: _S,
    trigger: _T,
    machine: str,
    error: type[LocalProtocolError] = LocalProtocolError,
) -> _S:
    """The state ``trigger`` leads to from ``state`` in ``table``; a pair the table does not
    list raises ``error`` naming the ``machine``, the trigger and the state (a mappingproxy's
    subscript is C, its ``.get()`` a method call: a hit is the rule)."""
    try:
        return table[state][trigger]
    except KeyError:
        raise error(f"{machine}: {trigger.value} in {state.value}") from None
