"""G.711 mu-law <-> A-law transcoding by table lookup (ITU-T G.711 (11/88) Tables 3 and 4).

ITU-T G.711 defines the direct conversion between the two laws as tables (Table 3: mu-law
to A-law, Table 4: A-law to mu-law) rather than through linear PCM. The 128 entries of each
table below are those tables, indexed by the magnitude code of the source law and giving the
magnitude code of the other law, both counted from 1 at the smallest magnitude (the layout of
the widely used Sun Microsystems g711.c, with its 1994 corrections to one entry of each
table). Sign is carried over, and the even-bit inversion of A-law (0x55) and the all-bit
inversion of mu-law (0xFF) are applied on expansion into 256-byte tables for
``bytes.translate``: conversion then runs at C speed, one lookup per sample (RFC 3551 §4.5.14
PCMU/PCMA payloads carry these 8-bit codes, one per sample).

The conversion is not a bijection (mu-law has 255 distinct values, A-law 256, and their
quantisation steps differ); a second round trip changes nothing (see tests).
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "ALAW_TO_ULAW",
    "PT_PCMA",
    "PT_PCMU",
    "ULAW_TO_ALAW",
    "alaw_to_ulaw",
    "linear_to_ulaw",
    "transcode_table",
    "ulaw_to_alaw",
    "ulaw_tone",
]

PT_PCMU: Final = 0
PT_PCMA: Final = 8

# fmt: off
# G.711 Table 3: mu-law magnitude code (1 = smallest) -> A-law magnitude code.
_U2A: Final = bytes((
    1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
    9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    25, 27, 29, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
    80, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96,
    97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
    113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128,
))
# G.711 Table 4: A-law magnitude code (1 = smallest) -> mu-law magnitude code.
_A2U: Final = bytes((
    1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49,
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64,
    65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
))
# fmt: on


def _ulaw_to_alaw_code(u: int) -> int:
    if u & 0x80:
        return 0xD5 ^ (_U2A[0xFF ^ u] - 1)
    return 0x55 ^ (_U2A[0x7F ^ u] - 1)


def _alaw_to_ulaw_code(a: int) -> int:
    if a & 0x80:
        return 0xFF ^ _A2U[a ^ 0xD5]
    return 0x7F ^ _A2U[a ^ 0x55]


#: ``payload.translate(ULAW_TO_ALAW)`` turns PCMU samples into PCMA samples.
ULAW_TO_ALAW: Final = bytes(_ulaw_to_alaw_code(u) for u in range(256))
#: ``payload.translate(ALAW_TO_ULAW)`` turns PCMA samples into PCMU samples.
ALAW_TO_ULAW: Final = bytes(_alaw_to_ulaw_code(a) for a in range(256))


def ulaw_to_alaw(samples: bytes | bytearray | memoryview) -> bytes:
    """PCMU samples -> PCMA samples (G.711 Table 3)."""
    return bytes(samples).translate(ULAW_TO_ALAW)


def alaw_to_ulaw(samples: bytes | bytearray | memoryview) -> bytes:
    """PCMA samples -> PCMU samples (G.711 Table 4)."""
    return bytes(samples).translate(ALAW_TO_ULAW)


def transcode_table(from_pt: int, to_pt: int) -> bytes | None:
    """The translate table between two static G.711 payload types (RFC 3551 §6), or ``None``
    when they are equal; ``ValueError`` for anything but PCMU (0) and PCMA (8)."""
    if from_pt == to_pt:
        return None
    if (from_pt, to_pt) == (PT_PCMU, PT_PCMA):
        return ULAW_TO_ALAW
    if (from_pt, to_pt) == (PT_PCMA, PT_PCMU):
        return ALAW_TO_ULAW
    raise ValueError(f"no G.711 transcoding from payload type {from_pt} to {to_pt}")


# --- linear PCM -> mu-law (ITU-T G.711 §3.2, the segment encoder of Sun's g711.c) ------------

_ULAW_BIAS: Final = 0x84
_ULAW_CLIP: Final = 32635


def linear_to_ulaw(sample: int) -> int:
    """One 16-bit linear PCM sample as a mu-law code (inverted bits, as sent on the wire)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, _ULAW_CLIP) + _ULAW_BIAS
    exponent = max(0, magnitude.bit_length() - 8)  # segment 0-7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_tone(frequency: float, samples: int, *, amplitude: int = 8000, rate: int = 8000) -> bytes:
    """``samples`` of a sine tone at ``frequency`` Hz as PCMU payload (a test tone)."""
    step = 2 * math.pi * frequency / rate
    return bytes(linear_to_ulaw(round(amplitude * math.sin(step * i))) for i in range(samples))
