"""Number translation (first matching rule wins, as in Direct Routing) and + E.164 toward the
cloud side."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.cms.settings import Gateway, TranslationRule
from hybridvoice.mediation.translate import (
    NumberError,
    NumberTranslator,
    apply_rules,
    cloud_request_uri,
    compile_rules,
    number_of,
    strip_visual,
    to_e164,
)
from hybridvoice.sip.uri import AbsoluteUri, parse_uri


def rules(*pairs: tuple[str, str]) -> tuple[TranslationRule, ...]:
    return tuple(TranslationRule(pattern=p, replacement=r) for p, r in pairs)


def test_first_match_wins() -> None:
    compiled = compile_rules(rules((r"^0(\d{9})$", "+31$1"), (r"^0", "+"), (r".*", "never")))
    assert apply_rules("0201234567", compiled) == "+31201234567"
    assert apply_rules("00441234", compiled) == "+0441234"  # the second rule; not the third


def test_no_match_passes_unchanged() -> None:
    assert apply_rules("+31201234567", compile_rules(rules((r"^0(\d+)$", "+31$1")))) == (
        "+31201234567"
    )


def test_unanchored_pattern_rewrites_the_match_only_once() -> None:
    assert apply_rules("+1-555-0100", compile_rules(rules(("-", "")))) == "+1555-0100"


def test_python_and_named_groups() -> None:
    compiled = compile_rules(
        rules((r"^\+1(?P<area>\d{3})(\d{7})$", r"1${area}\2"), (r"^x(\d)$", r"\g<1>\1"))
    )
    assert apply_rules("+12065550100", compiled) == "12065550100"
    assert apply_rules("x7", compiled) == "77"


def test_translator_per_direction_and_party() -> None:
    gateway = Gateway(
        name="Gateway1",
        ip="10.0.0.1",
        inbound_caller_rules=rules((r"^0(\d+)$", "+31$1")),
        inbound_callee_rules=rules((r"^(\d{4})$", "+3120555$1")),
        outbound_caller_rules=rules((r"^\+31(\d+)$", "0$1")),
        outbound_callee_rules=rules((r"^\+31(\d+)$", "0$1"), (r"^\+", "00")),
    )
    t = NumberTranslator.for_gateway(gateway)
    assert t.inbound_caller("0612345678") == "+31612345678"
    assert t.inbound_callee("1234") == "+31205551234"
    assert t.outbound_caller("+31205551234") == "0205551234"
    assert t.outbound_callee("+31201234567") == "0201234567"
    assert t.outbound_callee("+4420123") == "004420123"
    assert NumberTranslator().inbound_callee("1234") == "1234"


def test_to_e164() -> None:
    assert to_e164("+1 (206) 555-0100") == "+12065550100"
    assert strip_visual("+31.20-123 45") == "+312012345"
    for bad in ("0201234567", "+0123", "+1234567890123456", "+31abc", ""):
        with pytest.raises(NumberError):
            to_e164(bad)


def test_number_of_uris() -> None:
    assert number_of(parse_uri("sip:+31201234567@gw.example.com;user=phone")) == "+31201234567"
    assert number_of(parse_uri("sip:1234;phone-context=example.com@gw.example.com")) == "1234"
    assert number_of(parse_uri("sip:%2B3120@h")) == "+3120"
    assert number_of(parse_uri("tel:+1-206-555-0100")) == "+1-206-555-0100"
    assert number_of(parse_uri("sip:gw.example.com")) is None
    assert number_of(AbsoluteUri("urn", "service:sos")) is None


def test_cloud_request_uri() -> None:
    uri = cloud_request_uri("+31 20 123 4567", "contoso.com")
    assert str(uri) == "sip:+31201234567@contoso.com;user=phone"
    assert parse_uri(str(uri)) == uri
    assert str(cloud_request_uri("+12065550100", "10.0.0.5", 5068)) == (
        "sip:+12065550100@10.0.0.5:5068;user=phone"
    )
    with pytest.raises(NumberError):
        cloud_request_uri("0201234567", "contoso.com")


@given(st.from_regex(r"\+[1-9][0-9]{0,14}", fullmatch=True))
def test_e164_round_trip_through_the_request_uri(number: str) -> None:
    uri = cloud_request_uri(number, "contoso.com")
    assert number_of(parse_uri(str(uri))) == number
