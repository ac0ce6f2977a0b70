"""SDES-SRTP across an anchored call: which leg gets ``a=crypto``, and the keys per leg.

RFC 4568 (SDES: §5.1.1 the offer, §5.1.2 the answer, §6.1 the attribute, §7.1.4 later
offers), RFC 3711 (SRTP), RFC 3264 §6 (the answer keeps the offer's ``m=`` proto).

The relay (:class:`~hybridvoice.net.relay.RelayCall`) ends SRTP on each leg: each leg has
its own keys, ours made here from an injected random source, the far end's read from its
SDP. What a leg is offered follows its ``MediaEncryption`` setting (the client/edge leg:
``[MediationServer] ClientMediaEncryption``; a gateway: its ``MediaEncryption``):

- ``SRTP``: ``m=audio ... RTP/SAVP`` with our ``a=crypto`` (AES_CM_128_HMAC_SHA1_80, as
  Direct Routing requires); an offer or answer from that leg without a usable ``a=crypto``
  is refused (:class:`~hybridvoice.sip.sdp.SdpError`: 488 or the call's end, with the
  reason).
- ``Optional``: ``RTP/AVP`` with our ``a=crypto`` (best-effort SRTP: a far end that knows
  SDES answers with its key, any other ignores the line and speaks RTP).
- ``RTP``: ``RTP/AVP``, no ``a=crypto``.

An offer carrying a usable ``a=crypto`` is always answered with ours (same tag and suite,
the offer's proto), whatever the setting: an ``RTP/SAVP`` offer has no plain answer, and a
best-effort one costs nothing to honour. An ``RTP/SAVP`` offer with no usable line (another
suite, an MKI, several keys) is refused with the reasons of each line.

:func:`bypass_blocked` is the check media bypass makes: SRTP end to end (the ``a=crypto``
lines pass through untouched) only when the gateway's setting accepts what the client
offers; else the call is anchored and the relay converts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from hybridvoice.media import CryptoAttribute, CryptoSuite, Leg, LegCrypto, pick_crypto
from hybridvoice.sip.sdp import Attribute, MediaDescription, SdpError, SessionDescription

__all__ = ["Encryption", "SrtpConfig", "SrtpPlan", "bypass_blocked", "offered_srtp"]

Encryption = Literal["RTP", "SRTP", "Optional"]
_SAVP: Final = "RTP/SAVP"
_AVP: Final = "RTP/AVP"
_SUITE: Final = CryptoSuite.AES_CM_128_HMAC_SHA1_80
_KEY_BYTES: Final = 30


@dataclass(frozen=True, slots=True)
class SrtpConfig:
    """The client/edge leg's setting and where keys come from (``os.urandom`` in the role)."""

    client: Encryption
    random_bytes: Callable[[int], bytes]


def _audio(sdp: SessionDescription) -> tuple[int, MediaDescription] | None:
    for index, media in enumerate(sdp.media):
        if media.media == "audio" and media.port != 0 and media.is_rtp:
            return index, media
    return None


def _crypto(media: MediaDescription) -> tuple[CryptoAttribute | None, list[str]]:
    return pick_crypto(a.value or "" for a in media.attributes_named("crypto"))


def _secure(media: MediaDescription) -> bool:
    return "SAVP" in media.proto.upper()


def offered_srtp(body: SessionDescription) -> tuple[bool, bool]:
    """(has a usable ``a=crypto``, is ``RTP/SAVP``) of the first audio stream."""
    found = _audio(body)
    if found is None:
        return False, False
    return _crypto(found[1])[0] is not None, _secure(found[1])


def bypass_blocked(offer: SessionDescription, gateway: str, setting: Encryption) -> str | None:
    """Why a client's ``offer`` cannot go to gateway ``gateway`` end to end (None: it can):
    the gateway set to ``RTP`` cannot answer ``RTP/SAVP``, one set to ``SRTP`` needs a key."""
    crypto, savp = offered_srtp(offer)
    if savp and setting == "RTP":
        return f"SRTP: the client offers RTP/SAVP, gateway {gateway} has MediaEncryption RTP"
    if not crypto and setting == "SRTP":
        return f"SRTP: gateway {gateway} requires SRTP, the client offers no a=crypto"
    return None


