"""Dial plan: normalisation by rules, E.164 extraction, international numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.online.dialplan import e164_of, is_international, normalise
from hybridvoice.online.models import DialPlanRule

RULES = [
    DialPlanRule(name="intl", pattern=r"00(\d+)", translation="+$1", priority=1),
    DialPlanRule(name="national", pattern=r"0(\d{6,12})", translation=r"+46\1", priority=2),
    DialPlanRule(name="emergency", pattern=r"112|911", translation="112", priority=0),
    DialPlanRule(name="extension", pattern=r"(\d{4})", translation="+4681234$1", priority=3),
]


@pytest.mark.parametrize(
    ("dialled", "expected"),
    [
        ("+46812345678", "+46812345678"),
        ("+46 8-123 456 78", "+46812345678"),
        ("0812345678", "+46812345678"),
        ("08 (123) 456 78", "+46812345678"),
        ("004412345678", "+4412345678"),
        ("112", "112"),
        ("911", "112"),
        ("5678", "+46812345678"),
        ("12", None),
        ("abc", None),
        ("", None),
    ],
)
def test_normalise(dialled: str, expected: str | None) -> None:
    assert normalise(dialled, RULES) == expected


def test_normalise_follows_priority_not_list_order() -> None:
    catch_all = DialPlanRule(name="all", pattern=r"(\d+)", translation="+1$1", priority=9)
    first = DialPlanRule(name="first", pattern=r"(\d+)", translation="+46$1", priority=-1)
    assert normalise("123", [catch_all, first]) == "+46123"
    assert normalise("123", []) is None


@given(st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True))
def test_e164_passes_unchanged(number: str) -> None:
    assert normalise(number, RULES) == number
    assert e164_of(number) == number
    assert e164_of(f"tel:{number}") == number
    assert e164_of(f"sip:{number}@contoso.com;user=phone") == number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tel:+1-201-555-0123", "+12015550123"),
        ("<tel:+46812345678>", "+46812345678"),
        ("sip:+46812345678@contoso.com;user=phone", "+46812345678"),
        ("sip:+46812345678;ext=12@contoso.com;user=phone", "+46812345678"),
        ("sips:+4681234@10.0.0.1:5061", "+4681234"),
        ("tel:5550123;phone-context=example.com", None),
        ("sip:alice@contoso.com", None),
        ("sip:contoso.com", None),
        ("sip:0812345678@contoso.com", None),
        ("http://example.com", None),
        ("sip:bad uri", None),
        ("+46 8 123", "+468123"),
        ("46812345678", None),
    ],
)
def test_e164_of(text: str, expected: str | None) -> None:
    assert e164_of(text) == expected


def test_is_international() -> None:
    assert not is_international("+46812345678", "46")
    assert is_international("+4412345678", "46")
    assert not is_international("+12015550123", "+1")
    assert is_international("+46812345678", "1")
