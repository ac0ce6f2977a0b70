"""``[Online] StoreEtcd`` (hybridvoice.cms.settings_online_store): members parsed, a malformed
one refused with the key and the reason."""

from __future__ import annotations

import pytest

from hybridvoice.cms.settings import SettingsError, parse_settings

BASE = {"Common": {"SIPDomains": "contoso.example", "SiteName": "Lab"}}


def online(**keys: object) -> dict[str, object]:
    return {**BASE, "Online": keys}


def test_no_members_is_sqlite() -> None:
    assert parse_settings(BASE).online.store_etcd == ()


@pytest.mark.parametrize(
    "given",
    ["127.0.0.1:2379, db2.example:2479 http://10.0.0.3:2579", ["127.0.0.1:2379",
     "db2.example:2479", "10.0.0.3:2579"]],
)  # fmt: skip
def test_members_as_text_or_a_list(given: object) -> None:
    members = parse_settings(online(StoreEtcd=given)).online.store_etcd
    assert members == ("127.0.0.1:2379", "db2.example:2479", "10.0.0.3:2579")


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("db1", "'db1' is not host:port"),
        ("db1:99999", "port 99999 is not between 1 and 65535"),
        ("a:1,a:1", "a member is named twice"),
        ("https://db1:2379", "is not host:port"),
        (5, "give etcd members as host:port"),
    ],
)
def test_a_malformed_member_is_refused_with_the_key(given: object, reason: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(online(StoreEtcd=given))
    (problem,) = info.value.problems
    assert problem.key == "Online.StoreEtcd"
    assert reason in problem.reason
