"""mgmt/traces.py: ``[Traces]`` becomes a capture buffer and a HEP sender; a HEP collector
on loopback receives what the tapped transports see; the MOS threshold reaches the call
record store."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from chain_harness import call_once, lab, settings_on_free_ports
from ua_harness import run

from hybridvoice.app import Lab
from hybridvoice.cms.settings_traces import Traces
from hybridvoice.mgmt.traces import attach_mediation, open_traces
from hybridvoice.net import trace_tap
from hybridvoice.trace.capture import Captured

sys.path.insert(0, str(Path(__file__).parent.parent / "trace"))
from hep_decode import decode


def traces(**keys: Any) -> Traces:
    return Traces.model_validate(keys)


def test_defaults_capture_without_hep() -> None:
    t = open_traces(traces())
    assert t.buffer is not None and t.hep is None
    assert t.buffer.limits.max_calls == 1000 and t.buffer.limits.max_call_bytes == 256 * 1024
    assert t.status()["capture"] is True and t.threshold == 3.6
    t.close()


def test_hep_only_sends_to_the_collector_with_its_id_and_key() -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(30)
    host, port = collector.getsockname()
    t = open_traces(traces(Capture=False, HepCollector=f"{host}:{port}", HepCaptureId=9,
                           HepPassword="k"))  # fmt: skip
    try:
        assert t.buffer is None and t.hep is not None
        data = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: abc\r\n\r\n"
        t.tap("UDP", ("127.0.0.1", 5060), ("127.0.0.1", 5062), data, True, None)
        hep = decode(collector.recv(65535))
    finally:
        t.close()
        collector.close()
    assert (hep.capture_id, hep.auth, hep.correlation, hep.payload) == (9, b"k", b"abc", data)
    assert t.messages(["abc"]) == []  # nothing kept: capture is off


def test_an_unresolvable_collector_leaves_hep_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(trace_tap.socket, "getaddrinfo", fail)  # no DNS query from a test
    t = open_traces(traces(HepCollector="homer.example:9060"))
    assert t.hep is None and t.buffer is not None
    t.close()


def test_everything_off_attaches_nothing_but_sets_the_threshold() -> None:
    class Store:
        mos_threshold = 3.6

    class Role:
        records = Store()
        edge_endpoint = gateway_endpoint = None

    role: Any = Role()
    assert attach_mediation(traces(Capture=False, MosThreshold=4.0), role) is None
    assert role.records.mos_threshold == 4.0


def test_messages_of_both_legs_in_time_order() -> None:
    t = open_traces(traces())
    a = b"INVITE sip:x SIP/2.0\r\nCall-ID: leg-a\r\n\r\n"
    b = b"INVITE sip:y SIP/2.0\r\nCall-ID: leg-b\r\n\r\n"
    t.tap("UDP", ("127.0.0.1", 1), ("127.0.0.1", 2), a, True, None)
    t.tap("UDP", ("127.0.0.1", 2), ("127.0.0.1", 3), b, True, None)
    got = t.messages(["leg-b", "leg-a"])
    assert [m.data for m in got] == [a, b] and all(isinstance(m, Captured) for m in got)
    t.close()


def test_every_transport_of_a_running_appliance_is_tapped_also_one_opened_later(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            appliance = up.appliance
            assert appliance is not None and appliance.traces is not None
            mediation, edge = appliance.mediation, appliance.edge
            assert mediation is not None and edge is not None
            endpoints = [edge.endpoint, mediation.edge_endpoint, mediation.gateway_endpoint]
            tap = appliance.traces.tap
            assert all(t.tap is tap for e in endpoints if e for t in e.transports)  # type: ignore[attr-defined]
            assert up.online is not None and up.online.endpoint is not None
            assert all(t.tap is tap for t in up.online.endpoint.transports)  # type: ignore[attr-defined]
            # a gateway of a new protocol makes the role open a transport for it at run time
            await appliance._gateway_transport("TLS")
            assert "TLS" in mediation.gateway_transports
            assert mediation.gateway_transports["TLS"].tap is tap  # type: ignore[attr-defined]

    run(main(), timeout=60)


def test_on_sockets_each_hop_between_the_roles_is_kept_once(tmp_path: Path) -> None:
    """``up --wire``: the roles talk over loopback TCP, so both ends capture every message;
    the trace keeps each once (what a capture on the wire would show)."""
    settings = settings_on_free_ports(Management={"StateDirectory": str(tmp_path / "state")})

    async def main() -> None:
        up = Lab(settings, tmp_path, lab_gateway=True, wire=True)
        await up.start()
        try:
            result = await call_once(up)
            assert result.ok and result.call_id is not None
            appliance = up.appliance
            assert appliance is not None and appliance.traces is not None
            assert appliance.mediation is not None and appliance.mediation.records is not None
            await appliance.mediation.records.aflush()
            record = appliance.mediation.records.by_call_id(result.call_id)
            assert record is not None
            messages = appliance.traces.messages([record.a_call_id, record.b_call_id])
            between_roles = [m for m in messages if m.transport == "TCP"]
            assert between_roles and all(m.outgoing for m in between_roles)
            sent = [(m.src, m.dst, m.data) for m in between_roles]
            assert len(sent) == len(set(sent))  # (no retransmissions on TCP)
            # what came from outside the process (the caller, the lab gateway) is kept too
            assert any(not m.outgoing and m.transport == "UDP" for m in messages)
        finally:
            await up.stop()

    run(main(), timeout=120)
