"""Waiting for the tenant store's next change on an event loop: the store's asyncio adapter.

The long poll of the replication feed (``GET /api/changes?wait=``) waits in
:meth:`~hybridvoice.online.store.TenantStore.wait_for_change`; a write (from any thread)
wakes every waiter through its own loop. A named adapter of the import rules.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

__all__ = ["ChangeWaiters"]


class ChangeWaiters:
    """The loops and events waiting for the next write."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def take(self) -> ChangeWaiters:
        """The waiters so far, moved into a new set (the writer wakes them after its lock)."""
        taken = ChangeWaiters()
        with self._lock:
            taken._waiters, self._waiters = self._waiters, []
        return taken

    def __len__(self) -> int:
        return len(self._waiters)

    def wake(self) -> None:
        for loop, event in self._waiters:
            _wake(loop, event)

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """True once ``done()`` (at once if it already is), False when ``timeout`` seconds pass
        first; woken by :meth:`wake` to look again."""
        if done():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = asyncio.Event()
            waiter = (loop, event)
            with self._lock:
                self._waiters.append(waiter)
            try:
                if done():  # a write slipped in before we registered
                    return True
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return done()
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        return True


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(event.set)
