"""The TURN relay's request rate limit per source (RFC 8656 §21.4), on a fake clock."""

from __future__ import annotations

import random

import pytest

from hybridvoice.media.mras import MrasVerifier
from hybridvoice.media.stun import Method, StunClass, StunMessage, encode
from hybridvoice.media.turn import TurnServer
from hybridvoice.media.turn_limits import SourceRateLimit
from hybridvoice.media.turn_state import RelayPortRange, ToClient, TurnConfig


def test_bucket_allows_the_burst_then_the_rate() -> None:
    limit = SourceRateLimit(rate=2.0, burst=3)
    assert [limit.allow("198.51.100.1", 100.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow("198.51.100.2", 100.0)  # another source has its own bucket
    assert not limit.allow("198.51.100.1", 100.25)  # half a token
    assert limit.allow("198.51.100.1", 100.5)  # one token after 0.5 s at 2/s
    assert not limit.allow("198.51.100.1", 100.5)
    # refilled up to the burst, never beyond
    assert [limit.allow("198.51.100.1", 1000.0) for _ in range(4)] == [True, True, True, False]


def test_buckets_are_capped() -> None:
    limit = SourceRateLimit(rate=1.0, burst=1, max_sources=10)
    for i in range(100):
        limit.allow(f"10.0.0.{i}", float(i))
    assert len(limit) <= 10
    assert limit.allow("10.0.0.99", 99.0) is False  # the newest source is still remembered


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rate"):
        SourceRateLimit(rate=0, burst=1)


def _binding() -> bytes:
    return encode(StunMessage(Method.BINDING, StunClass.REQUEST, random.randbytes(12)))


def test_server_drops_requests_over_the_limit_and_counts_them() -> None:
    config = TurnConfig(
        realm="r", external_ip="192.0.2.1", requests_per_second=1.0, request_burst=2
    )
    server = TurnServer(
        config, MrasVerifier(b"s", wall=lambda: 0.0), RelayPortRange(50000, 50009),
        random.Random(1),
    )  # fmt: skip
    client, other = ("198.51.100.7", 4000), ("198.51.100.8", 4000)
    answers = [server.from_client(_binding(), client, 10.0) for _ in range(5)]
    assert [len(a) for a in answers] == [1, 1, 0, 0, 0]
    assert isinstance(answers[0][0], ToClient)
    assert server.counters["rate_limited"] == 3
    assert len(server.from_client(_binding(), other, 10.0)) == 1
    # the same source, another port: the limit is per IP address
    assert server.from_client(_binding(), ("198.51.100.7", 4001), 10.0) == []
    assert len(server.from_client(_binding(), client, 11.0)) == 1  # a token a second


def test_no_limit_by_default() -> None:
    server = TurnServer(
        TurnConfig(realm="r", external_ip="192.0.2.1"), MrasVerifier(b"s", wall=lambda: 0.0),
        RelayPortRange(50000, 50009), random.Random(1),
    )  # fmt: skip
    for _ in range(200):
        assert len(server.from_client(_binding(), ("198.51.100.7", 4000), 10.0)) == 1
    assert server.counters["rate_limited"] == 0
