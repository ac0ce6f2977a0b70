"""Media port pool: 4 ports per call, even RTP ports (RFC 3550 §11), exhaustion, release."""

from __future__ import annotations

import pytest

from hybridvoice.media import DEFAULT_PORT_RANGE, PortPool, PortsExhaustedError


def test_default_range_capacity_and_layout() -> None:
    pool = PortPool()
    assert (pool.first, pool.last) == DEFAULT_PORT_RANGE == (49152, 57500)
    assert pool.capacity == (57500 - 49152 + 1) // 4
    block = pool.allocate()
    assert block.a_rtp % 2 == 0 and block.b_rtp % 2 == 0
    assert (block.a_rtcp, block.b_rtp, block.b_rtcp) == (
        block.a_rtp + 1,
        block.a_rtp + 2,
        block.a_rtp + 3,
    )
    assert block.b_rtcp <= 57500


def test_odd_start_is_aligned_and_blocks_stay_in_range() -> None:
    pool = PortPool(30001, 30017)
    blocks = [pool.allocate() for _ in range(pool.capacity)]
    assert [b.base for b in blocks] == [30002, 30006, 30010, 30014]
    assert all(b.a_rtp >= 30001 and b.b_rtcp <= 30017 for b in blocks)


def test_exhaustion_and_release() -> None:
    pool = PortPool(40000, 40011)
    blocks = [pool.allocate() for _ in range(3)]
    with pytest.raises(PortsExhaustedError, match="3 media port blocks of 40000-40011"):
        pool.allocate()
    pool.release(blocks[1])
    pool.release(blocks[1])  # idempotent
    assert pool.available == 1 and pool.in_use == 2
    assert pool.allocate() == blocks[1]


def test_release_is_fifo() -> None:
    pool = PortPool(40000, 40015)
    first = pool.allocate()
    pool.release(first)
    assert pool.allocate() != first  # the just-freed block goes to the back


@pytest.mark.parametrize("rng", [(0, 10), (5000, 4000), (40000, 40002)])
def test_bad_ranges(rng: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        PortPool(*rng)
