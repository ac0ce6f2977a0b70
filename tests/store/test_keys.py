"""The key layout: every record's key parses back to it, names cannot reach into other keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.store.keys import (
    KeyRef,
    parse_key,
    site_key,
    site_prefix,
    tenant_key,
    tenant_prefix,
)
from hybridvoice.store.kv import StoreError

names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
)


def test_layout() -> None:
    assert tenant_key("contoso", "user", "sip:alice@contoso.com") == (
        "hv/t/contoso/user/sip:alice@contoso.com"
    )
    assert site_key("ams", "gateway", "gw1.contoso.com") == "hv/s/ams/gateway/gw1.contoso.com"
    assert tenant_key("contoso", "reg", "a/b%c").startswith(tenant_prefix("contoso", "reg"))
    assert site_prefix("ams") == "hv/s/ams/"


@given(names, names)
def test_keys_round_trip_and_stay_under_their_prefix(owner: str, name: str) -> None:
    key = tenant_key(owner, "user", name)
    assert parse_key(key) == KeyRef("tenant", owner, "user", name)
    assert key.startswith(tenant_prefix(owner, "user"))
    assert parse_key(site_key(owner, "route", name)) == KeyRef("site", owner, "route", name)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: tenant_key("", "user", "x"), "tenant ''"),
        (lambda: tenant_key("t", "User", "x"), "kind 'User'"),
        (lambda: site_key("s", "gateway", ""), "gateway name ''"),
        (lambda: parse_key("hv/x/a/b/c"), "not hv/t|s"),
        (lambda: parse_key("other/t/a/user/x"), "not hv/t|s"),
    ],
)
def test_bad_names_are_refused_naming_them(call: object, named: str) -> None:
    with pytest.raises(StoreError) as caught:
        call()  # type: ignore[operator]
    assert named in str(caught.value)
