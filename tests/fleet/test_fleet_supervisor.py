"""The fleet supervisor: its core on a fake clock (every decision exactly), its adapter with
real child processes (started, one killed and reported, all stopped by PID; one that ignores
SIGTERM killed after the grace)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from hybridvoice.fleet.children import ChildCommand, ChildProcesses
from hybridvoice.fleet.supervisor import MOVES, Report, Signal, Supervisor, describe_exit


def test_started_children_are_reported_and_a_death_is_a_problem() -> None:
    sup = Supervisor(["ams-1", "ams-2"], grace=30)
    assert sup.started("ams-1", 101, 0.0) == [Report("ams-1", "ams-1 started (pid 101)")]
    sup.started("ams-2", 102, 0.0)
    [died] = sup.exited("ams-1", -signal.SIGKILL, 5.0)
    assert died.problem and "ams-1 (pid 101) died: killed by SIGKILL" in died.text
    assert sup.exited("ams-1", 0, 6.0) == []  # reported once
    assert [c.name for c in sup.running()] == ["ams-2"]
    assert not sup.done


def test_stop_terms_every_running_child_then_kills_after_the_grace() -> None:
    sup = Supervisor(["a", "b", "c"], grace=30)
    sup.started("a", 1, 0.0)
    sup.started("b", 2, 0.0)  # c never started
    assert sup.stop(100.0) == [Signal("a", 1, signal.SIGTERM), Signal("b", 2, signal.SIGTERM)]
    assert sup.next_deadline() == 130.0
    assert sup.exited("a", 0, 101.0) == [Report("a", "a (pid 1) stopped: exited with code 0")]
    assert sup.timer(129.999) == []
    report, kill = sup.timer(130.0)
    assert kill == Signal("b", 2, signal.SIGKILL)
    assert isinstance(report, Report) and report.problem and "within 30 s" in report.text
    assert sup.next_deadline() is None and not sup.done
    sup.exited("b", -signal.SIGKILL, 130.1)
    assert sup.done


def test_a_child_started_during_a_stop_is_stopped_too() -> None:
    sup = Supervisor(["a", "b"], grace=10)
    sup.started("a", 1, 0.0)
    sup.stop(1.0)
    assert sup.children["b"].state == "exited"  # never started: nothing to stop
    sup2 = Supervisor(["x"], grace=10)
    sup2.stopping = True
    assert sup2.started("x", 9, 2.0) == [Signal("x", 9, signal.SIGTERM)]
    assert sup2.next_deadline() == 12.0


def test_the_table_and_the_exit_descriptions() -> None:
    assert MOVES[("running", "stop")] == "stopping"
    assert ("exited", "started") not in MOVES
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-15) == "killed by SIGTERM"
    with pytest.raises(ValueError, match="grace must be > 0"):
        Supervisor([], grace=0)


SLEEPER = "import time\nwhile True: time.sleep(1)"
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\nwhile True: time.sleep(1)"  # noqa: E501


def test_children_are_started_watched_and_stopped_by_pid(tmp_path: Path) -> None:
    reports: list[Report] = []

    async def main() -> None:
        commands = {
            name: ChildCommand([sys.executable, "-c", code], tmp_path / f"{name}.log",
                               {"HV_CHILD": name})
            for name, code in (("one", SLEEPER), ("two", SLEEPER), ("stubborn", STUBBORN))
        }  # fmt: skip
        children = ChildProcesses(commands, reports.append, grace=3.0)
        await children.start()
        pids = {name: children.pid(name) for name in commands}
        assert all(pids.values())
        for _ in range(200):  # the stubborn one has set its SIGTERM handler
            if "up" in (tmp_path / "stubborn.log").read_text():
                break
            await asyncio.sleep(0.05)
        pid_one = pids["one"]
        assert pid_one is not None
        os.kill(pid_one, signal.SIGKILL)
        for _ in range(200):
            if children.supervisor.children["one"].state == "exited":
                break
            await asyncio.sleep(0.05)
        assert sorted(children.alive()) == ["stubborn", "two"]
        await children.stop()
        assert children.supervisor.done
        for name in commands:
            process = children.processes[name]
            assert process.returncode is not None
        assert children.processes["two"].returncode == -signal.SIGTERM
        assert children.processes["stubborn"].returncode == -signal.SIGKILL

    asyncio.run(main())
    texts = [r.text for r in reports]
    assert any("one (pid" in t and "died: killed by SIGKILL" in t for t in texts), texts
    assert any("stubborn" in t and "did not stop within 3 s: SIGKILL" in t for t in texts), texts
    assert any("two (pid" in t and "stopped: killed by SIGTERM" in t for t in texts), texts
