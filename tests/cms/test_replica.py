"""LocalStore: apply in version order, idempotence, gaps, snapshots, durability, listeners."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.cms.changes import Change
from hybridvoice.cms.replica import LocalStore, ReplicaError

ALICE = "sip:alice@contoso.com"
BOB = "sip:bob@contoso.com"


def user(version: int, uri: str, name: str | None) -> Change:
    return Change(version, "user", uri, None if name is None else {"display_name": name})


def test_empty_replica() -> None:
    store = LocalStore()
    assert store.version == 0
    assert store.updated_at is None
    assert store.get("user", ALICE) is None
    assert store.all("site") == {}


def test_apply_writes_rows_and_version() -> None:
    clock = iter([10.0, 11.0])
    store = LocalStore(clock=lambda: next(clock))
    version = store.apply([
        Change(1, "domain", "contoso.com", {}),
        user(2, ALICE, "Alice"),
        Change(3, "network_config", "global", {"media_bypass_enabled": True, "subnets": ["10/8"]}),
    ])  # fmt: skip
    assert version == store.version == 3
    assert store.updated_at == 10.0
    assert store.get("user", ALICE) == {"display_name": "Alice"}
    assert store.get("network_config", "global") == {
        "media_bypass_enabled": True, "subnets": ["10/8"]
    }  # fmt: skip
    assert list(store.all("domain")) == ["contoso.com"]
    store.apply([user(4, ALICE, None)])
    assert store.get("user", ALICE) is None
    assert store.updated_at == 11.0


def test_values_are_read_only() -> None:
    store = LocalStore()
    store.apply([user(1, ALICE, "Alice")])
    value = store.get("user", ALICE)
    assert value is not None
    with pytest.raises(TypeError):
        value["display_name"] = "Mallory"  # type: ignore[index]
    rows = store.all("user")
    rows.clear()  # a copy: the replica is untouched
    assert store.get("user", ALICE) == {"display_name": "Alice"}


def test_apply_is_idempotent_and_orders_by_version() -> None:
    store = LocalStore()
    batch = [user(2, ALICE, "Alice B"), user(1, ALICE, "Alice A"), user(3, BOB, "Bob")]
    assert store.apply(batch) == 3
    assert store.get("user", ALICE) == {"display_name": "Alice B"}  # 2 after 1
    seen: list[list[Change]] = []
    store.subscribe(seen.append)
    assert store.apply(batch) == 3  # a retried poll delivers it again
    assert store.apply([user(2, ALICE, "stale")]) == 3
    assert store.get("user", ALICE) == {"display_name": "Alice B"}
    assert seen == []  # nothing new, nobody told


def test_gaps_are_accepted() -> None:
    store = LocalStore()
    store.apply([user(1, ALICE, "A")])
    assert store.apply([user(7, BOB, "B"), user(12, ALICE, "A2")]) == 12
    assert store.get("user", BOB) == {"display_name": "B"}
    assert store.get("user", ALICE) == {"display_name": "A2"}


def test_deleting_a_missing_row_is_fine() -> None:
    store = LocalStore()
    assert store.apply([user(5, ALICE, None)]) == 5
    assert store.get("user", ALICE) is None


def test_unknown_kind_is_refused_on_read() -> None:
    store = LocalStore()
    with pytest.raises(ReplicaError, match="unknown kind"):
        store.get("voicemail", "x")
    with pytest.raises(ReplicaError):
        store.all("voicemail")


def test_a_bad_value_rolls_back_the_whole_batch() -> None:
    store = LocalStore()
    store.apply([user(1, ALICE, "A")])
    bad = Change(3, "user", BOB, {"when": object()})
    with pytest.raises(ReplicaError, match="change 3"):
        store.apply([user(2, ALICE, "A2"), bad])
    assert store.version == 1
    assert store.get("user", ALICE) == {"display_name": "A"}


def test_snapshot_replaces_everything_and_reports_the_difference() -> None:
    store = LocalStore()
    store.apply([user(1, ALICE, "A"), user(2, BOB, "B"), Change(3, "domain", "contoso.com", {})])
    seen: list[list[Change]] = []
    store.subscribe(seen.append)
    snapshot = [
        user(2, BOB, "B"),  # unchanged
        user(40, ALICE, "A-new"),  # changed
        Change(41, "site", "Amsterdam", {"edge_fqdn": "edge.contoso.com"}),  # new
    ]  # the domain is gone
    assert store.load_snapshot(50, snapshot) == 50
    assert store.version == 50
    assert store.all("user") == {ALICE: {"display_name": "A-new"}, BOB: {"display_name": "B"}}
    assert store.all("domain") == {}
    assert store.get("site", "Amsterdam") == {"edge_fqdn": "edge.contoso.com"}
    [diff] = seen
    assert sorted((c.kind, c.key, c.value is None) for c in diff) == [
        ("domain", "contoso.com", True),
        ("site", "Amsterdam", False),
        ("user", ALICE, False),
    ]


def test_snapshot_can_go_back_in_versions() -> None:
    """The cloud's store was restored from a backup: the replica follows it."""
    store = LocalStore()
    store.apply([user(90, ALICE, "A")])
    store.load_snapshot(0, [])
    assert store.version == 0
    assert store.all("user") == {}


