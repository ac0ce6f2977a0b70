"""A change feed from a newer online service: changes of kinds this version does not know are
skipped (the replica goes on with the rest), where they stalled the replicator before."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hybridvoice.cms.replica import LocalStore
from hybridvoice.cms.replicator import FeedError, Replicator, _changes


def test_unknown_kinds_are_skipped_and_the_version_advances() -> None:
    answer = {
        "version": 7,
        "changes": [
            {"version": 5, "kind": "a_kind_of_a_later_version", "key": "x", "value": {}},
            {"version": 6, "kind": "site", "key": "S", "value": {"name": "S"}},
            {"version": 7, "kind": "update_window", "key": "Night", "value": None},
        ],
    }
    version, changes = _changes(answer)  # raised FeedError: unknown change kind
    assert version == 7
    assert [(c.version, c.kind) for c in changes] == [(6, "site"), (7, "update_window")]


def test_malformed_changes_are_still_refused() -> None:
    with pytest.raises(FeedError, match="bad change"):
        _changes({"version": 1, "changes": [{"version": "1", "kind": "site", "key": "S"}]})
    with pytest.raises(FeedError, match="bad change"):
        _changes({"version": 1, "changes": ["not an object"]})


def test_the_replicator_asks_from_after_skipped_changes() -> None:
    """An answer ending with a skipped change must not be asked for again and again (the
    replica's version stays below it; the next poll asks from the answer's version)."""
    asked: list[str] = []

    def feed(request: httpx.Request) -> httpx.Response:
        since = request.url.params.get("since", "")
        asked.append(since)
        if request.url.path == "/v1/snapshot":
            return httpx.Response(200, json={"version": 4, "changes": []})
        if since == "4":
            return httpx.Response(200, json={"version": 6, "more": False, "changes": [
                {"version": 5, "kind": "site", "key": "S", "value": {"name": "S"}},
                {"version": 6, "kind": "a_kind_of_a_later_version", "key": "x", "value": {}},
            ]})  # fmt: skip
        return httpx.Response(200, json={"version": int(since), "more": False, "changes": []})

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(feed)) as client:
            store = LocalStore(":memory:")
            replicator = Replicator(store, "http://online", client=client, wait=0)
            assert await replicator.poll_once() == 4  # a fresh replica loads the snapshot
            assert await replicator.poll_once() == 5
            await replicator.poll_once()
            assert asked == ["", "4", "6"]  # asked "5" again and again before
            assert store.get("site", "S") == {"name": "S"}

    asyncio.run(main())
