"""The loop's exception handler (:class:`hybridvoice.net.loop.TaskFailures`): an exception no
task or callback handled is logged with the call it belongs to and counted."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from hybridvoice.net.loop import TaskFailures, call_task_name


def test_a_failing_call_task_is_logged_with_its_call_id_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> TaskFailures:
        failures = TaskFailures.install(asyncio.get_running_loop())
        assert TaskFailures.install(asyncio.get_running_loop()) is failures  # one per loop

        async def step() -> None:
            raise RuntimeError("relay step broke")

        task = asyncio.get_running_loop().create_task(step(), name=call_task_name("c1@host"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert task.done()
        del task  # never awaited: reported when collected
        gc.collect()
        await asyncio.sleep(0)
        return failures

    with caplog.at_level(logging.ERROR, logger="hybridvoice.net.loop"):
        failures = asyncio.run(main())
    assert (failures.count, failures.of_calls) == (1, 1)
    [record] = [r for r in caplog.records if r.name == "hybridvoice.net.loop"]
    assert "call c1@host" in record.getMessage()
    assert record.exc_info is not None and "relay step broke" in str(record.exc_info[1])


def test_a_failing_callback_is_counted_without_a_call(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> TaskFailures:
        failures = TaskFailures.install(asyncio.get_running_loop())

        def broken() -> None:
            raise ValueError("timer broke")

        asyncio.get_running_loop().call_soon(broken)
        await asyncio.sleep(0.01)
        return failures

    with caplog.at_level(logging.ERROR, logger="hybridvoice.net.loop"):
        failures = asyncio.run(main())
    assert (failures.count, failures.of_calls) == (1, 0)
    assert "call -" in caplog.text and "timer broke" in caplog.text