def test_snapshot_refuses_rows_from_the_future() -> None:
    store = LocalStore()
    store.apply([user(1, ALICE, "A")])
    with pytest.raises(ReplicaError, match="future"):
        store.load_snapshot(5, [user(6, BOB, "B")])
    assert store.get("user", ALICE) == {"display_name": "A"}
    assert store.version == 1


def test_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "replica.db"
    with LocalStore(path) as store:
        store.apply([user(1, ALICE, "A"), user(2, BOB, "B"), user(3, BOB, None)])
    with LocalStore(path) as again:
        assert again.version == 3
        assert again.all("user") == {ALICE: {"display_name": "A"}}
        again.load_snapshot(9, [Change(8, "dialplan", "intl", {"pattern": "^00"})])
    with LocalStore(path) as third:
        assert third.version == 9
        assert third.all("user") == {}
        assert third.get("dialplan", "intl") == {"pattern": "^00"}
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_reads_survive_close_but_writes_do_not() -> None:
    store = LocalStore()
    store.apply([user(1, ALICE, "A")])
    store.close()
    assert store.get("user", ALICE) == {"display_name": "A"}
    with pytest.raises(ReplicaError, match="closed"):
        store.apply([user(2, BOB, "B")])


def test_listeners_get_applied_changes_and_can_unsubscribe() -> None:
    store = LocalStore()
    first: list[list[Change]] = []
    second: list[list[Change]] = []

    def broken(changes: list[Change]) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    unsubscribe = store.subscribe(first.append)
    store.subscribe(second.append)
    store.apply([user(1, ALICE, "A"), user(2, BOB, "B")])
    assert [c.version for c in first[0]] == [1, 2]
    store.apply([user(2, BOB, "B"), user(3, BOB, None)])
    assert [c.version for c in first[1]] == [3]  # the duplicate is not reported
    unsubscribe()
    unsubscribe()  # twice is harmless
    store.apply([user(4, ALICE, None)])
    assert len(first) == 2
    assert len(second) == 3
    assert store.version == 4  # the broken listener changed nothing


KEYS = st.sampled_from(["a", "b", "c"])
NAMES = st.none() | st.sampled_from(["x", "y"])


@given(st.lists(st.tuples(KEYS, NAMES), max_size=20), st.integers(0, 20))
def test_any_split_into_batches_gives_the_same_replica(
    writes: list[tuple[str, str | None]], cut: int
) -> None:
    """Batches, retries and overlaps end where one batch of everything ends."""
    changes = [user(i + 1, key, name) for i, (key, name) in enumerate(writes)]
    whole = LocalStore()
    whole.apply(changes)
    pieces = LocalStore()
    pieces.apply(changes[:cut])
    pieces.apply(changes[max(cut - 3, 0) :])  # overlapping retry
    pieces.apply(changes)
    assert pieces.version == whole.version == len(changes)
    assert pieces.all("user") == whole.all("user")
    expected: dict[str, dict[str, str]] = {}
    for key, name in writes:
        if name is None:
            expected.pop(key, None)
        else:
            expected[key] = {"display_name": name}
    assert whole.all("user") == expected
