"""What the edge does with each message of an anchored call (sans-IO: messages in, decisions out).

The core of :mod:`.anchor_io`. An anchored call has relay ports on two sides: the external
side (leg A, offered to the client as ``ExternalMRPublicIPs``) and the internal side (leg B,
offered to the mediation role). :func:`cross` looks at one message that crosses the edge on
such a call and says what to do with it:

- every SDP body, in either direction and in any message that carries one (RFC 3264
  offer/answer in INVITE, 18x/2xx, ACK, PRACK and UPDATE, and re-INVITEs; RFC 3261 §13.2.1:
  an offer-less INVITE gets its offer in the 2xx and its answer in the ACK), names the
  relay ports of the side it leaves on (:func:`.anchor.rewrite_sdp`), and its own address
  becomes the remote of the side it came from; in a multipart body (RFC 5621: SDP beside
  ISUP, or the two ``multipart/alternative`` SDPs of Lync and Skype for Business clients)
  every SDP part is rewritten and the last one (RFC 2046 §5.1.4: the preferred version)
  names the remote (:class:`SdpBodies`);
- toward the client, the SDP carries the edge's ICE-lite credentials and candidates
  (:func:`.anchor.rewrite_sdp`), unless the client's own last SDP had no ICE (RFC 8839
  §4.2.1: an answer to an offer without ICE carries none); an SDP from the client hands its
  ``ice-ufrag`` to the relay's agent (checks must name it, RFC 8445 §7.3);
- a BYE, or a failure answer to the INVITE before any 2xx, releases the ports.

:class:`IdleSweep` finds the calls whose BYE never crossed the edge: every ``interval``
seconds while calls are anchored (:meth:`IdleSweep.next_deadline`; the adapter arms one loop
timer), a call whose relay carried no packet for ``idle_timeout`` seconds is released.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybridvoice.media import Leg
from hybridvoice.media.ice_lite import IceCredentials
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.multipart import Multipart, split

from .anchor import MediaAddress, ice_credentials, rewrite_sdp, sdp_media

__all__ = ["AnchoredCall", "Crossing", "IdleSweep", "SdpBodies", "cross", "sdp_bodies"]


@dataclass(slots=True)
class AnchoredCall:
    """One anchored call: where each side of the relay receives (the external side as the
    client is told: the public address), whether the INVITE was answered, the edge's ICE
    credentials toward the client (None: no ICE) and whether the client's last SDP had ICE
    (None: no SDP from it yet)."""

    call_id: str
    external: MediaAddress
    internal: MediaAddress
    answered: bool = False
    ice: IceCredentials | None = None
    client_ice: bool | None = None


@dataclass(frozen=True, slots=True)
class Crossing:
    """The decision for one message: its new body (None: leave it), the side it came from
    and that side's media address from its SDP (the relay sends there), the client's ICE
    credentials from its SDP, or the call's end."""

    body: bytes | None = None
    came_from: Leg | None = None
    remote: MediaAddress | None = None
    release: bool = False
    remote_ice: IceCredentials | None = None


_NOTHING = Crossing()
_RELEASE = Crossing(release=True)


_SDP = "application/sdp"


@dataclass(slots=True)
class SdpBodies:
    """The SDP a message carries: its whole body (``application/sdp``) or the SDP parts of a
    multipart body, in order."""

    bodies: list[bytes]
    multipart: Multipart | None = None

    def replaced(self, new: Sequence[bytes | None]) -> bytes | None:
        """The message body with each SDP replaced by its ``new`` one (None: that one kept);
        None when nothing changed."""
        if all(body is None for body in new):
            return None
        if self.multipart is None:
            return new[0]
        sdp_parts = [p for p in self.multipart.parts if p.content_type == _SDP]
        for part, body in zip(sdp_parts, new, strict=True):
            if body is not None:
                part.body = body
        return self.multipart.join()


def sdp_bodies(message: Request | Response) -> SdpBodies | None:
    """The message's SDP (:class:`SdpBodies`), or None: no body, no SDP in it, or a multipart
    body that is not well formed (:func:`hybridvoice.sip.multipart.split`)."""
    body = message.body
    if not body:
        return None
    content_type = message.headers.get("Content-Type") or ""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == _SDP:
        return SdpBodies([body])
    if not kind.startswith("multipart/"):
        return None
    multipart = split(content_type, body)
    if multipart is None:
        return None
    found = [p.body for p in multipart.parts if p.content_type == _SDP]
    return SdpBodies(found, multipart) if found else None


def cross(call: AnchoredCall, message: Request | Response, toward_external: bool) -> Crossing:
    """What to do with ``message`` of ``call`` as it leaves the edge (``toward_external``:
    toward the client's side)."""
    if isinstance(message, Request):
        if message.method == "BYE":
            return _RELEASE
    else:
        cseq = message.headers.get("CSeq") or ""
        if cseq.rstrip().upper().endswith("INVITE"):
            if 200 <= message.status < 300:
                call.answered = True
            elif message.status >= 300 and not call.answered:
                return _RELEASE
    found = sdp_bodies(message)
    if found is None:
        return _NOTHING
    preferred = found.bodies[-1]
    if toward_external:
        to = call.external
        ice = call.ice if call.client_ice is not False else None
        new = [rewrite_sdp(b, to.address, to.port, to.rtcp_port, ice) for b in found.bodies]
        return Crossing(found.replaced(new), Leg.B, sdp_media(preferred))
    theirs = ice_credentials(preferred)
    call.client_ice = theirs is not None
    to = call.internal
    new = [rewrite_sdp(b, to.address, to.port, to.rtcp_port) for b in found.bodies]
    return Crossing(found.replaced(new), Leg.A, sdp_media(preferred), remote_ice=theirs)


class IdleSweep:
    """The anchored calls' idle timers: one deadline for all of them (sans-IO)."""

    __slots__ = ("_next", "_seen", "idle_timeout", "interval")

    def __init__(self, idle_timeout: float, interval: float = 60.0) -> None:
        if idle_timeout <= 0 or interval <= 0:
            raise ValueError("idle_timeout and interval must be positive")
        self.idle_timeout = idle_timeout
        self.interval = min(interval, idle_timeout)
        #: Call-ID -> (packets when they last moved, when the sweep saw them move)
        self._seen: dict[str, tuple[int, float]] = {}
        self._next: float | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, call_id: str, now: float) -> None:
        """A call anchored at ``now``: idle from now until its relay carries something."""
        self._seen[call_id] = (0, now)
        if self._next is None:
            self._next = now + self.interval

    def remove(self, call_id: str) -> None:
        self._seen.pop(call_id, None)
        if not self._seen:
            self._next = None

    def next_deadline(self) -> float | None:
        """When :meth:`due` has work next (None: no call is anchored)."""
        return self._next

    def due(self, now: float, packets: Mapping[str, int]) -> list[str]:
        """The calls to release at ``now`` (their relay carried nothing for ``idle_timeout``
        seconds), given each call's packets so far; they are forgotten here. Before the
        deadline: nothing."""
        if self._next is None or now < self._next:
            return []
        gone = []
        for call_id, (total, since) in self._seen.items():
            moved = packets.get(call_id, total)
            if moved != total:
                self._seen[call_id] = (moved, now)
            elif now - since >= self.idle_timeout:
                gone.append(call_id)
        for call_id in gone:
            del self._seen[call_id]
        self._next = now + self.interval if self._seen else None
        return gone
