"""No module of the sans-IO cores (``hybridvoice.sip``, ``hybridvoice.media``,
``hybridvoice.trace``) keeps mutable state at module level (docs/dev/CONVENTIONS.md, "Core,
adapter, assembly").

Every module of both packages is imported and each of its globals is checked: a dict, list,
set, bytearray or deque, an instance of a class whose instances can change (anything but
numbers, strings, bytes, tuples and frozensets of such, ``types.MappingProxyType`` views of
such, ranges, compiled patterns, enum members, frozen dataclasses, loggers), or a function
with a cache (``functools.lru_cache``), or a method bound to any of these (``{}.get``,
``random.Random().random``) is module state: two endpoints in one process would
share it, and a test could not start from a clean slate. Constant tables are wrapped
(``MappingProxyType``, ``frozenset``, tuples); caches are objects the assembly builds and
passes in (:class:`hybridvoice.sip.value_cache.ValueCache`).
"""

from __future__ import annotations
import __future__

import dataclasses
import enum
import importlib
import logging
import pkgutil
import random
import re
import struct
import types
import typing
from collections.abc import Iterator

import pytest

import hybridvoice.media
import hybridvoice.sip
import hybridvoice.trace

_ATOMS = (
    int, float, complex, str, bytes, bool, type(None), range, re.Pattern, struct.Struct,
    enum.Enum, logging.Logger,
    typing.TypeVar, types.GenericAlias, types.UnionType, typing.ParamSpec,
    __future__._Feature,
)  # fmt: skip


def _modules() -> Iterator[types.ModuleType]:
    for package in (hybridvoice.sip, hybridvoice.media, hybridvoice.trace):
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            yield importlib.import_module(info.name)


def _immutable(value: object, depth: int = 0) -> bool:
    """Whether ``value`` (and everything it holds) cannot change."""
    if depth > 8:
        return False
    if isinstance(value, _ATOMS) or type(value) is object:  # a sentinel has no state
        return True
    if type(value).__module__ == "typing":  # special forms, aliases: names of types
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_immutable(item, depth + 1) for item in value)
    if isinstance(value, types.MappingProxyType):
        return all(_immutable(k, depth + 1) and _immutable(v, depth + 1) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = getattr(type(value), "__dataclass_params__", None)
        return bool(params and params.frozen) and all(
            _immutable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        )
    if isinstance(value, types.BuiltinFunctionType):  # ``len``, or a bound ``{}.get``
        receiver = value.__self__
        return (
            receiver is None
            or isinstance(receiver, types.ModuleType)
            or _immutable(receiver, depth + 1)
        )
    if isinstance(value, (types.FunctionType, type)):
        return True  # code, not state (cached functions are caught before)
    if isinstance(value, types.MethodType):  # a bound method of a constant: its receiver
        return _immutable(value.__self__, depth + 1)
    return False


def module_state(module: types.ModuleType) -> set[str]:
    """The names of ``module``'s globals that hold mutable state."""
    found = set()
    for name, value in vars(module).items():
        if name.startswith("__") or isinstance(value, types.ModuleType):
            continue
        cached = callable(value) and hasattr(value, "cache_info")  # functools.lru_cache
        if cached or not _immutable(value):
            found.add(name)
    return found


MODULES = sorted(_modules(), key=lambda m: m.__name__)


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_no_mutable_module_state(module: types.ModuleType) -> None:
    found = module_state(module)
    assert found == set(), (
        f"{module.__name__} keeps mutable state at module level: {sorted(found)}; "
        "wrap constant tables (MappingProxyType, frozenset, tuple) and let the assembly pass "
        "caches in"
    )


def test_the_check_sees_mutable_state() -> None:
    """The checker itself: what it must flag and what it must let through."""
    fake = types.ModuleType("fake")
    fake.TABLE = {"a": 1}  # type: ignore[attr-defined]
    fake.NAMES = ["x"]  # type: ignore[attr-defined]
    fake.FROZEN = types.MappingProxyType({"a": (1, 2)})  # type: ignore[attr-defined]
    fake.HIDDEN = types.MappingProxyType({"a": [1]})  # type: ignore[attr-defined]
    fake.KINDS = frozenset({"udp"})  # type: ignore[attr-defined]
    fake.PATTERN = re.compile("x")  # type: ignore[attr-defined]
    fake.log = logging.getLogger("fake")  # type: ignore[attr-defined]

    class Box:
        pass

    fake.BOX = Box()  # type: ignore[attr-defined]
    import functools  # noqa: PLC0415

    fake.cached = functools.lru_cache(maxsize=4)(lambda x: x)  # type: ignore[attr-defined]
    fake.size = len  # type: ignore[attr-defined]
    fake.lookup = fake.FROZEN.get  # type: ignore[attr-defined]
    fake.sneaky = {"a": 1}.get  # type: ignore[attr-defined]  # a dict behind a bound method
    fake.draw = random.Random(1).random  # type: ignore[attr-defined]
    assert module_state(fake) == {"TABLE", "NAMES", "HIDDEN", "BOX", "cached", "sneaky", "draw"}
