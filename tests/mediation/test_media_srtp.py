"""SDES across an anchored call (mediation/media_srtp.py): what each leg is offered and
answered per MediaEncryption, the keys handed to the relay, refusals with their reasons."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.cms.settings import Gateway
from hybridvoice.media import CryptoAttribute, CryptoSuite, Leg
from hybridvoice.mediation.bypass import BypassPolicy, parse_subnets
from hybridvoice.mediation.media_plan import INBOUND_PENDING, decide_inbound, decide_outbound
from hybridvoice.mediation.media_srtp import SrtpConfig, SrtpPlan, bypass_blocked
from hybridvoice.sip.sdp import SdpError, SessionDescription

KEY = base64.b64encode(bytes(range(30))).decode()
CRYPTO = f"a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\n"


def body(proto: str = "RTP/AVP", crypto: str = "", port: int = 6000) -> SessionDescription:
    return SessionDescription.parse(
        (
            f"v=0\r\no=hv 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{crypto}"
        ).encode()
    )


def plan(client: str = "Optional", gateway: str = "RTP") -> SrtpPlan:
    return SrtpPlan(SrtpConfig(client, random.Random(5).randbytes), gateway)  # type: ignore[arg-type]


def cryptos(sdp: SessionDescription) -> list[CryptoAttribute]:
    return [CryptoAttribute.parse(a.value or "") for a in sdp.media[0].attributes_named("crypto")]


def test_srtp_client_to_rtp_gateway() -> None:
    p = plan()
    to_gw = p.offer(body("RTP/SAVP", CRYPTO), Leg.A)
    assert to_gw.media[0].proto == "RTP/AVP" and cryptos(to_gw) == []
    to_client = p.answer(body(), Leg.B)
    assert to_client.media[0].proto == "RTP/SAVP"
    (ours,) = cryptos(to_client)
    assert ours.tag == 3 and ours.suite == "AES_CM_128_HMAC_SHA1_32"  # the offer's tag/suite
    a = p.keys[Leg.A]
    assert a is not None and a.send == ours and a.recv.key == bytes(range(30))
    assert p.keys[Leg.B] is None


def test_rtp_client_to_srtp_gateway() -> None:
    p = plan(gateway="SRTP")
    to_gw = p.offer(body(), Leg.A)
    assert to_gw.media[0].proto == "RTP/SAVP"
    (ours,) = cryptos(to_gw)
    assert (ours.tag, ours.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    gw_key = base64.b64encode(bytes(30)).decode()
    to_client = p.answer(
        body("RTP/SAVP", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{gw_key}\r\n"), Leg.B
    )
    assert to_client.media[0].proto == "RTP/AVP" and cryptos(to_client) == []
    b = p.keys[Leg.B]
    assert b is not None and b.send == ours and b.recv.key == bytes(30)
    assert p.keys[Leg.A] is None


def test_optional_offers_best_effort_and_falls_back_to_rtp() -> None:
    p = plan(gateway="Optional")
    to_gw = p.offer(body(), Leg.A)
    assert to_gw.media[0].proto == "RTP/AVP" and len(cryptos(to_gw)) == 1
    p.answer(body(), Leg.B)  # the gateway ignored the key: plain RTP
    assert p.keys == {Leg.A: None, Leg.B: None}


def test_inbound_offer_to_the_client_and_a_re_offer_keeps_our_key() -> None:
    p = plan(client="SRTP")
    to_client = p.offer(body(), Leg.B)
    assert to_client.media[0].proto == "RTP/SAVP"
    (first,) = cryptos(to_client)
    again = p.offer(body(), Leg.B)
    assert cryptos(again) == [first]


def test_refusals_name_the_reason() -> None:
    with pytest.raises(SdpError, match="offer from the client has no usable a=crypto"):
        plan().offer(body("RTP/SAVP"), Leg.A)
    bad = f"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}\r\n"
    with pytest.raises(SdpError, match="AES_256_CM_HMAC_SHA1_80' is not supported"):
        plan().offer(body("RTP/SAVP", bad), Leg.A)
    with pytest.raises(SdpError, match="offer from the gateway has no usable a=crypto"):
        plan(gateway="SRTP").offer(body(), Leg.B)
    p = plan(gateway="SRTP")
    p.offer(body(), Leg.A)
    with pytest.raises(SdpError, match="answer from the gateway has no usable a=crypto"):
        p.answer(body(), Leg.B)


def test_bypass_needs_both_ends_to_agree() -> None:
    savp, best_effort, plain = body("RTP/SAVP", CRYPTO), body("RTP/AVP", CRYPTO), body()
    assert bypass_blocked(savp, "gw1", "SRTP") is None
    assert bypass_blocked(savp, "gw1", "Optional") is None
    assert "MediaEncryption RTP" in (bypass_blocked(savp, "gw1", "RTP") or "")
    assert bypass_blocked(best_effort, "gw1", "RTP") is None
    assert "requires SRTP" in (bypass_blocked(plain, "gw1", "SRTP") or "")
    assert bypass_blocked(plain, "gw1", "RTP") is None


def _gateway(setting: str, bypass: bool = True) -> Gateway:
    raw = {"Name": "gw1", "IP": "10.0.0.9", "MediaBypass": bypass, "MediaEncryption": setting}
    return Gateway.model_validate(raw)


def test_bypass_decision_anchors_when_the_ends_disagree_on_srtp() -> None:
    policy = BypassPolicy(enabled=True, internal_subnets=parse_subnets(["10.0.0.0/8"]))
    config = SrtpConfig("Optional", random.Random(1).randbytes)
    savp = bytes(body("RTP/SAVP", CRYPTO)).replace(b"127.0.0.1", b"10.0.0.5")
    plain = bytes(body()).replace(b"127.0.0.1", b"10.0.0.5")
    blocked = decide_outbound(policy, True, savp, _gateway("RTP"), "10.0.0.9", srtp=config)
    assert not blocked.bypass
    assert blocked.reason == "SRTP: the client offers RTP/SAVP, gateway gw1 has MediaEncryption RTP"
    assert decide_outbound(policy, True, savp, _gateway("SRTP"), "10.0.0.9", srtp=config).bypass
    needs = decide_outbound(policy, True, plain, _gateway("SRTP"), "10.0.0.9", srtp=config)
    assert not needs.bypass and "requires SRTP" in needs.reason
    # inbound: clients set to SRTP, the gateway offers plain RTP -> anchored from the start
    strict = SrtpConfig("SRTP", random.Random(1).randbytes)
    inbound = decide_inbound(policy, True, plain, _gateway("RTP"), srtp=strict)
    assert not inbound.bypass and inbound.reason.startswith("SRTP: clients require SRTP")
    assert decide_inbound(policy, True, plain, _gateway("RTP"), srtp=config) is INBOUND_PENDING


def test_media_encryption_setting_is_checked() -> None:
    assert _gateway("srtp").media_encryption == "SRTP"
    assert _gateway("optional").media_encryption == "Optional"
    with pytest.raises(ValueError, match="must be RTP, SRTP or Optional, got 'aes'"):
        _gateway("aes")


def test_a_leg_that_speaks_srtp_keeps_it_in_later_offers() -> None:
    """A gateway set to RTP that called in with RTP/SAVP is re-offered RTP/SAVP with our key
    (the client's re-INVITE), not plain RTP it may refuse."""
    p = plan(gateway="RTP")
    p.offer(body("RTP/SAVP", CRYPTO), Leg.B)  # the gateway's own SRTP offer
    p.answer(body(), Leg.A)
    assert p.keys[Leg.B] is not None
    again = p.offer(body(), Leg.A)  # the client re-offers (hold, resume...)
    assert again.media[0].proto == "RTP/SAVP"
    (ours,) = cryptos(again)
    assert ours.key == p.keys[Leg.B].send.key  # type: ignore[union-attr]


SETTINGS = st.sampled_from(["RTP", "SRTP", "Optional"])
KINDS = st.sampled_from(["plain", "best-effort", "savp"])


def _sdp_of(kind: str, key: CryptoAttribute) -> SessionDescription:
    if kind == "plain":
        return body()
    return body("RTP/SAVP" if kind == "savp" else "RTP/AVP", f"a=crypto:{key}\r\n")


@given(client=SETTINGS, gateway=SETTINGS, offer_kind=KINDS, answer_crypto=st.booleans(),
       from_client=st.booleans())  # fmt: skip
def test_one_offer_answer_keeps_sdp_and_relay_keys_consistent(
    client: str, gateway: str, offer_kind: str, answer_crypto: bool, from_client: bool
) -> None:
    """Whatever the settings and what each end sends: the refusals are the documented ones,
    and otherwise each leg is told a key exactly when the relay holds keys for it, the
    relay decrypts with the key that leg sent, and the answer keeps the offer's proto."""
    p = plan(client, gateway)
    offerer = Leg.A if from_client else Leg.B
    theirs = CryptoAttribute(4, CryptoSuite.AES_CM_128_HMAC_SHA1_80, bytes(range(30)))
    answerer_key = CryptoAttribute(1, CryptoSuite.AES_CM_128_HMAC_SHA1_80, bytes(30))
    offer = _sdp_of(offer_kind, theirs)
    try:
        out = p.offer(offer, offerer)
    except SdpError:
        assert offer_kind == "plain" and p.settings[offerer] == "SRTP"
        return
    sent = cryptos(out)
    assert bool(sent) == (p.settings[offerer.other] != "RTP")
    assert (out.media[0].proto == "RTP/SAVP") == (p.settings[offerer.other] == "SRTP")
    proto = "RTP/SAVP" if p.settings[offerer.other] == "SRTP" else "RTP/AVP"
    answer = body(proto, f"a=crypto:{answerer_key}\r\n" if answer_crypto else "")
    try:
        back = p.answer(answer, offerer.other)
    except SdpError:
        assert p.settings[offerer.other] == "SRTP" and not answer_crypto
        return
    assert back.media[0].proto == offer.media[0].proto
    for leg, told, key in ((offerer, cryptos(back), theirs), (offerer.other, sent, answerer_key)):
        held = p.keys[leg]
        if held is None:
            assert leg is offerer.other or not told
        else:
            assert held.recv == key and held.send in told
    assert (p.keys[offerer] is not None) == (offer_kind != "plain")
    assert (p.keys[offerer.other] is not None) == (bool(sent) and answer_crypto)
