"""Relay bookkeeping for an anchored call: two legs, latching, counters, transcoding.

Sans-IO: the socket loop (``hybridvoice.net.relay``) owns the sockets and calls in here.

- A relayed call has two legs: A toward the cloud/edge side, B toward the gateway. Each leg
  has a local RTP/RTCP port pair (RFC 3550 §11) and a remote address learned from SDP.
- Symmetric RTP (RFC 4961): we send to a leg from the local port it sends to, and to the
  address its packets come from. "Latching", as SBCs do it: a packet from an unexpected
  source moves the leg's remote address when (a) no remote is known yet, (b) fewer than
  ``LatchPolicy.window`` packets arrived on the leg since its remote was last set, or (c) it
  comes from the latched IP address (a NAT rebinding its port) and ``same_ip`` is on. Any
  other stray packet is dropped and counted (RFC 3550 §8.2: do not let a third party hijack
  the stream). RTP and RTCP latch independently.
- Counters per leg (packets, bytes, dropped, relatched); sequence-number statistics
  (RFC 3550 A.1/A.3/A.8, :mod:`.stats`); what the far end reports in RTCP (§6.4).
- Modes: passthrough, or transcode between PCMU and PCMA (G.711 tables, payload type 0<->8
  rewritten); any other payload type (RFC 4733 telephone-event, comfort noise) passes as is.
- SRTP per leg (RFC 3711, SDES keys of RFC 4568, :mod:`.srtp`): a leg with keys decrypts what
  it receives and encrypts what it sends, so SRTP on one leg and RTP on the other are joined.
  When both legs carry the same keys mirrored (the SDES lines passed end to end), nothing is
  decrypted: the packets pass as they are. Failed authentication and replays are counted per
  leg and the packet dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

from .errors import MediaParseError
from .g711 import PT_PCMA, PT_PCMU, transcode_table
from .rtcp import ReceiverReport, ReportBlock, SenderReport, parse_rtcp
from .rtp import RTP_HEADER_SIZE, rtp_header_size
from .srtp import LegCrypto, SrtpStream
from .stats import ReceiveStats

__all__ = [
    "Addr",
    "CallStats",
    "LatchPolicy",
    "Leg",
    "LegState",
    "LegStats",
    "RelayMode",
    "RelaySession",
    "Transcoder",
    "transcode_in_place",
]

Addr = tuple[str, int]
DEFAULT_LATCH_WINDOW: Final = 16
#: sender reports remembered per leg for the round trip (RFC 3550 §6.4.1 LSR)
_SR_KEPT: Final = 8


class Leg(enum.StrEnum):
    A = "a"  # toward the cloud/edge side
    B = "b"  # toward the gateway

    @property
    def other(self) -> Leg:
        return Leg.B if self is Leg.A else Leg.A


class RelayMode(enum.StrEnum):
    PASSTHROUGH = "passthrough"
    TRANSCODE = "transcode"


@dataclass(frozen=True, slots=True)
class LatchPolicy:
    """When a packet from an unexpected source may move a leg's remote address (see module)."""

    window: int = DEFAULT_LATCH_WINDOW
    same_ip: bool = True


@dataclass(frozen=True, slots=True)
class Transcoder:
    """Payload rewrite for one direction: ``from_pt`` packets become ``to_pt`` via ``table``."""

    from_pt: int
    to_pt: int
    table: bytes


def transcode_in_place(buf: bytearray, length: int, transcoder: Transcoder) -> bool:
    """Transcode the RTP packet in ``buf[:length]`` in place when its PT is ``from_pt``.

    Header, CSRCs, extension and padding are kept; only the payload octets are translated
    and the payload type rewritten (marker bit kept). Returns whether the packet changed;
    packets of other payload types (telephone-event...) and malformed ones are left alone.
    """
    if length < RTP_HEADER_SIZE or buf[1] & 0x7F != transcoder.from_pt:
        return False
    try:
        start = rtp_header_size(buf, length)
    except MediaParseError:
        return False
    end = length
    if buf[0] & 0x20:
        end -= buf[length - 1]
        if end < start:
            return False
    buf[start:end] = buf[start:end].translate(transcoder.table)
    buf[1] = (buf[1] & 0x80) | transcoder.to_pt
    return True


