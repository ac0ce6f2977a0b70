"""A key-value store (:mod:`hybridvoice.store`) on a loop of its own thread, for the online
service's synchronous tenant store: the store's asyncio adapter for an instance on etcd.

The tenant store's API is synchronous (the admin API's handlers, the registrar and the proxy
call it on the service's loop), the store interface is asynchronous. :class:`KvBridge` runs
the backend (:class:`~hybridvoice.store.etcd_kv.EtcdStore` or
:class:`~hybridvoice.store.sqlite_kv.SqliteStore`) on a loop in a thread of its own:

- :meth:`KvBridge.call` runs one operation there and waits for its answer (a write of the
  admin API: a compare-and-swap takes milliseconds on etcd);
- :meth:`KvBridge.submit` runs one without waiting (a registration's lease and key);
- :meth:`KvBridge.spawn` keeps a task running there (the watch of the tenant's prefix);
- :meth:`KvBridge.home` hands a callable to the service's own loop, where the tenant
  store's caches are changed (a watched change is applied there, never in the bridge's
  thread, so a writer holding the store's lock while it waits for :meth:`call` cannot
  deadlock with the watch).

A named adapter of the import rules.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from hybridvoice.store.kv import KeyValueStore, StoreUnavailableError

__all__ = ["KvBridge"]

T = TypeVar("T")

_log = logging.getLogger(__name__)


class KvBridge:
    """``open_store`` is called on the bridge's loop (an etcd client belongs to the loop that
    made it); ``home`` is the loop the tenant store lives on (default: the running one)."""

    def __init__(
        self,
        open_store: Callable[[], KeyValueStore],
        *,
        home: asyncio.AbstractEventLoop | None = None,
        timeout: float = 20.0,
        hold: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "hybridvoice-store",
    ) -> None:
        self._home = home if home is not None else asyncio.get_running_loop()
        self.timeout = timeout
        #: seconds calls fail at once after the store was found unavailable
        self.hold = hold
        self._clock = clock
        self._down: tuple[float, str] | None = None  # (until, what the store said)
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._closed = False

        async def opened() -> KeyValueStore:
            return open_store()

        self.kv: KeyValueStore = self.call(opened)

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on the bridge's loop and wait for it (StoreUnavailableError when
        it takes longer than :attr:`timeout` seconds).

        After the store was found unavailable, calls fail at once with the same error for
        :attr:`hold` seconds instead of waiting again: the waiting caller is the service's
        loop, which must go on answering SIP from its caches while the cluster is away."""
        down = self._down
        if down is not None:
            left = down[0] - self._clock()
            if left > 0:
                raise StoreUnavailableError(f"{down[1]} (not asked again for {left:.0f} s)")
            self._down = None
        future = self.submit(make)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            error = StoreUnavailableError(
                f"the store did not answer within {self.timeout:g} s (is the etcd cluster "
                "reachable and does it have quorum?)"
            )
            self._down = (self._clock() + self.hold, str(error))
            raise error from None
        except StoreUnavailableError as exc:
            self._down = (self._clock() + self.hold, str(exc))
            raise

    def submit(self, make: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run ``make()`` on the bridge's loop; its future (not waited for)."""
        if self._closed:
            raise StoreUnavailableError("the store bridge is closed")

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    def spawn(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Keep ``make()`` running on the bridge's loop until :meth:`close` (a failure is
        logged)."""

        def start() -> None:
            task = self._loop.create_task(make())
            self._tasks.add(task)
            task.add_done_callback(self._ended)

        self._loop.call_soon_threadsafe(start)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("store task ended: %s", task.exception(), exc_info=task.exception())

    def home(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the tenant store's loop (from the bridge's thread)."""
        if not self._home.is_closed():
            self._home.call_soon_threadsafe(fn)

    def close(self) -> None:
        """Stop the tasks, close the backend, end the thread."""
        if self._closed:
            return

        async def shut() -> None:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.kv.close()

        with contextlib.suppress(Exception):
            self.call(shut)
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)
        if not self._thread.is_alive():
            self._loop.close()
