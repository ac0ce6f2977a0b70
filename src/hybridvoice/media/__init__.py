"""hybridvoice.media: the sans-IO media core.

RTP (RFC 3550 §5.1, RFC 4733 §2.3), RTCP (RFC 3550 §6.4-§6.6), receive statistics (RFC 3550
A.1/A.3/A.8), G.711 mu-law <-> A-law tables (ITU-T G.711 Tables 3/4), the media port pool
(RFC 3550 §11), relay bookkeeping with latching (RFC 4961) and SDES-SRTP (RFC 4568,
RFC 3711). Imports nothing of ours and never asyncio or socket.
"""

from .errors import MediaError, MediaParseError, PortsExhaustedError
from .g711 import ALAW_TO_ULAW, PT_PCMA, PT_PCMU, ULAW_TO_ALAW, alaw_to_ulaw, ulaw_to_alaw
from .ports import DEFAULT_PORT_RANGE, PORTS_PER_CALL, PortBlock, PortPool
from .relay import (
    Addr,
    CallStats,
    LatchPolicy,
    Leg,
    LegState,
    LegStats,
    RelayMode,
    RelaySession,
    Transcoder,
    transcode_in_place,
)
from .rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    parse_rtcp,
    serialize_rtcp,
)
from .rtp import (
    RTP_HEADER_SIZE,
    RtpPacket,
    TelephoneEvent,
    is_rtcp,
    rtp_header_size,
    rtp_payload_type,
    rtp_sequence,
    rtp_ssrc,
    rtp_timestamp,
    set_payload_type,
)
from .srtp import (
    CryptoAttribute,
    CryptoError,
    CryptoSuite,
    LegCrypto,
    SrtpStream,
    generate_crypto,
    pick_crypto,
)
from .stats import ReceiveStats

__all__ = [
    "ALAW_TO_ULAW",
    "DEFAULT_PORT_RANGE",
    "PORTS_PER_CALL",
    "PT_PCMA",
    "PT_PCMU",
    "RTP_HEADER_SIZE",
    "ULAW_TO_ALAW",
    "Addr",
    "Bye",
    "CallStats",
    "CryptoAttribute",
    "CryptoError",
    "CryptoSuite",
    "LatchPolicy",
    "Leg",
    "LegCrypto",
    "LegState",
    "LegStats",
    "MediaError",
    "MediaParseError",
    "PortBlock",
    "PortPool",
    "PortsExhaustedError",
    "ReceiveStats",
    "ReceiverReport",
    "RelayMode",
    "RelaySession",
    "ReportBlock",
    "RtcpPacket",
    "RtpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "SrtpStream",
    "TelephoneEvent",
    "Transcoder",
    "UnknownRtcp",
    "alaw_to_ulaw",
    "generate_crypto",
    "is_rtcp",
    "parse_rtcp",
    "pick_crypto",
    "rtp_header_size",
    "rtp_payload_type",
    "rtp_sequence",
    "rtp_ssrc",
    "rtp_timestamp",
    "serialize_rtcp",
    "set_payload_type",
    "transcode_in_place",
    "ulaw_to_alaw",
]
