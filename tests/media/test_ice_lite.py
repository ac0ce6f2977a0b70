"""The ICE-lite agent's answers (:mod:`hybridvoice.media.ice_lite`, RFC 8445 §7.3 with the short-
term credentials of RFC 8489 §9.1): valid checks answered and signed, nominations, and every
kind of bad check refused with the right code or dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.media.ice_lite import (
    ERROR_BURST,
    ERROR_RATE,
    IceCounters,
    IceCredentials,
    IceLite,
    host_priority,
)
from hybridvoice.media.stun import (
    Attr,
    Method,
    StunClass,
    StunMessage,
    encode,
    fingerprint_ok,
    integrity_ok,
    parse,
)

OURS = IceCredentials("edge", "0123456789abcdef012345")
THEIRS = "clnt"
TID = bytes(range(12))
SOURCE = ("203.0.113.5", 40000)


def check(
    username: str = f"{OURS.ufrag}:{THEIRS}",
    key: bytes | None = OURS.pwd.encode(),
    *extra: tuple[int, bytes],
    fingerprint: bool = True,
    cls: int = StunClass.REQUEST,
) -> bytes:
    attributes = (
        (Attr.USERNAME, username.encode()),
        (Attr.PRIORITY, (1853824767).to_bytes(4, "big")),
        (Attr.ICE_CONTROLLING, bytes(8)),
        *extra,
    )
    return encode(StunMessage(Method.BINDING, cls, TID, attributes), key, fingerprint=fingerprint)


def code_of(reply: bytes | None) -> int | None:
    assert reply is not None
    message = parse(reply)
    assert message.transaction_id == TID and fingerprint_ok(message)
    found = message.error_code()
    return None if found is None else found[0]


def test_a_valid_check_is_answered_signed_and_nominates_with_use_candidate() -> None:
    counters = IceCounters()
    agent = IceLite(OURS, counters)
    agent.set_remote(THEIRS)
    reply, nominated = agent.on_stun(check(), SOURCE, 1, 0.0)
    assert not nominated and agent.selected == {}
    assert reply is not None
    answer = parse(reply)
    assert (answer.method, answer.cls) == (Method.BINDING, StunClass.SUCCESS)
    assert answer.transaction_id == TID
    assert answer.xor_address(Attr.XOR_MAPPED_ADDRESS) == SOURCE
    assert integrity_ok(answer, OURS.pwd.encode()) and fingerprint_ok(answer)
    nominating = check(f"edge:{THEIRS}", OURS.pwd.encode(), (Attr.USE_CANDIDATE, b""))
    reply, nominated = agent.on_stun(nominating, ("198.51.100.7", 9), 2, 0.0)
    assert nominated and reply is not None and agent.selected == {2: ("198.51.100.7", 9)}
    assert (counters.answered, counters.nominations, counters.refused) == (2, 1, 0)


def test_the_peer_ufrag_is_taken_before_it_is_known() -> None:
    agent = IceLite(OURS)  # a late offer: the client's SDP comes after its checks may
    assert code_of(agent.on_stun(check("edge:anything"), SOURCE, 1, 0.0)[0]) is None


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (check(key=b"wrong-password-0123456789"), 401),
        (check("other:clnt"), 401),
        (check("edge:someone-else"), 401),
        (check("edge"), 401),
        (check(key=None), 400),
        (check(f"edge:{THEIRS}", OURS.pwd.encode(), (Attr.ICE_CONTROLLED, bytes(8))), 487),
    ],
    ids=["bad-integrity", "not-our-ufrag", "not-their-ufrag", "no-colon", "no-integrity",
         "both-controlled"],
)  # fmt: skip
def test_bad_checks_get_their_error_code(request_bytes: bytes, code: int) -> None:
    counters = IceCounters()
    agent = IceLite(OURS, counters)
    agent.set_remote(THEIRS)
    reply, nominated = agent.on_stun(request_bytes, SOURCE, 1, 0.0)
    assert not nominated and code_of(reply) == code
    answer = parse(reply or b"")
    assert integrity_ok(answer, OURS.pwd.encode()) is (code == 487)  # 400/401: unsigned
    assert counters.refused == 1 and counters.answered == 0


def test_garbage_indications_and_bad_fingerprints_are_dropped_silently() -> None:
    agent = IceLite(OURS)
    bad_fingerprint = bytearray(check())
    bad_fingerprint[-1] ^= 0xFF
    indication = check(cls=StunClass.INDICATION)
    for data in (b"\x00\x01garbage", bytes(bad_fingerprint), indication, b""):
        assert agent.on_stun(data, SOURCE, 1, 0.0) == (None, False)
    assert agent.counters.refused == 3  # the indication is not a refusal
    assert agent.selected == {}


def test_error_answers_are_rate_limited_and_a_good_peer_never_is() -> None:
    """Anyone can send checks with a forged source: the agent's error answers (here 401) stop
    after the burst, come back at the refill rate, and valid checks are answered throughout."""
    counters = IceCounters()
    agent = IceLite(OURS, counters)
    agent.set_remote(THEIRS)
    forged = check(key=b"wrong-password-0123456789")
    answers = [agent.on_stun(forged, SOURCE, 1, 100.0)[0] for _ in range(ERROR_BURST + 30)]
    assert all(code_of(a) == 401 for a in answers[:ERROR_BURST])
    assert answers[ERROR_BURST:] == [None] * 30
    assert (counters.refused, counters.rate_limited) == (ERROR_BURST + 30, 30)
    assert code_of(agent.on_stun(check(), SOURCE, 1, 100.0)[0]) is None  # the real peer
    # one second later: ERROR_RATE more answers, then silence again
    later = [agent.on_stun(forged, SOURCE, 1, 101.0)[0] for _ in range(int(ERROR_RATE) + 5)]
    assert sum(a is not None for a in later) == int(ERROR_RATE)
    # a long quiet spell refills the bucket only up to the burst
    again = [agent.on_stun(forged, SOURCE, 1, 10_000.0)[0] for _ in range(ERROR_BURST + 1)]
    assert sum(a is not None for a in again) == ERROR_BURST


def test_credentials_and_priorities() -> None:
    with pytest.raises(ValueError, match="ice-ufrag"):
        IceCredentials("abc", "0123456789abcdef012345")
    with pytest.raises(ValueError, match="ice-pwd"):
        IceCredentials("abcd", "short")
    with pytest.raises(ValueError, match="ice-ufrag"):
        IceCredentials("ab:cd", "0123456789abcdef012345")
    assert host_priority(1) == 2130706431 and host_priority(2) == 2130706430


@given(st.binary(max_size=200))
def test_any_bytes_give_an_answer_or_nothing_never_an_exception(data: bytes) -> None:
    agent = IceLite(OURS)
    reply, nominated = agent.on_stun(data, SOURCE, 1, 0.0)
    assert not nominated and agent.selected == {}
    if reply is not None:
        assert parse(reply).cls == StunClass.ERROR


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_a_flipped_byte_never_nominates(where: int, mask: int) -> None:
    valid = bytearray(check(f"edge:{THEIRS}", OURS.pwd.encode(), (Attr.USE_CANDIDATE, b"")))
    index = where % (len(valid) - 8)  # what MESSAGE-INTEGRITY covers (FINGERPRINT: the rest)
    if mask == 0 or index < 2:  # unchanged, or another message type altogether
        return
    valid[index] ^= mask
    agent = IceLite(OURS)
    agent.set_remote(THEIRS)
    _, nominated = agent.on_stun(bytes(valid), SOURCE, 1, 0.0)
    assert not nominated
