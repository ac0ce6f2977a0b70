"""The test helper that names free ports never names one port twice in a process: the kernel
hands a just-closed port out again, and two listeners of one settings file then clash (a CI
run failed that way: ``Online.ServiceURL`` and ``[MediationServer] TCPPort`` got one port)."""

from __future__ import annotations

import itertools
from pathlib import Path

import ports
import pytest
from ports import POOL, free_port, free_port_block, free_port_pair, worker_slice


def test_free_ports_are_never_repeated() -> None:
    ports = [free_port() for _ in range(600)]
    assert len(set(ports)) == len(ports)


def test_a_pair_is_not_handed_out_again() -> None:
    base = free_port_pair()
    later = {free_port() for _ in range(600)}
    assert base not in later and base + 1 not in later


def test_ports_come_from_below_the_kernels_ephemeral_range() -> None:
    """The kernel hands out its ephemeral ports by itself (``bind(0)``, outgoing connections):
    a port named here must not be one it can give to someone else before the test binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(POOL[0] <= free_port() <= POOL[1] < low for _ in range(50))


def test_xdist_workers_get_disjoint_slices() -> None:
    slices = [worker_slice(f"gw{n}", "4") for n in range(4)]
    assert slices[0] == (POOL[0], slices[0][1]) and slices[-1][1] <= POOL[1]
    for (_, high), (low, _) in itertools.pairwise(slices):
        assert high < low
    assert worker_slice("", "1") == POOL  # not under xdist: the whole pool
    with pytest.raises(RuntimeError, match="gw4 of 4"):
        worker_slice("gw4", "4")


def test_a_block_is_handed_out_whole() -> None:
    first = free_port_block(64)
    assert first % 2 == 0
    later = {free_port() for _ in range(600)}
    assert not later & set(range(first, first + 64))


def test_a_large_block_after_many_single_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relay range of 400 after two thousand single ports (a long run of one of 4 workers):
    what was handed out long ago must not pepper the slice so that no range fits (a CI run
    failed that way)."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    low, high = worker_slice()
    monkeypatch.setattr(ports, "_cursor", [low])  # the walk starts at the slice's start
    singles = [free_port() for _ in range(2000)]
    first = free_port_block(400)
    assert all(low <= p <= high for p in [*singles, first, first + 399])
