"""One bad message costs only its own call: any failure while the mediation role handles a
call ends that call with a final response (488 + Warning for SDP errors, RFC 3261 §20.43;
500 + Reason/Warning otherwise; BYE once answered), releases its relay ports, closes its
record with a cause and is counted; nothing escapes as an unhandled task exception."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lab_harness import WAIT, Lab, lab, run, sdp, settle

from hybridvoice.net.call import Call, CallFailedError
from hybridvoice.net.transport import Destination
from hybridvoice.sip.session import Disconnected

#: a syntactically valid INVITE body whose rtpmap has a clock rate that is not a number
BAD_OFFER = sdp(6000).replace(b"PCMU/8000", b"PCMU/abc")


async def _final(call: Call) -> Disconnected:
    """The caller's end of a refused call (the final response it got)."""
    try:
        await call.answered(WAIT)
    except CallFailedError as exc:
        return exc.disconnected
    raise AssertionError("the call was answered")


def _ports(lab_: Lab) -> int:
    relay = lab_.role.relay
    assert relay is not None
    return relay.stats().ports_available


async def _no_leak(lab_: Lab, ports: int) -> None:
    await settle(lab_)
    for _ in range(100):  # the relay call is released by a task of its own
        if _ports(lab_) == ports:
            break
        await asyncio.sleep(0.01)
    assert _ports(lab_) == ports


def _invite_from_gateway(lab_: Lab, body: bytes) -> Call:
    port = lab_.gateway_side
    return lab_.gateways[0].ua.invite(
        f"sip:0201234567@127.0.0.1:{port}", from_="<sip:0612345678@gw.example>",
        sdp=body, destination=Destination("UDP", "127.0.0.1", port),
    )  # fmt: skip


def test_bad_sdp_from_the_cloud_side_gets_488_and_leaks_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            ports = _ports(lab_)
            a = lab_.call_out(offer=BAD_OFFER)
            end = await _final(a)
            assert end.status == 488
            await _no_leak(lab_, ports)

    run(main())


def test_bad_sdp_from_a_gateway_gets_488_and_leaks_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            ports = _ports(lab_)
            a = _invite_from_gateway(lab_, BAD_OFFER)
            end = await _final(a)
            assert end.status == 488
            await _no_leak(lab_, ports)

    run(main())
