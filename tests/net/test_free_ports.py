"""The test helper that names free ports never names one port twice in a process: the kernel
hands a just-closed port out again, and two listeners of one settings file then clash (a CI
run failed that way: ``Online.ServiceURL`` and ``[MediationServer] TCPPort`` got one port)."""

from __future__ import annotations

from ports import free_port, free_port_pair


def test_free_ports_are_never_repeated() -> None:
    ports = [free_port() for _ in range(600)]
    assert len(set(ports)) == len(ports)


def test_a_pair_is_not_handed_out_again() -> None:
    base = free_port_pair()
    later = {free_port() for _ in range(600)}
    assert base not in later and base + 1 not in later
