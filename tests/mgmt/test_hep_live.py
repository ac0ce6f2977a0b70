"""HEPv3 live export from a running ``hybridvoice up`` (the Lab: online service, appliance,
lab gateway): with ``[Traces] HepCollector`` naming a UDP socket on loopback, a real call's
SIP arrives there as HEPv3 packets (decoded by the tests' own decoder), every hop, each
packet correlated by its Call-ID, with the configured capture id and key."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from chain_harness import call_once, lab, settings_on_free_ports
from ua_harness import run

sys.path.insert(0, str(Path(__file__).parent.parent / "trace"))
from hep_decode import Hep, decode


def test_a_calls_sip_reaches_the_collector(tmp_path: Path) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.setblocking(False)
    host, port = collector.getsockname()
    settings = settings_on_free_ports(
        Traces={"HepCollector": f"{host}:{port}", "HepCaptureId": 77, "HepPassword": "k"}
    )
    call_ids: list[str] = []

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            result = await call_once(up)
            assert result.ok, result
            assert result.call_id is not None
            call_ids.append(result.call_id)

    try:
        run(main(), timeout=120)
        got: list[Hep] = []
        while True:  # the sender never waits: everything sent is queued on the socket now
            try:
                got.append(decode(collector.recv(65535)))
            except BlockingIOError:
                break
    finally:
        collector.close()
    call = [h for h in got if h.correlation == call_ids[0].encode()]
    first_lines = [h.payload.split(b"\r\n", 1)[0].split(b" ")[0:2] for h in call]
    methods = {line[0] if not line[0].startswith(b"SIP/") else line[1] for line in first_lines}
    assert {b"INVITE", b"ACK", b"BYE", b"200", b"180"} <= methods, methods
    assert all(h.capture_id == 77 and h.auth == b"k" and h.proto_type == 1 for h in got)
    assert all(h.payload.split(b"\r\n", 1)[0] for h in got)
    # every hop: the caller's UDP leg to the online service and the pipes between the roles
    assert {h.proto for h in call} == {17, 6}
    assert len({(h.sport, h.dport) for h in call if h.payload.startswith(b"INVITE")}) >= 3
