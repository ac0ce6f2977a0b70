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

import ipaddress
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hybridvoice.sip.message import Request
from hybridvoice.sip.sdp import SessionDescription
from hybridvoice.sip.uri import SipUri

from .bypass import BypassPolicy, ClientMedia, client_media_from_sdp

if TYPE_CHECKING:
    from .b2bua import Bridge

__all__ = ["Endpoint", "ObservedHop", "ObservedPaths", "observe_outbound", "observed_of"]

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


@dataclass(frozen=True, slots=True)
class ObservedPaths:
    """The signalling and media hops of one call, in order from the caller."""

    signalling: tuple[ObservedHop, ...] = ()
    media: tuple[ObservedHop, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {"signalling": [asdict(h) for h in self.signalling],
             "media": [asdict(h) for h in self.media]}
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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _media(sdp: bytes | None) -> ClientMedia | None:
    if not sdp:
        return None
    try:
        return client_media_from_sdp(SessionDescription.parse(sdp))
    except ValueError:
        return None


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
    offer, gateway = _media(invite.body), _media(gateway_answer)
    media: list[ObservedHop] = []
    if offer is None or gateway is None:
        return ObservedPaths(signalling, ())
    if bypass:
        media.append(ObservedHop("client", offer.address, offer.port, "gateway", gateway.address,
                                 gateway.port, "mediation: both SDPs, passed through"))  # fmt: skip
        return ObservedPaths(signalling, tuple(media))
    relay_a, relay_b = _media(answer_to_caller), _media(offer_to_gateway)
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


def _endpoint(address: tuple[str, int] | None) -> Endpoint:
    return ("", None) if address is None else (address[0], address[1])


def observed_of(
    bridge: Bridge, answer_to_caller: bytes | None, gateway_answer: bytes | None
) -> ObservedPaths | None:
    """:func:`observe_outbound` of an answered outbound ``bridge`` (None: not one)."""
    a, b = bridge.a, bridge.b
    if bridge.side != "edge" or b is None:
        return None
    uri = b.invite.uri
    gateway: Endpoint = (uri.host, uri.port) if isinstance(uri, SipUri) else ("", None)
    source = None if a.source is None else (a.source.host, a.source.port)
    local_a = None if a.transport is None else a.transport.local
    local_b = None if b.transport is None else b.transport.local
    decision = bridge.decision
    return observe_outbound(
        a.invite, edge_source=_endpoint(source), arrived_on=_endpoint(local_a),
        gateway_leg=(_endpoint(local_b), gateway),
        bypass=decision is not None and decision.bypass, policy=bridge.b2bua.bypass,
        answer_to_caller=answer_to_caller, offer_to_gateway=b.invite.body,
        gateway_answer=gateway_answer,
    )  # fmt: skip
