"""The observed path of a call: the addresses its signalling and media actually used, as the
mediation role learnt them (sans-IO: messages and SDP in, hops out; no sockets, no clock).

An outbound PSTN call reaches the mediation role as an INVITE that carries its own history
(RFC 3261): the caller's Via, stamped by the online service with the address the request came
from (§18.2.1 ``received``, RFC 3581 ``rport``); the online service's Via (stamped by the edge
when it came from another address than the Via says); the edge's Via and its Record-Route
entries, one per side of the edge (§16.6 step 4, a proxy on two networks records both). Then
what the mediation role saw itself: the address the INVITE came from, the address it arrived
on, where the gateway leg went; and the SDP of both legs (RFC 4566 ``c=``/``m=``): the
caller's offer, the mediation role's answer to it, its offer to the gateway and the gateway's
answer.

Every hop says who saw it (``seen_by``). One hop cannot be seen from the mediation role: an
internet client's media reaches the edge's relay, and the offer the mediation role gets names
the relay, not the client. That hop's client end is the client's signalling address (its
``received`` stamp, no port) and the hop is marked ``inferred``.

The record stores the addresses only; classifying them into network segments is the planning
layer's work (:mod:`hybridvoice.planning.observed`), with the deployment's segment settings
at the time of asking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from hybridvoice.sip.message import Request
from hybridvoice.sip.uri import SipUri

from .bypass import BypassPolicy, ClientMedia

if TYPE_CHECKING:
    from .b2bua import Bridge

__all__ = [
    "Endpoint",
    "ObservedHop",
    "ObservedPaths",
    "audio_address",
    "observe_inbound",
    "observe_outbound",
    "observed_of",
]

Endpoint = tuple[str, int | None]
"""An address as seen: (IP address, port or None when unknown)."""


@dataclass(frozen=True, slots=True)
class ObservedHop:
    """One hop of a call's signalling or media: from node to node, the addresses used."""

    source: str  # a node: "client", "online", "edge", "mediation", "gateway"
    source_host: str
    source_port: int | None
    target: str
    target_host: str
    target_port: int | None
    seen_by: str  # which role saw these addresses, and where
    inferred: bool = False  # an end was not seen but worked out (``seen_by`` says how)


_HOP_FIELDS = tuple(f.name for f in fields(ObservedHop))


def _hop_json(hop: ObservedHop) -> dict[str, object]:
    return {name: getattr(hop, name) for name in _HOP_FIELDS}  # asdict copies deeply: slow


