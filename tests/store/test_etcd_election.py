"""An etcd leader election in progress is waited out, not reported as a lost quorum.

While the members elect a leader (one was stopped, or raft heartbeats came late on a starved
machine) each answers "no leader" at once. The store tried every member once and failed the
request with "no member answered (the cluster has no quorum ...)": a write made a moment
after an election began failed though the cluster was healthy again a second later. Now it
tries the members again until its ``timeout`` has passed; a cluster without a leader for that
long is still an error, and members that refuse the connection are not waited for. The
members here are fakes (no etcd process): what each answers is scripted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aetcd.exceptions as aetcd_errors
import pytest

from hybridvoice.store.etcd_kv import EtcdStore
from hybridvoice.store.kv import StoreUnavailableError

MEMBERS = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]


def scripted(
    answers: list[Exception | str], tried: list[int] | None = None
) -> Callable[[int], Awaitable[str]]:
    """An operation whose successive tries (any member) raise or return ``answers`` in turn;
    the last answer repeats. ``tried`` gets the member of each try."""
    tries = iter(answers)
    last: list[Exception | str] = []

    async def op(member: int) -> str:
        if tried is not None:
            tried.append(member)
        answer = next(tries, None)
        if answer is None:
            answer = last[0]
        last[:] = [answer]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return op


def store(timeout: float) -> EtcdStore:
    s = EtcdStore(MEMBERS, timeout=timeout)
    s._client = lambda i: i  # type: ignore[method-assign,assignment,return-value]
    return s


def no_leader() -> Exception:
    return aetcd_errors.ClientError("etcdserver: no leader")


def refused() -> Exception:
    return aetcd_errors.ConnectionFailedError("connection refused")


def test_a_write_during_an_election_waits_for_the_new_leader() -> None:
    async def main() -> str:
        # two passes over the three members find no leader, then one is elected
        op = scripted([no_leader()] * 6 + ["written"])
        return await store(timeout=5.0)._call(op, write=True)  # type: ignore[arg-type]

    assert asyncio.run(main()) == "written"


def test_no_leader_for_the_whole_timeout_is_the_quorum_error() -> None:
    tried: list[int] = []

    async def main() -> None:
        op = scripted([no_leader()], tried)
        await store(timeout=1.0)._call(op, write=False)  # type: ignore[arg-type]

    with pytest.raises(StoreUnavailableError, match="no quorum") as caught:
        asyncio.run(main())
    assert "127.0.0.1:3: etcdserver: no leader" in str(caught.value)
    assert len(tried) > len(MEMBERS) and len(tried) % len(MEMBERS) == 0  # whole passes


def test_members_that_refuse_the_connection_are_not_waited_for() -> None:
    tried: list[int] = []

    async def main() -> None:
        op = scripted([refused()], tried)
        await store(timeout=30.0)._call(op, write=True)  # type: ignore[arg-type]

    with pytest.raises(StoreUnavailableError, match="no member answered"):
        asyncio.run(main())
    assert tried == [0, 1, 2]  # one pass: a stopped cluster is reported at once
