"""Failures injected into a call's SRTP set-up (``mediation/media_srtp.py``, the relay's
``set_crypto``): a malformed ``a=crypto`` from either side, and a libsrtp error when the
relay makes its SRTP sessions. Each ends that call cleanly (488, or 500 with a Reason), gives
the relay ports back, and writes a call record with the cause; the role takes the next call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pylibsrtp
import pytest
from lab_harness import WAIT, Lab, run, settle
from rtp_harness import media_end
from test_srtp_calls import CLIENT_KEY, srtp_sdp, with_lab

from hybridvoice.media import relay as media_relay
from hybridvoice.mediation.records_model import CallState
from hybridvoice.mediation.role import MediationRole
from hybridvoice.net.ua import CallFailedError
from hybridvoice.sip.session import Answered

BAD_CRYPTO = b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:not*base64\r\n"


def _bad(body: bytes) -> bytes:
    return body.replace(b"RTP/AVP", b"RTP/SAVP") + BAD_CRYPTO


async def _failed(call: Any) -> int | None:
    try:
        await call.answered(WAIT)
    except CallFailedError as exc:
        return exc.disconnected.status
    raise AssertionError("the call was answered")


async def _clean(lab_: Lab, role: MediationRole, call_id: str) -> str:
    """Nothing of the call is left; its record says how it ended."""
    await settle(lab_)
    relay = role.relay
    assert relay is not None
    assert not relay.calls and relay.pool.in_use == 0  # every port given back
    assert role.records is not None
    await role.records.aflush()
    record = role.records.by_call_id(call_id)
    assert record is not None and record.end_utc is not None
    assert record.state is not CallState.ACTIVE
    return str(record.cause)


def test_a_malformed_crypto_line_in_the_offer(tmp_path: Path) -> None:
    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {}, {"ClientMediaEncryption": "SRTP"})
        async with role_cm as role, media_end() as client:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=_bad(srtp_sdp(client.port, CLIENT_KEY).split(b"a=crypto")[0]))
            assert await _failed(a) == 488
            cause = await _clean(lab_, role, a.call_id)
            assert cause, cause

    run(main())


def test_a_malformed_crypto_line_in_the_gateways_answer(tmp_path: Path) -> None:
    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {"MediaEncryption": "SRTP"}, {})
        async with role_cm as role, media_end() as client:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=srtp_sdp(client.port, CLIENT_KEY))
            b = await gw.next_call()
            b.answer(_bad(srtp_sdp(client.port + 2, CLIENT_KEY).split(b"a=crypto")[0]))
            assert await _failed(a) == 488
            await b.ended(WAIT)
            cause = await _clean(lab_, role, a.call_id)
            assert "crypto" in cause or "SDP" in cause, cause

    run(main())


@pytest.mark.parametrize("side", ["inbound", "outbound"])
def test_a_libsrtp_error_setting_up_the_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    real = media_relay.SrtpStream
    broken = {"on": True}

    def failing(crypto: Any, *, outbound: bool) -> Any:
        if broken["on"] and outbound == (side == "outbound"):
            raise pylibsrtp.Error("injected: bad key")
        return real(crypto, outbound=outbound)

    monkeypatch.setattr(media_relay, "SrtpStream", failing)

    async def main() -> None:
        cloud, gw, role_cm = await with_lab(tmp_path, {}, {})
        async with role_cm as role, media_end() as client, media_end() as gateway:
            lab_ = Lab(role, cloud, [gw])
            a = lab_.call_out(offer=srtp_sdp(client.port, CLIENT_KEY))
            b = await gw.next_call()
            b.answer(srtp_sdp(gateway.port, CLIENT_KEY).split(b"a=crypto")[0].replace(
                b"RTP/SAVP", b"RTP/AVP"))  # fmt: skip
            status = await _failed(a)
            assert status is not None and status >= 500, status
            await b.ended(WAIT)
            cause = await _clean(lab_, role, a.call_id)
            assert cause, cause
            assert role.call_failures()["internal"] == 1
            broken["on"] = False  # the role goes on: the next call passes
            a2 = lab_.call_out(offer=srtp_sdp(client.port, CLIENT_KEY))
            b2 = await gw.next_call()
            b2.answer(srtp_sdp(gateway.port, CLIENT_KEY).split(b"a=crypto")[0].replace(
                b"RTP/SAVP", b"RTP/AVP"))  # fmt: skip
            assert isinstance(await a2.answered(WAIT), Answered)
            a2.bye()
            await b2.ended(WAIT)
            await settle(lab_)

    run(main())