class LegState:
    """One leg's mutable state. The socket loop reads and bumps these slots directly."""

    __slots__ = (
        "bytes",
        "dropped",
        "leg",
        "packets",
        "policy",
        "relatched",
        "reported",
        "reported_at",
        "rtcp_bytes",
        "rtcp_dropped",
        "rtcp_errors",
        "rtcp_mark",
        "rtcp_packets",
        "rtcp_port",
        "rtcp_remote",
        "rtp_mark",
        "rtp_port",
        "rtp_remote",
        "sdp_remote",
        "sr_arrivals",
        "srtp_base",
        "srtp_in",
        "srtp_keys",
        "srtp_out",
        "stats",
        "transcoder",
    )

    def __init__(self, leg: Leg, rtp_port: int, rtcp_port: int, policy: LatchPolicy) -> None:
        self.leg = leg
        self.rtp_port = rtp_port
        self.rtcp_port = rtcp_port
        self.policy = policy
        self.sdp_remote: Addr | None = None
        self.rtp_remote: Addr | None = None
        self.rtcp_remote: Addr | None = None
        self.rtp_mark = 0  # ``packets`` when the remote was last set (latch window start)
        self.rtcp_mark = 0
        self.packets = 0
        self.bytes = 0
        self.dropped = 0
        self.relatched = 0
        self.rtcp_packets = 0
        self.rtcp_bytes = 0
        self.rtcp_dropped = 0
        self.rtcp_errors = 0
        self.stats = ReceiveStats(min_sequential=0)
        self.reported: ReportBlock | None = None
        #: when ``reported`` arrived, and when the last SRs from this leg's far end arrived by
        #: the middle 32 bits of their NTP time (the LSR the other leg's far end echoes)
        self.reported_at: float | None = None
        self.sr_arrivals: dict[int, float] = {}
        #: Applied to RTP received on this leg before it goes out the other leg.
        self.transcoder: Transcoder | None = None
        #: SRTP: ``srtp_in`` unprotects what this leg receives, ``srtp_out`` protects what is
        #: sent on it (None: plain RTP); ``srtp_keys`` the SDES keys they were made from.
        self.srtp_in: SrtpStream | None = None
        self.srtp_out: SrtpStream | None = None
        self.srtp_keys: LegCrypto | None = None
        #: auth failures, replays, errors of streams replaced by a re-key
        self.srtp_base = [0, 0, 0]

    def set_crypto(self, keys: LegCrypto | None, *, convert: bool = True) -> None:
        """SRTP keys of this leg (None: plain RTP). ``convert`` False: the keys are known but
        the packets pass undecrypted (the other leg holds the same keys)."""
        if keys != self.srtp_keys or keys is None or not convert:
            self._retire()
        self.srtp_keys = keys
        if keys is not None and convert and self.srtp_in is None:
            self.srtp_in = SrtpStream(keys.recv, outbound=False)
            self.srtp_out = SrtpStream(keys.send, outbound=True)

    def _retire(self) -> None:
        """Drop the streams, keeping what their receiving side counted."""
        old = self.srtp_in
        if old is not None:
            self.srtp_base[0] += old.auth_failures
            self.srtp_base[1] += old.replays
            self.srtp_base[2] += old.errors
        self.srtp_in = self.srtp_out = None

    def srtp_counts(self) -> tuple[int, int, int]:
        """(auth failures, replays, other errors) of SRTP/SRTCP received on this leg."""
        auth, replays, errors = self.srtp_base
        stream = self.srtp_in
        if stream is not None:
            auth += stream.auth_failures
            replays += stream.replays
            errors += stream.errors
        return auth, replays, errors

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        """The remote address from SDP (RTCP on ``port + 1`` unless given, RFC 3550 §11)."""
        self.sdp_remote = (host, port)
        self.rtp_remote = (host, port)
        self.rtcp_remote = (host, port + 1 if rtcp_port is None else rtcp_port)
        self.rtp_mark = self.packets
        self.rtcp_mark = self.rtcp_packets

    def _may_latch(self, current: Addr | None, src: Addr, seen: int) -> bool:
        if current is None or seen < self.policy.window:
            return True
        return self.policy.same_ip and src[0] == current[0]

    def latch_rtp(self, src: Addr) -> bool:
        """An RTP packet came from ``src`` != ``rtp_remote``: re-latch (True) or drop (False)."""
        if self._may_latch(self.rtp_remote, src, self.packets - self.rtp_mark):
            self.rtp_remote = src
            self.relatched += 1
            return True
        self.dropped += 1
        return False

    def latch_rtcp(self, src: Addr) -> bool:
        if self._may_latch(self.rtcp_remote, src, self.rtcp_packets - self.rtcp_mark):
            self.rtcp_remote = src
            return True
        self.rtcp_dropped += 1
        return False

    def on_rtp(self, buf: bytes | bytearray | memoryview, length: int, now: float) -> None:
        """Count one accepted RTP packet and feed the sequence statistics."""
        self.packets += 1
        self.bytes += length
        if length >= RTP_HEADER_SIZE:
            seq = (buf[2] << 8) | buf[3]
            ts = (buf[4] << 24) | (buf[5] << 16) | (buf[6] << 8) | buf[7]
            self.stats.update(seq, ts, now)

    def on_rtcp(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Count one accepted RTCP packet and keep the last report block it carries (and,
        given ``now``, when it and the sender reports came: :meth:`round_trip_ms`)."""
        self.rtcp_packets += 1
        self.rtcp_bytes += len(data)
        try:
            packets = parse_rtcp(data)
        except MediaParseError:
            self.rtcp_errors += 1
            return
        for packet in packets:
            if now is not None and isinstance(packet, SenderReport):
                arrivals = self.sr_arrivals
                arrivals[(packet.ntp_timestamp >> 16) & 0xFFFFFFFF] = now
                if len(arrivals) > _SR_KEPT:
                    del arrivals[next(iter(arrivals))]
            if isinstance(packet, SenderReport | ReceiverReport) and packet.reports:
                self.reported = packet.reports[0]
                self.reported_at = now

    def round_trip_ms(self, other: LegState) -> float | None:
        """The round trip relay -> this leg's far end -> relay (RFC 3550 §6.4.1, on the
        relay's clock): its last report block echoes, as LSR, an SR of ``other``'s far end
        that the relay forwarded on arrival; RTT = report arrival - SR arrival - DLSR."""
        r, at = self.reported, self.reported_at
        if r is None or at is None or r.lsr == 0:
            return None
        sent = other.sr_arrivals.get(r.lsr)
        if sent is None:
            return None
        rtt = at - sent - r.dlsr / 65536.0
        return 1000.0 * rtt if rtt >= 0 else None

    def snapshot(self) -> LegStats:
        s = self.stats
        r = self.reported
        auth, replays, errors = self.srtp_counts()
        return LegStats(
            leg=self.leg,
            rtp_port=self.rtp_port,
            rtcp_port=self.rtcp_port,
            remote=self.rtp_remote,
            rtcp_remote=self.rtcp_remote,
            packets=self.packets,
            bytes=self.bytes,
            dropped=self.dropped,
            relatched=self.relatched,
            expected=s.expected,
            lost=s.lost,
            jitter_ms=1000.0 * s.jitter_seconds,
            rtcp_packets=self.rtcp_packets,
            rtcp_dropped=self.rtcp_dropped,
            reported_fraction_lost=None if r is None else r.loss_ratio,
            reported_cumulative_lost=None if r is None else r.cumulative_lost,
            reported_jitter_ms=None if r is None else 1000.0 * r.jitter / s.clock_rate,
            srtp=self.srtp_in is not None,
            srtp_auth_failures=auth,
            srtp_replays=replays,
            srtp_errors=errors,
        )


@dataclass(frozen=True, slots=True)
class LegStats:
    """Counters of one leg, as received on it.

    ``packets``/``bytes`` are RTP accepted from the leg's far end; ``expected``/``lost``/
    ``jitter_ms`` come from their sequence numbers (RFC 3550 A.3, A.8); the ``reported_*``
    fields are the far end's own view of what it receives from us (RTCP report block, §6.4.1).
    ``srtp``: the relay decrypts/encrypts this leg; ``srtp_*``: SRTP/SRTCP packets received
    on it and dropped for a failed authentication tag, a replay, or another libsrtp error.
    """

    leg: Leg
    rtp_port: int
    rtcp_port: int
    remote: Addr | None
    rtcp_remote: Addr | None
    packets: int
    bytes: int
    dropped: int
    relatched: int
    expected: int
    lost: int
    jitter_ms: float
    rtcp_packets: int
    rtcp_dropped: int
    reported_fraction_lost: float | None
    reported_cumulative_lost: int | None
    reported_jitter_ms: float | None
    srtp: bool = False
    srtp_auth_failures: int = 0
    srtp_replays: int = 0
    srtp_errors: int = 0
    #: relay -> far end -> relay (ms) from its last report's LSR/DLSR, None when unknown
    round_trip_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CallStats:
    call_id: str
    mode: RelayMode
    a: LegStats
    b: LegStats


class RelaySession:
    """Bookkeeping of one relayed call: the two legs and the transcoding in each direction."""

    __slots__ = ("a", "b", "call_id", "mode")

    def __init__(
        self,
        call_id: str,
        a_ports: tuple[int, int],
        b_ports: tuple[int, int],
        policy: LatchPolicy | None = None,
    ) -> None:
        policy = policy or LatchPolicy()
        self.call_id = call_id
        self.a = LegState(Leg.A, a_ports[0], a_ports[1], policy)
        self.b = LegState(Leg.B, b_ports[0], b_ports[1], policy)
        self.mode = RelayMode.PASSTHROUGH

    def leg(self, leg: Leg) -> LegState:
        return self.a if leg is Leg.A else self.b

    def set_remote(self, leg: Leg, host: str, port: int, rtcp_port: int | None = None) -> None:
        self.leg(leg).set_remote(host, port, rtcp_port)

    def set_codecs(self, a_pt: int, b_pt: int) -> None:
        """The G.711 payload type each leg speaks; equal types mean passthrough."""
        for pt in (a_pt, b_pt):
            if pt not in (PT_PCMU, PT_PCMA):
                raise ValueError(f"payload type {pt} is not G.711 (0 or 8)")
        a_to_b = transcode_table(a_pt, b_pt)
        b_to_a = transcode_table(b_pt, a_pt)
        if a_to_b is None or b_to_a is None:
            self.mode = RelayMode.PASSTHROUGH
            self.a.transcoder = self.b.transcoder = None
            return
        self.mode = RelayMode.TRANSCODE
        self.a.transcoder = Transcoder(a_pt, b_pt, a_to_b)
        self.b.transcoder = Transcoder(b_pt, a_pt, b_to_a)

    def set_crypto(self, a: LegCrypto | None, b: LegCrypto | None) -> None:
        """SDES keys of each leg (None: plain RTP on it). The relay decrypts and encrypts
        unless both legs hold the same keys mirrored (end-to-end SRTP): then it forwards."""
        mirrored = a is not None and b is not None and (a.recv, a.send) == (b.send, b.recv)
        self.a.set_crypto(a, convert=not mirrored)
        self.b.set_crypto(b, convert=not mirrored)

    @property
    def converts_srtp(self) -> bool:
        """Does any packet need SRTP work (the relay's slow path)?"""
        return any(leg.srtp_in is not None for leg in (self.a, self.b))

    def stats(self) -> CallStats:
        a, b = self.a.snapshot(), self.b.snapshot()
        a = replace(a, round_trip_ms=self.a.round_trip_ms(self.b))
        b = replace(b, round_trip_ms=self.b.round_trip_ms(self.a))
        return CallStats(self.call_id, self.mode, a, b)
