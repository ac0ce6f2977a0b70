"""The media of one anchored call: SDP across the relay, G.711 transcoding, kept counters.

RFC 3264 §5/§6 (offer/answer), §8 (a new offer on either leg), RFC 3551 §4.5.14 and §6
(PCMU = payload type 0, PCMA = 8), RFC 4733 §2.3 (telephone-event rides along untouched) and
RFC 3550 §6.4 (the relay's loss and jitter, kept after the call for status pages).

:class:`MediaPlan` sits between the B2BUA's bridge and its
:class:`~hybridvoice.net.relay.RelayCall`. Every SDP crossing the call goes through
:meth:`MediaPlan.offer` or :meth:`MediaPlan.answer`, which rewrite it to the relay's side of
the other leg (:func:`.media_sdp.anchor`) and:

- offer: when the offer's audio stream speaks exactly one G.711 law with its static payload
  type (0 or 8), the other law is added right after it (static type, its ``a=rtpmap``), so a
  far end that only speaks the other law can still answer. The offerer's own codecs keep
  their order and come first: a far end that shares a codec picks it, and nothing is
  transcoded.
- answer: when the answer's first voice codec is the law we added (the offerer never offered
  it), the relay transcodes: :meth:`RelayCall.set_codecs` with the offerer's law on its leg
  and the answerer's on the other, and the offerer gets an answer naming its own law (same
  payload type as its offer). Otherwise the added law is dropped from the answer (it was
  never the offerer's) and the relay passes through. telephone-event (and CN) payload types
  are not touched: the relay's transcoder converts only packets of the law's payload type.
  While it transcodes, the call record's media reason says so (:data:`TRANSCODING_NOTE`).

The same holds for every later offer (re-INVITE, UPDATE) from either leg, so a hold/resume or
a gateway's re-offer keeps or drops transcoding as its answer says.

Inbound calls and bypass. The client's media address, which :func:`~.bypass.decide_bypass`
needs, is known only from its answer, after the gateway's offer has gone on. The rule:

- bypass impossible (no relay engine aside), that is tenant bypass off or the gateway's
  ``MediaBypass`` off (:func:`decide_inbound`): anchored from the start, as outbound;
- otherwise (:data:`INBOUND_PENDING`) the gateway's offer goes to the edge side *unchanged*
  and a relay call is held ready (so the answer path never waits for ports). The client's
  first answer (18x or 2xx) decides (:func:`decide_late`, the gateway's address being the one
  its offer named): bypass, the answer passes through and the relay call is released; anchored
  (an external client, a client outside the internal subnets, AlwaysBypass off and another
  subnet), the gateway is answered the relay's gateway side, and once the edge leg is
  confirmed it gets a re-INVITE offering the relay's edge side (the gateway's offer anchored,
  ``sess-version`` + 1 on that leg from then on, RFC 3264 §8; :func:`.call_flow.reoffer`,
  on the leg's answer itself: its ACK is out by then). Until that
  re-INVITE is answered the client may still send to the gateway directly: a short clip at
  the start of such calls, the price of deciding without ICE. A hint from the cloud side
  before the offer is not available inbound: the cloud forks to the user's clients only
  after our offer.

Bypass fallback (outbound). A bypassed offer goes to the gateway as the client wrote it, so
a PCMU-only client and a PCMA-only gateway share no codec and only the relay can join them.
When the gateway refuses the bypassed offer with 488 (:func:`fallback_on_reject`) the same
gateway gets a new INVITE, anchored (the relay's address, both G.711 laws offered), as the same
routing attempt; when it answers 2xx with no codec of the client's offer
(:func:`fallback_on_answer`) the client is answered anchored (the relay's address, its own
law; the relay transcodes) and the gateway leg gets a re-INVITE to the relay (sess-version + 1
on that leg, RFC 3264 §8). Either way the decision becomes anchored with the reason
:data:`CODEC_MISMATCH` (plus the transcoding note). Not done: a 488 after early media was
passed to the client, and inbound calls (the client answers the gateway's offer: no mismatch
to repair but the client's own refusal).

SRTP (:mod:`.media_srtp`): with an :class:`~.media_srtp.SrtpConfig` (the role always has
one) each offer and answer also gets its ``a=crypto`` lines and proto per leg, and the relay
call the keys of both legs (:meth:`RelayCall.set_crypto`) after every answer. A bypass
candidate whose two ends cannot agree on SRTP (:func:`.media_srtp.bypass_blocked`) is
anchored, the relay converting.

:class:`RecentMedia` keeps the relay's :class:`~hybridvoice.media.CallStats` of the last
calls, by the a-leg's Call-ID, after their relay ports are released.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hybridvoice.cms.settings import Gateway
from hybridvoice.media import PT_PCMA, PT_PCMU, CallStats, Leg
from hybridvoice.net.relay import RelayCall
from hybridvoice.sip.sdp import Attribute, MediaDescription, SessionDescription

from .bypass import (
    BypassDecision,
    BypassPolicy,
    GatewayMedia,
    MediaMode,
    client_media_from_sdp,
    decide_bypass,
)
from .media_sdp import anchor, parse_sdp
from .media_srtp import SrtpConfig, SrtpPlan, bypass_blocked, offered_srtp
from .routing import Attempt, OutboundCall

if TYPE_CHECKING:
    from hybridvoice.net.call import Call

    from .b2bua import B2BUA
    from .trunks import GatewayState

__all__ = [
    "ANCHORED_ON_MISMATCH",
    "CODEC_MISMATCH",
    "G711_PT",
    "INBOUND_PENDING",
    "REOFFER_RETRY",
    "TRANSCODING_NOTE",
    "MediaPlan",
    "RecentMedia",
    "add_other_law",
    "answer_in_law",
    "decide_at_start",
    "decide_inbound",
    "decide_late",
    "decide_on_answer",
    "decide_outbound",
    "fallback_on_answer",
    "fallback_on_reject",
    "shares_codec",
]

_log = logging.getLogger("hybridvoice.mediation.media_plan")

#: Static payload types of the two G.711 laws (RFC 3551 §6) and the rtpmap each needs.
G711_PT: Final = {"PCMU": str(PT_PCMU), "PCMA": str(PT_PCMA)}
_OTHER: Final = {"PCMU": "PCMA", "PCMA": "PCMU"}
_AUXILIARY: Final = frozenset({"TELEPHONE-EVENT", "CN"})


def _audio(sdp: SessionDescription) -> tuple[int, MediaDescription] | None:
    """The first active RTP audio stream (the one the relay carries)."""
    for index, media in enumerate(sdp.media):
        if media.media == "audio" and media.port != 0 and media.is_rtp:
            return index, media
    return None


def _law(media: MediaDescription, *, first_voice: bool) -> str | None:
    """The G.711 law (``PCMU``/``PCMA``) the stream speaks with its static payload type.

    ``first_voice``: only when the first voice codec is one (what an answerer sends);
    otherwise the stream's only law (None when it has both or neither).
    """
    laws = []
    for codec in media.codecs():
        name = codec.encoding.upper()
        if name in _AUXILIARY:
            continue
        is_law = codec.clock_rate == 8000 and G711_PT.get(name) == codec.payload_type
        if first_voice:
            return name if is_law else None
        if name in G711_PT:
            laws.append(name if is_law else "?")
    return laws[0] if len(laws) == 1 and laws[0] != "?" else None


def _with_rtpmap(media: MediaDescription, law: str) -> MediaDescription:
    """``media`` with ``a=rtpmap`` for ``law`` after its last rtpmap (appended if none)."""
    new = Attribute("rtpmap", f"{G711_PT[law]} {law}/8000")
    lines = list(media.lines)
    at = max(
        (
            i + 1
            for i, line in enumerate(lines)
            if isinstance(line, Attribute) and line.name == "rtpmap"
        ),
        default=len(lines),
    )
    lines.insert(at, new)
    return dataclasses.replace(media, lines=tuple(lines), raw=None)


def add_other_law(sdp: SessionDescription) -> tuple[SessionDescription, str | None, str | None]:
    """``sdp`` with the other G.711 law offered right after its only one.

    Returns the new SDP, the offerer's law and the added law (both None when nothing was
    added: no audio, both laws, neither, or a law under a dynamic payload type).
    """
    found = _audio(sdp)
    if found is None:
        return sdp, None, None
    index, media = found
    law = _law(media, first_voice=False)
    if law is None:
        return sdp, None, None
    other = _OTHER[law]
    if G711_PT[other] in media.formats:  # a static type reused for something else: leave it
        return sdp, None, None
    formats = list(media.formats)
    formats.insert(formats.index(G711_PT[law]) + 1, G711_PT[other])
    new = _with_rtpmap(dataclasses.replace(media, formats=tuple(formats), raw=None), other)
    return sdp.with_media(index, new), law, other


def answer_in_law(sdp: SessionDescription, added: str, own: str) -> tuple[SessionDescription, bool]:
    """An answer as the offerer may see it, and whether the relay must transcode.

    ``added`` is the law we added to the offer, ``own`` the offerer's. When the answer's
    first voice codec is ``added`` it is renamed to ``own`` (transcoding); otherwise
    ``added`` is dropped from it if there (passthrough).
    """
    found = _audio(sdp)
    if found is None:
        return sdp, False
    index, media = found
    added_pt, own_pt = G711_PT[added], G711_PT[own]
    if _law(media, first_voice=True) != added:
        if added_pt in media.formats and len(media.formats) > 1:
            kept = [f for f in media.formats if f != added_pt]
            return sdp.with_media(index, media.with_formats(kept)), False
        return sdp, False
    formats: list[str] = []
    for fmt in media.formats:
        renamed_fmt = own_pt if fmt == added_pt else fmt
        if renamed_fmt not in formats:
            formats.append(renamed_fmt)
    renamed = media.with_formats([f for f in media.formats if f not in (added_pt, own_pt)])
    renamed = dataclasses.replace(renamed, formats=tuple(formats), raw=None)
    return sdp.with_media(index, _with_rtpmap(renamed, own)), True


@dataclass(frozen=True, slots=True)
class _PendingOffer:
    leg: Leg  # the relay leg the offer came from
    own: str  # the offerer's G.711 law
    added: str  # the law we added for the answerer


#: Added to the recorded media reason while the relay transcodes.
TRANSCODING_NOTE: Final = "; transcoding PCMU <-> PCMA"

#: The provisional decision of an inbound bypass candidate, until the client's answer.
INBOUND_PENDING: Final = BypassDecision(MediaMode.ANCHORED, "inbound: decided on the answer")


def _gateway_media(gateway: Gateway, address: str | None) -> GatewayMedia:
    return GatewayMedia(gateway.name, media_bypass=gateway.media_bypass, address=address)


def decide_outbound(
    policy: BypassPolicy, relay: bool, offer: bytes, gateway: Gateway | None, target: str | None,
    *, srtp: SrtpConfig | None = None,
) -> BypassDecision:  # fmt: skip
    """An outbound call (the client's offer in hand): bypass or anchor, with the reason."""
    if not relay:
        return BypassDecision(MediaMode.BYPASS, "no relay engine")
    if not offer:
        return BypassDecision(MediaMode.ANCHORED, "no SDP offer in the INVITE")
    if gateway is None:
        return BypassDecision(MediaMode.ANCHORED, "no gateway")
    sdp = parse_sdp(offer)
    client = client_media_from_sdp(sdp)
    decision = decide_bypass(
        policy, client=client, via_edge=False, gateway=_gateway_media(gateway, target)
    )
    if decision.bypass and srtp is not None:
        blocked = bypass_blocked(sdp, gateway.name, gateway.media_encryption)
        if blocked is not None:
            return BypassDecision(MediaMode.ANCHORED, blocked)
    return decision


def decide_inbound(
    policy: BypassPolicy, relay: bool, offer: bytes, gateway: Gateway,
    *, srtp: SrtpConfig | None = None,
) -> BypassDecision:  # fmt: skip
    """An inbound call, before its offer goes on: :data:`INBOUND_PENDING` when bypass is
    possible (tenant bypass on, gateway MediaBypass on), else the final decision."""
    if not relay:
        return BypassDecision(MediaMode.BYPASS, "no relay engine")
    if not offer:
        return BypassDecision(MediaMode.ANCHORED, "no SDP offer in the INVITE")
    sdp = parse_sdp(offer)  # checked now (SdpError: 488), even when it goes on unchanged
    if not policy.enabled:
        return BypassDecision(MediaMode.ANCHORED, "bypass disabled in tenant network configuration")
    if not gateway.media_bypass:
        return BypassDecision(MediaMode.ANCHORED, f"gateway {gateway.name} has media bypass off")
    if srtp is not None:
        crypto, savp = offered_srtp(sdp)
        if srtp.client == "SRTP" and not crypto:
            return BypassDecision(
                MediaMode.ANCHORED, f"SRTP: clients require SRTP, gateway {gateway.name} offers RTP"
            )
        if srtp.client == "RTP" and savp:
            return BypassDecision(
                MediaMode.ANCHORED, f"SRTP: gateway {gateway.name} offers RTP/SAVP, clients RTP"
            )
    return INBOUND_PENDING


def decide_on_answer(
    policy: BypassPolicy, offer: bytes, answer: bytes, gateway: Gateway
) -> BypassDecision:
    """An inbound bypass candidate: the client's answer gives its media address; the
    gateway's media address is the one its offer named."""
    client = client_media_from_sdp(parse_sdp(answer))
    ours = client_media_from_sdp(parse_sdp(offer))
    media = _gateway_media(gateway, None if ours is None else ours.address)
    return decide_bypass(policy, client=client, via_edge=False, gateway=media)


def decide_at_start(
    policy: BypassPolicy, relay: bool, offer: bytes, gateway: GatewayState | None, inbound: bool,
    *, srtp: SrtpConfig | None = None,
) -> BypassDecision:  # fmt: skip
    """The media decision of a new call (``inbound``: maybe :data:`INBOUND_PENDING`)."""
    if inbound and gateway is not None:
        return decide_inbound(policy, relay, offer, gateway.config, srtp=srtp)
    cfg, target = (None, None) if gateway is None else (gateway.config, gateway.target)
    return decide_outbound(policy, relay, offer, cfg, target, srtp=srtp)


def srtp_plan(config: SrtpConfig | None, gateway: GatewayState | None) -> SrtpPlan | None:
    """The SDES plan of a call to or from ``gateway`` (None without an SRTP config)."""
    if config is None:
        return None
    return SrtpPlan(config, "RTP" if gateway is None else gateway.config.media_encryption)


def decide_late(
    b2b: B2BUA, a: Call, gateway: GatewayState | None, relay_call: RelayCall | None,
    answer: bytes, *, note: Callable[[str], None],
) -> tuple[BypassDecision, MediaPlan | None]:  # fmt: skip
    """An inbound bypass candidate's first answer: bypass (the SDP passes on; the caller
    gives back the relay call held ready) or anchor: the returned plan answers the gateway
    the relay's address, and its :attr:`MediaPlan.reoffer` is the edge leg's re-INVITE to
    the relay (:func:`.call_flow.reoffer`, once that leg's 2xx is in)."""
    assert gateway is not None
    offer = a.invite.body
    decision = decide_on_answer(b2b.bypass, offer, answer, gateway.config)
    if relay_call is None or b2b.relay is None or decision.bypass:
        return decision, None
    plan = MediaPlan(relay_call, note, srtp_plan(b2b.srtp, gateway))
    plan.anchor_late(offer)
    return decision, plan


#: The reason recorded when a bypassed call is anchored because the two ends share no codec.
CODEC_MISMATCH: Final = "codec mismatch"
#: SIP statuses to a bypassed offer that mean "not these codecs" (RFC 3261 §21.4.26).
_MISMATCH_STATUSES: Final = frozenset({488})


def _voice(body: bytes) -> set[tuple[str, int]] | None:
    """(encoding, clock rate) of the voice codecs of the first audio stream (None: no SDP or
    no audio stream)."""
    found = _audio(parse_sdp(body))
    if found is None:
        return None
    codecs = found[1].codecs()
    return {
        (c.encoding.upper(), c.clock_rate) for c in codecs if c.encoding.upper() not in _AUXILIARY
    }


def shares_codec(offer: bytes, answer: bytes) -> bool:
    """Does ``answer`` name a voice codec of ``offer``? (True when either has no audio
    stream to compare: nothing the relay could repair.)"""
    offered, answered = _voice(offer), _voice(answer)
    if offered is None or answered is None or not answered:
        return True
    return bool(offered & answered)


#: The decision of a bypassed call anchored because the two ends share no codec.
ANCHORED_ON_MISMATCH: Final = BypassDecision(MediaMode.ANCHORED, CODEC_MISMATCH)


def fallback_on_reject(outbound: OutboundCall, status: int, now: float) -> Attempt | None:
    """The gateway refused a bypassed offer (488) while the call may still fall back
    (:func:`.call_flow._can_fall_back`): the call is to be anchored
    (:data:`ANCHORED_ON_MISMATCH`) and the same gateway sent a new INVITE through the relay
    (transcoding when it answers the other law): the returned attempt, ``outbound``'s
    current one started again. None: the refusal ends the attempt as usual."""
    if status not in _MISMATCH_STATUSES or outbound.current is None:
        return None
    return outbound.retry(now)


def fallback_on_answer(offer: bytes, answer: bytes | None) -> bool:
    """Did the gateway answer a bypassed ``offer`` with no codec of it (``answer``)? Then
    the call is to be anchored (:data:`ANCHORED_ON_MISMATCH`; the relay transcodes), the
    client answered through the relay and the gateway re-INVITEd to it
    (:meth:`MediaPlan.reoffer_to`)."""
    return answer is not None and not shares_codec(offer, answer)


#: Wait before trying our re-INVITE again after a 491 (RFC 3261 §14.1: 2.1-4 s for the
#: owner of the Call-ID; the edge leg is ours): :func:`.call_flow.reoffer_done`.
REOFFER_RETRY: Final = 2.5


class MediaPlan:
    """SDP rewriting and codec choice for one anchored call (relay leg A faces the edge).

    ``reoffer``: an inbound call anchored on the client's answer keeps here the offer the
    edge leg must get in a re-INVITE (the gateway's offer anchored, version bumped);
    ``waiting``: it waits for another offer under way to end.
    """

    __slots__ = ("_bump", "_note", "_offer", "relay_call", "reoffer", "srtp", "waiting")

    def __init__(
        self,
        relay_call: RelayCall,
        note: Callable[[str], None] | None = None,
        srtp: SrtpPlan | None = None,
    ) -> None:
        self.relay_call = relay_call
        self.srtp = srtp  # SDES keys per leg (None: SDP crypto lines pass untouched)
        self._note = note  # told TRANSCODING_NOTE when transcoding starts, "" when it stops
        self._offer: _PendingOffer | None = None
        self._bump: Leg | None = None  # SDP toward this leg: sess-version + 1 (RFC 3264 §8)
        self.reoffer: bytes | None = None
        self.waiting = False  # :attr:`reoffer` waits for an offer under way to end

    def anchor_late(self, gateway_offer: bytes) -> None:
        """Anchor an inbound call whose edge leg got ``gateway_offer`` unchanged: the relay's
        gateway side faces the gateway now, and :attr:`reoffer` is the edge's new offer."""
        self.reoffer = self.offer(gateway_offer, Leg.B)
        self._bump = Leg.A
        self.reoffer = self._bumped(self.reoffer, Leg.A)

    def for_gateway(self, gateway: Gateway) -> None:
        """The gateway of the attempt about to be offered (its ``MediaEncryption``)."""
        if self.srtp is not None:
            self.srtp.set_gateway(gateway.media_encryption)

    def wait(self, waiting: bool) -> None:
        """:attr:`reoffer` waits for the offer under way to end (True), or goes now."""
        self.waiting = waiting

    def reoffer_over(self) -> None:
        """Our re-INVITE to the relay was answered, or given up: nothing more to re-offer."""
        self.reoffer = None
        self.waiting = False

    def reoffer_to(self, offer: bytes, from_leg: Leg) -> None:
        """Anchor a call whose other leg got ``offer`` unchanged (bypassed): :attr:`reoffer`
        is ``offer`` anchored for the other leg, version bumped there from now on (the
        outbound bypass fallback: the gateway's answer goes through :meth:`answer`)."""
        self._bump = from_leg.other
        self.reoffer = self.offer(offer, from_leg)

    def _bumped(self, body: bytes, to_leg: Leg) -> bytes:
        if self._bump is not to_leg:
            return body
        sdp = parse_sdp(body)
        return bytes(sdp.with_origin(sdp.origin.bumped()))

    @property
    def transcoding(self) -> bool:
        return self.relay_call.session.mode == "transcode"

    def offer(self, body: bytes, from_leg: Leg) -> bytes:
        """An offer from ``from_leg``, as it goes to the other leg."""
        sdp = anchor(parse_sdp(body), self.relay_call, from_leg)
        if self.srtp is not None:
            sdp = self.srtp.offer(sdp, from_leg)
        sdp, own, added = add_other_law(sdp)
        self._offer = None if own is None or added is None else _PendingOffer(from_leg, own, added)
        return self._bumped(bytes(sdp), from_leg.other)

    def answer(self, body: bytes, from_leg: Leg) -> bytes:
        """An answer from ``from_leg`` (to the last offer of the other leg), as it goes back."""
        sdp = anchor(parse_sdp(body), self.relay_call, from_leg)
        srtp = self.srtp
        if srtp is not None:
            sdp = srtp.answer(sdp, from_leg)
            self.relay_call.set_crypto(srtp.keys[Leg.A], srtp.keys[Leg.B])
        offer = self._offer
        if offer is None or offer.leg is from_leg:
            return self._bumped(bytes(sdp), from_leg.other)
        sdp, transcode = answer_in_law(sdp, offer.added, offer.own)
        own, added = int(G711_PT[offer.own]), int(G711_PT[offer.added])
        was = self.transcoding
        if transcode:
            a_pt, b_pt = (own, added) if offer.leg is Leg.A else (added, own)
            self.relay_call.set_codecs(a_pt, b_pt)
        elif was:
            self.relay_call.set_codecs(PT_PCMU, PT_PCMU)  # back to passthrough
        if was != transcode and self._note is not None:
            self._note(TRANSCODING_NOTE if transcode else "")
        return self._bumped(bytes(sdp), from_leg.other)


class RecentMedia:
    """The relay counters of the last ``size`` calls, by a-leg Call-ID (oldest dropped)."""

    __slots__ = ("_calls", "size")

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._calls: OrderedDict[str, CallStats] = OrderedDict()

    def add(self, call_id: str, stats: CallStats) -> None:
        self._calls[call_id] = stats
        self._calls.move_to_end(call_id)
        while len(self._calls) > self.size:
            self._calls.popitem(last=False)

    def get(self, call_id: str) -> CallStats | None:
        return self._calls.get(call_id)

    def __len__(self) -> int:
        return len(self._calls)
