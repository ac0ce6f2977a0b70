"""The event loop every hybridvoice process runs on: uvloop when it is installed (its
callbacks and sockets cost a fraction of the stdlib loop's, PERFORMANCE.md), else asyncio's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "new_event_loop", "run", "uvloop_available"]

T = TypeVar("T")


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def loop_factory(use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory: uvloop's when ``use_uvloop`` (default: when installed), else asyncio's."""
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    if use_uvloop:
        import uvloop  # noqa: PLC0415

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def new_event_loop(use_uvloop: bool | None = None) -> asyncio.AbstractEventLoop:
    return loop_factory(use_uvloop)()


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool | None = None) -> T:
    """``asyncio.run`` on the chosen loop (Python 3.11 has no ``loop_factory`` there)."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(main)