def _refuse(leg_name: str, what: str, reasons: list[str]) -> SdpError:
    why = "; ".join(reasons) if reasons else "no a=crypto line"
    return SdpError(f"{what} from the {leg_name} has no usable a=crypto ({why})")


@dataclass(frozen=True, slots=True)
class _Pending:
    leg: Leg  # the offerer
    crypto: CryptoAttribute | None  # its key
    proto: str  # its m= proto, for our answer
    sent: CryptoAttribute | None  # what we offered the answerer


class SrtpPlan:
    """The SDES keys of one anchored call (leg A: the client/edge side, B: the gateway)."""

    __slots__ = ("_ours", "_pending", "_random", "_savp", "keys", "settings")

    def __init__(self, config: SrtpConfig, gateway: Encryption = "RTP") -> None:
        self.settings: dict[Leg, Encryption] = {Leg.A: config.client, Leg.B: gateway}
        self._random = config.random_bytes
        self._ours: dict[Leg, bytes] = {}  # our master key||salt toward each leg
        self._pending: _Pending | None = None
        self._savp: dict[Leg, bool] = {Leg.A: False, Leg.B: False}  # the leg's last proto
        #: the keys the relay uses per leg (None: plain RTP on that leg)
        self.keys: dict[Leg, LegCrypto | None] = {Leg.A: None, Leg.B: None}

    def set_gateway(self, setting: Encryption) -> None:
        """The gateway of this attempt (failover may pick another)."""
        self.settings[Leg.B] = setting

    def _our_key(self, leg: Leg, tag: int, suite: CryptoSuite) -> CryptoAttribute:
        key = self._ours.get(leg)
        if key is None:
            key = self._ours[leg] = bytes(self._random(_KEY_BYTES))
        return CryptoAttribute(tag, suite, key)

    @staticmethod
    def _name(leg: Leg) -> str:
        return "client" if leg is Leg.A else "gateway"

    def offer(self, sdp: SessionDescription, from_leg: Leg) -> SessionDescription:
        """An offer from ``from_leg``, already anchored, as it goes to the other leg."""
        found = _audio(sdp)
        if found is None:
            return sdp
        index, media = found
        crypto, reasons = _crypto(media)
        if crypto is None and (_secure(media) or self.settings[from_leg] == "SRTP"):
            raise _refuse(self._name(from_leg), "the offer", reasons)
        self._savp[from_leg] = _secure(media)
        to = from_leg.other
        setting = self.settings[to]
        secured = self.keys[to] is not None  # a leg speaking SRTP keeps it (RFC 4568 §7.1.4)
        sent = None if setting == "RTP" and not secured else self._our_key(to, 1, _SUITE)
        savp = setting == "SRTP" or (secured and self._savp[to])
        out = dataclasses.replace(
            media.without_attributes("crypto"), proto=_SAVP if savp else _AVP, raw=None
        )
        if sent is not None:
            out = out.with_attribute(Attribute("crypto", str(sent)))
        self._pending = _Pending(from_leg, crypto, media.proto, sent)
        return sdp.with_media(index, out)

    def answer(self, sdp: SessionDescription, from_leg: Leg) -> SessionDescription:
        """An answer from ``from_leg``, already anchored, as it goes back to the offerer;
        :attr:`keys` holds both legs' keys afterwards."""
        pending = self._pending
        found = _audio(sdp)
        if pending is None or pending.leg is from_leg or found is None:
            return sdp
        index, media = found
        crypto, reasons = _crypto(media) if pending.sent is not None else (None, [])
        if crypto is None and self.settings[from_leg] == "SRTP":
            raise _refuse(self._name(from_leg), "the answer", reasons)
        sent = pending.sent
        self.keys[from_leg] = None if crypto is None or sent is None else LegCrypto(crypto, sent)
        self._savp[from_leg] = _secure(media)
        out = dataclasses.replace(media.without_attributes("crypto"), proto=pending.proto, raw=None)
        theirs = pending.crypto
        if theirs is None:
            self.keys[pending.leg] = None
        else:
            ours = self._our_key(pending.leg, theirs.tag, theirs.suite)
            out = out.with_attribute(Attribute("crypto", str(ours)))
            self.keys[pending.leg] = LegCrypto(theirs, ours)
        return sdp.with_media(index, out)
