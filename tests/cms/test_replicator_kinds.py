"""A change feed from a newer online service: changes of kinds this version does not know are
skipped (the replica goes on with the rest), where they stalled the replicator before."""

from __future__ import annotations

import pytest

from hybridvoice.cms.replicator import FeedError, _changes


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
