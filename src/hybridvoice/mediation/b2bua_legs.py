"""Helpers of the B2BUA: failure mapping with a Reason (RFC 3326), ended legs, media counters.

- :func:`map_failure`: the status the other leg hears when an INVITE fails (RFC 3261 §21;
  a B2BUA does not follow 3xx, RFC 7092 §3.1; a 401/407 challenge was meant for us).
- :func:`reason`: the Reason header (RFC 3326 §2) on failures the mediation role decides.
- :func:`release_leg`: breaks the reference cycles of an ended leg.
- :func:`media_counters`: the relay's per-leg RTP counters (RFC 3550 §6.4) for call records.
"""

from __future__ import annotations

from typing import Final, Literal

from hybridvoice.media import LegStats
from hybridvoice.net.call import Call
from hybridvoice.net.relay import RelayCall

from .records import MediaCounters

__all__ = ["failure_headers", "map_failure", "media_counters", "reason", "release_leg", "warning"]

Side = Literal["edge", "gateway"]

#: What the other leg hears for a final failure (3xx: a B2BUA does not follow redirects;
#: 401/407: the challenge was for us, not for the caller; 5xx we do not fail over on: 503).
_FAILURE_MAP: Final = {401: 403, 407: 403, 481: 480, 482: 480, 483: 480, 487: 487}


def map_failure(status: int | None) -> int:
    """The status to answer the other leg with for a failed INVITE (None: a timeout, 408)."""
    if status is None:
        return 408
    if status in _FAILURE_MAP:
        return _FAILURE_MAP[status]
    if 300 <= status < 400:
        return 480
    if status in (500, 501, 502, 505, 513, 580):
        return 503
    return status


def reason(status: int, text: str) -> tuple[str, str]:
    """A Reason header (RFC 3326 §2) for a failure we decided on."""
    quoted = text.replace("\\", "").replace('"', "'")[:200]
    return ("Reason", f'SIP;cause={status};text="{quoted}"')


def warning(call: Call, text: str) -> tuple[str, str]:
    """A Warning header (RFC 3261 §20.43): code 399 (miscellaneous), our host as the agent,
    ``text`` quoted (quotes and backslashes dropped, at most 200 characters)."""
    transport = call.transport
    agent = "hybridvoice" if transport is None else transport.sent_by
    quoted = text.replace("\\", "").replace('"', "'")[:200]
    return ("Warning", f'399 {agent} "{quoted}"')


def failure_headers(call: Call, status: int, text: str) -> tuple[tuple[str, str], ...]:
    """Reason (RFC 3326) and Warning (RFC 3261 §20.43) saying why we ended ``call``."""
    return (reason(status, text), warning(call, text))


def release_leg(call: Call) -> None:
    """Break the leg -> bridge (its handler) -> leg cycle of an ended leg, after its
    ``Disconnected`` has been handled, so reference counting frees both. (The UA core breaks
    the leg <-> transaction cycles itself when the session ends: ``Call._release``.)"""
    call.handler = None


def media_counters(relay_call: RelayCall, side: Side) -> tuple[MediaCounters, MediaCounters]:
    """The relay's counters for the a-leg and the b-leg: RTP packets and bytes, loss and
    jitter from sequence numbers (RFC 3550 A.3, A.8) and what each far end reported in its
    last RTCP report block (SR or RR, §6.4.1: cumulative lost, interarrival jitter)."""
    stats = relay_call.stats()
    edge, gateway = stats.a, stats.b  # relay leg A faces the edge side, B the gateway

    def of(leg: LegStats, other: LegStats) -> MediaCounters:
        return MediaCounters(
            packets_received=leg.packets, packets_sent=other.packets, bytes_received=leg.bytes,
            bytes_sent=other.bytes, packets_lost=leg.lost, jitter_ms=leg.jitter_ms,
            rtcp_packets=leg.rtcp_packets,
            reported_fraction_lost=leg.reported_fraction_lost,
            reported_packets_lost=leg.reported_cumulative_lost,
            reported_jitter_ms=leg.reported_jitter_ms, srtp=leg.srtp,
            srtp_auth_failures=leg.srtp_auth_failures, srtp_replays=leg.srtp_replays,
            reported_round_trip_ms=leg.round_trip_ms,
        )  # fmt: skip

    a, b = (edge, gateway) if side == "edge" else (gateway, edge)
    return of(a, b), of(b, a)