@dataclass(frozen=True, slots=True)
class ObservedPaths:
    """The signalling and media hops of one call, in order from the caller."""

    signalling: tuple[ObservedHop, ...] = ()
    media: tuple[ObservedHop, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {"signalling": [_hop_json(h) for h in self.signalling],
             "media": [_hop_json(h) for h in self.media]}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> ObservedPaths:
        data: dict[str, Any] = json.loads(text)
        return cls(
            signalling=tuple(ObservedHop(**h) for h in data.get("signalling", ())),
            media=tuple(ObservedHop(**h) for h in data.get("media", ())),
        )


def _via_source(host: str, port: int | None, received: str | None, rport: int | None) -> Endpoint:
    """Where a request with this Via came from, as the next hop saw it (§18.2.1)."""
    return (received or host, rport if rport is not None else port)


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _is_ip(host: str) -> bool:
    """An address rather than a name (an IPv6 address has colons, a name never does)."""
    return ":" in host or _IPV4.fullmatch(host) is not None


def audio_address(sdp: bytes | None) -> ClientMedia | None:
    """The first active audio stream's address and port (RFC 4566 §5.7 ``c=``, §5.14 ``m=``;
    a media-level ``c=`` over the session's; a hold address gives none), by a scan of the
    lines: the media decisions parsed these bodies already, the record needs two values of
    each on every answered call (a full parse cost more than the rest of the call's record)."""
    if not sdp:
        return None
    session: bytes | None = None
    media: bytes | None = None
    port = 0
    seen_m = False
    for raw in sdp.split(b"\n"):
        line = raw.strip()
        if line[:2] == b"m=":
            if port:
                break  # the chosen audio section ended
            seen_m = True
            parts = line[2:].split()
            number = parts[1].split(b"/")[0] if len(parts) > 1 else b""
            if parts and parts[0] == b"audio" and number.isdigit() and int(number) > 0:
                port = int(number)
        elif line[:2] == b"c=":
            parts = line[2:].split()
            address = parts[2].split(b"/")[0] if len(parts) > 2 else None
            if port:
                media = address
            elif not seen_m:
                session = address
    found = media or session
    if not port or not found or found in (b"0.0.0.0", b"::"):
        return None
    return ClientMedia(found.decode("ascii", "replace"), port)


def _signalling(
    invite: Request,
    edge_source: Endpoint,
    arrived_on: Endpoint,
    gateway_leg: tuple[Endpoint, Endpoint],
) -> tuple[ObservedHop, ...]:
    hops: list[ObservedHop] = []
    vias = invite.via
    if len(vias) >= 3:  # the caller's, the online service's, the edge's (top)
        client, online = vias[-1], vias[-2]
        c_host, c_port = _via_source(client.host, client.port, client.received, client.rport)
        o_host, o_port = _via_source(online.host, online.port, online.received, online.rport)
        # the online service's address: its packets' source as the edge stamped it (an FQDN
        # in its Via gets a received address, §18.2.1), on the port its Via names
        hops.append(ObservedHop("client", c_host, c_port, "online", o_host, online.port,
                                "online service: the caller's Via received/rport"))  # fmt: skip
        routes = invite.record_route
        outside = routes[1].uri if len(routes) >= 2 else None  # the edge's: inside, outside
        if isinstance(outside, SipUri) and _is_ip(outside.host):
            hops.append(ObservedHop("online", o_host, o_port, "edge", outside.host, outside.port,
                                    "edge: the online service's Via and the edge's "
                                    "Record-Route toward it"))  # fmt: skip
        else:  # a name (TLS hops record FQDNs): the edge's address toward mediation stands in
            hops.append(ObservedHop("online", o_host, o_port, "edge", edge_source[0], None,
                                    "inferred: the edge's Record-Route names no address; "
                                    "its address toward mediation", inferred=True))  # fmt: skip
    hops.append(ObservedHop("edge", *edge_source, "mediation", *arrived_on,
                            "mediation: the INVITE's source and its listener"))  # fmt: skip
    local, gateway = gateway_leg
    hops.append(ObservedHop("mediation", *local, "gateway", *gateway,
                            "mediation: the gateway leg's transport and Request-URI"))  # fmt: skip
    return tuple(hops)


def observe_outbound(
    invite: Request,
    *,
    edge_source: Endpoint,
    arrived_on: Endpoint,
    gateway_leg: tuple[Endpoint, Endpoint],
    bypass: bool,
    policy: BypassPolicy,
    answer_to_caller: bytes | None,
    offer_to_gateway: bytes | None,
    gateway_answer: bytes | None,
) -> ObservedPaths:
    """The observed path of an answered outbound call. ``invite``: the caller's INVITE as it
    arrived; ``edge_source``/``arrived_on``: where it came from and the listener it arrived
    on; ``gateway_leg``: (local, gateway) addresses of the gateway leg; ``bypass``: the media
    decision; ``policy``: the edge relay's addresses and ports (an internet client's media);
    the SDP of the answer to the caller, the offer to the gateway and the gateway's answer."""
    signalling = _signalling(invite, edge_source, arrived_on, gateway_leg)
    offer, gateway = audio_address(invite.body), audio_address(gateway_answer)
    media: list[ObservedHop] = []
    if offer is None or gateway is None:
        return ObservedPaths(signalling, ())
    if bypass:
        media.append(ObservedHop("client", offer.address, offer.port, "gateway", gateway.address,
                                 gateway.port, "mediation: both SDPs, passed through"))  # fmt: skip
        return ObservedPaths(signalling, tuple(media))
    relay_a, relay_b = audio_address(answer_to_caller), audio_address(offer_to_gateway)
    near = "client"
    if policy.at_edge_relay(offer):  # an internet client: its media reaches the edge's relay
        client_host = signalling[0].source_host if signalling[0].source == "client" else ""
        media.append(ObservedHop("client", client_host, None, "edge", offer.address, offer.port,
                                 "inferred: the client's signalling address (the edge's relay "
                                 "saw its media, the mediation role saw the relay's)",
                                 inferred=True))  # fmt: skip
        near = "edge"
    if relay_a is not None:
        media.append(ObservedHop(near, offer.address, offer.port, "mediation", relay_a.address,
                                 relay_a.port, "mediation: the offer, its answer"))  # fmt: skip
    if relay_b is not None:
        media.append(ObservedHop("mediation", relay_b.address, relay_b.port, "gateway",
                                 gateway.address, gateway.port,
                                 "mediation: its offer to the gateway and the answer"))  # fmt: skip
    return ObservedPaths(signalling, tuple(media))


def observe_inbound(
    invite: Request,
    *,
    gateway_source: Endpoint,
    arrived_on: Endpoint,
    edge_leg: tuple[Endpoint, Endpoint],
    bypass: bool,
    policy: BypassPolicy,
    answer_to_gateway: bytes | None,
    offer_to_edge: bytes | None,
    callee_answer: bytes | None,
) -> ObservedPaths:
    """The observed path of an answered inbound call (gateway -> mediation -> edge -> ...),
    as far as the mediation role saw it: its own two signalling hops (the edge and the online
    service forward it on; their hops are not in the record), and the media between the
    gateway and the callee's side: the callee's client (bypass, or anchored here), or the
    edge's relay when the callee is on the internet."""
    local, edge = edge_leg
    signalling = (
        ObservedHop("gateway", *gateway_source, "mediation", *arrived_on,
                    "mediation: the INVITE's source and its listener"),
        ObservedHop("mediation", *local, "edge", *edge,
                    "mediation: the edge leg's transport and its next hop"),
    )  # fmt: skip
    offer, callee = audio_address(invite.body), audio_address(callee_answer)
    if offer is None or callee is None:
        return ObservedPaths(signalling, ())
    far = "edge" if policy.at_edge_relay(callee) else "client"
    if bypass:
        hop = ObservedHop("gateway", offer.address, offer.port, far, callee.address, callee.port,
                          "mediation: both SDPs, passed through")  # fmt: skip
        return ObservedPaths(signalling, (hop,))
    media: list[ObservedHop] = []
    relay_a, relay_b = audio_address(answer_to_gateway), audio_address(offer_to_edge)
    if relay_a is not None:
        media.append(ObservedHop("gateway", offer.address, offer.port, "mediation",
                                 relay_a.address, relay_a.port,
                                 "mediation: the gateway's offer, its answer"))  # fmt: skip
    if relay_b is not None:
        media.append(ObservedHop("mediation", relay_b.address, relay_b.port, far,
                                 callee.address, callee.port,
                                 "mediation: its offer, the callee's answer"))  # fmt: skip
    return ObservedPaths(signalling, tuple(media))


def _endpoint(address: tuple[str, int] | None) -> Endpoint:
    return ("", None) if address is None else (address[0], address[1])


def observed_of(
    bridge: Bridge, answer_to_caller: bytes | None, callee_answer: bytes | None
) -> ObservedPaths | None:
    """:func:`observe_outbound` (or :func:`observe_inbound`) of an answered ``bridge``."""
    a, b = bridge.a, bridge.b
    if b is None:
        return None
    uri = b.invite.uri
    target: Endpoint = (uri.host, uri.port) if isinstance(uri, SipUri) else ("", None)
    source = None if a.source is None else (a.source.host, a.source.port)
    local_a = None if a.transport is None else a.transport.local
    local_b = None if b.transport is None else b.transport.local
    decision = bridge.decision
    bypass = decision is not None and decision.bypass
    plan = bridge.plan  # anchored on the callee's answer: the re-offer moves the edge leg
    offer = plan.reoffer if plan is not None and plan.reoffer is not None else b.invite.body
    if bridge.side == "gateway":
        edge = bridge.b2bua.edge_target  # where the edge leg went (its URI names the user)
        return observe_inbound(
            a.invite, gateway_source=_endpoint(source), arrived_on=_endpoint(local_a),
            edge_leg=(_endpoint(local_b), (edge.host, edge.port)), bypass=bypass,
            policy=bridge.b2bua.bypass,
            answer_to_gateway=answer_to_caller, offer_to_edge=offer,
            callee_answer=callee_answer,
        )  # fmt: skip
    return observe_outbound(
        a.invite, edge_source=_endpoint(source), arrived_on=_endpoint(local_a),
        gateway_leg=(_endpoint(local_b), target), bypass=bypass, policy=bridge.b2bua.bypass,
        answer_to_caller=answer_to_caller, offer_to_gateway=offer,
        gateway_answer=callee_answer,
    )  # fmt: skip
