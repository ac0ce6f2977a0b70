"""The event loop every hybridvoice process runs on: uvloop when it is installed (its
callbacks and sockets cost a fraction of the stdlib loop's, PERFORMANCE.md), else asyncio's;
:func:`tune_gc`, which keeps the cyclic garbage collector's long pauses off it; and
:class:`TaskFailures`, its exception handler, which logs and counts every exception no task
or callback handled (by call, when the task is named after one).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "CALL_TASK_PREFIX",
    "TaskFailures",
    "call_of",
    "call_task_name",
    "log_gc_pauses",
    "loop_factory",
    "new_event_loop",
    "run",
    "tune_gc",
    "uvloop_available",
]

T = TypeVar("T")
_log = logging.getLogger("hybridvoice.net.loop")


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


def tune_gc(interval: float = 600.0, *, log: bool = False) -> asyncio.Task[None] | None:
    """Keep the cyclic collector off the hot path of a long-running SIP/media process.

    Measured at 600 calls/s: ~1.4 M live objects (transactions kept for Timers J/L/M, RFC 3261
    §17 and RFC 6026), gen-1/gen-2 passes stalling the loop 0.7-4 s (SIPp retransmits after
    0.5 s) and finding no garbage. So: startup objects frozen, only young-generation passes
    run automatically (threshold 20,000: a few ms each; young cycles are still collected)
    and a full collection runs every ``interval`` seconds. ``interval`` 0: Python's default.
    """
    if log:
        log_gc_pauses()
    if interval <= 0:
        return None
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 1_000_000_000, 1_000_000_000)

    async def collect() -> None:
        while True:
            await asyncio.sleep(interval)
            gc.collect()

    return asyncio.get_running_loop().create_task(collect(), name="gc")


def log_gc_pauses() -> None:
    """Print every collection that took more than 20 ms (benchmark diagnostics)."""
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - started[0]) * 1000
        if took > 20:
            print(f"GC gen{info['generation']} {took:.0f} ms collected={info['collected']} "
                  f"uncollectable={info['uncollectable']}", flush=True)  # fmt: skip

    gc.callbacks.append(callback)


class TaskFailures:
    """The loop's exception handler (``loop.set_exception_handler``): every exception nobody
    handled (a task's, found when the task is collected; a callback's) is logged with the call
    it belongs to and counted, for ``/metrics``. Tasks of a call are named ``call <Call-ID>``
    (:data:`CALL_TASK_PREFIX`) by the code that spawns them; that name is how the call is known.
    """

    __slots__ = ("count", "of_calls")

    def __init__(self) -> None:
        self.count = 0  # every unhandled exception
        self.of_calls = 0  # those of a task named after its call

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> TaskFailures:
        """The loop's handler, installed now unless one is there already (one per loop)."""
        handler = loop.get_exception_handler()
        found = getattr(handler, "__self__", None)
        if isinstance(found, TaskFailures):
            return found
        failures = cls()
        loop.set_exception_handler(failures.handle)
        return failures

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.count += 1
        call_id = call_of(context)
        if call_id is not None:
            self.of_calls += 1
        exc = context.get("exception")
        _log.error(
            "unhandled exception (call %s): %s",
            call_id or "-",
            context.get("message", "unhandled exception"),
            exc_info=exc if isinstance(exc, BaseException) else None,
        )


#: How a task of one call is named: ``call <Call-ID>``.
CALL_TASK_PREFIX = "call "


def call_task_name(call_id: str) -> str:
    return CALL_TASK_PREFIX + call_id


def call_of(context: dict[str, Any]) -> str | None:
    """The Call-ID of the task (or future) in an exception handler's ``context``, if named."""
    task = context.get("task") or context.get("future")
    name = task.get_name() if isinstance(task, asyncio.Task) else ""
    return name[len(CALL_TASK_PREFIX) :] if name.startswith(CALL_TASK_PREFIX) else None
