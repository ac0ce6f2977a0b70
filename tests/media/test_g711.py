"""G.711 mu-law <-> A-law tables (ITU-T G.711 Tables 3/4) against the G.711 formulas."""

from __future__ import annotations

from hybridvoice.media import ALAW_TO_ULAW, ULAW_TO_ALAW, alaw_to_ulaw, ulaw_to_alaw
from hybridvoice.media.g711 import linear_to_ulaw, transcode_table, ulaw_tone


def ulaw_decode(code: int) -> int:
    """G.711 mu-law decoder output in 14-bit units (+-8031 max): §2 Table 2a formula."""
    u = ~code & 0xFF
    seg = (u >> 4) & 7
    mag = (((u & 0x0F) << 3) + 0x84 << seg) - 0x84  # 16-bit scale, 4x the 14-bit value
    return -mag if u & 0x80 else mag


def alaw_decode(code: int) -> int:
    """G.711 A-law decoder output in 16-bit scale (8x the 13-bit value): Table 1a formula."""
    a = code ^ 0x55
    seg = (a >> 4) & 7
    mag = ((a & 0x0F) << 4) + 8 if seg == 0 else (((a & 0x0F) << 4) + 0x108) << (seg - 1)
    return mag if a & 0x80 else -mag


# Equal overload points: mu-law's 8159 and A-law's 4096 are both the maximum (G.711 §3, §4).
SCALE = 8159 / 8192


def nearest(value: float, codes: list[int], decode: object, scale: float) -> list[int]:
    dist = {c: abs(decode(c) * scale - value) for c in codes}  # type: ignore[operator]
    best = min(dist.values())
    return [c for c, d in dist.items() if d == best]


def same_sign(code: int) -> list[int]:
    return [c for c in range(256) if (c & 0x80) == (code & 0x80)]


# Where the G.711 table is not the nearest value at equal overload: two magnitudes of the
# 4th mu-law segment (both signs) map one A-law step further out (the G.711 choice keeps
# A->mu->A transparent there).
TABLE3_EXCEPTIONS = {78, 79, 206, 207}


def test_tables_are_256_byte_translate_tables() -> None:
    assert len(ULAW_TO_ALAW) == len(ALAW_TO_ULAW) == 256
    payload = bytes(range(256))
    assert ulaw_to_alaw(payload) == payload.translate(ULAW_TO_ALAW)
    assert alaw_to_ulaw(memoryview(payload)) == payload.translate(ALAW_TO_ULAW)


def test_mu_to_a_matches_g711_formulas() -> None:
    for u in range(256):
        best = nearest(ulaw_decode(u), same_sign(ULAW_TO_ALAW[u] | (u & 0x80)), alaw_decode, SCALE)
        if u in TABLE3_EXCEPTIONS:
            assert ULAW_TO_ALAW[u] not in best
            # ... and it is the neighbouring A-law level, one step away.
            assert abs(alaw_decode(ULAW_TO_ALAW[u]) - alaw_decode(best[0])) in (32, 64)
        else:
            assert best == [ULAW_TO_ALAW[u]], u


def test_a_to_mu_matches_g711_formulas() -> None:
    for a in range(256):
        value = alaw_decode(a) * SCALE
        assert nearest(value, same_sign(a), ulaw_decode, 1.0) == [ALAW_TO_ULAW[a]]


def test_sign_and_silence() -> None:
    assert ULAW_TO_ALAW[0xFF] == 0xD5 and ULAW_TO_ALAW[0x7F] == 0x55  # +0 / -0
    # A-law has no zero level: its smallest magnitudes go to the smallest non-zero mu-law.
    assert ALAW_TO_ULAW[0xD5] == 0xFE and ALAW_TO_ULAW[0x55] == 0x7E
    assert ULAW_TO_ALAW[0x80] == 0xAA and ULAW_TO_ALAW[0x00] == 0x2A  # full scale
    for u in range(256):
        assert ULAW_TO_ALAW[u] & 0x80 == u & 0x80 and ALAW_TO_ULAW[u] & 0x80 == u & 0x80


def test_round_trip_stability() -> None:
    u2a, a2u = ULAW_TO_ALAW, ALAW_TO_ULAW
    # mu -> A -> mu changes a code at most once: a second trip is the identity.
    once = bytes(range(256)).translate(u2a).translate(a2u)
    assert once.translate(u2a).translate(a2u) == once
    twice_a = bytes(range(256)).translate(a2u).translate(u2a)
    assert twice_a.translate(a2u).translate(u2a) == twice_a
    # Most codes survive the trip unchanged; the others move by one quantisation step.
    assert sum(once[u] == u for u in range(256)) >= 240
    for u in range(256):
        assert abs(ulaw_decode(once[u]) - ulaw_decode(u)) <= 256


def test_transcode_table_selection() -> None:
    assert transcode_table(0, 8) is ULAW_TO_ALAW
    assert transcode_table(8, 0) is ALAW_TO_ULAW
    assert transcode_table(0, 0) is None


def test_linear_to_ulaw_matches_the_reference_points() -> None:
    """G.711 mu-law: 0 -> 0xFF, the extremes -> 0x80 / 0x00, sign in the top bit; and the
    decoded value of every code re-encodes to the same code (the encoder inverts the
    decoder, Sun g711.c)."""
    assert linear_to_ulaw(0) == 0xFF
    assert linear_to_ulaw(32767) == 0x80
    assert linear_to_ulaw(-32768) == 0x00
    for code in range(256):
        if code == 0x7F:  # negative zero decodes to 0, which encodes as positive zero
            continue
        assert linear_to_ulaw(ulaw_decode(code)) == code


def test_ulaw_tone_is_periodic() -> None:
    tone = ulaw_tone(1000.0, 160)  # 1 kHz at 8 kHz: a period of 8 samples
    assert len(tone) == 160
    assert tone[:8] == tone[8:16] == tone[152:160]
    assert len(set(tone)) > 4
