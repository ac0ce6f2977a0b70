"""UAS (§8.2), proxy (§16.3) and response (§18.1.2) checks of hybridvoice.sip.validate."""

from __future__ import annotations

import dataclasses

import pytest

from hybridvoice.sip import Request, Response, parse_message
from hybridvoice.sip.validate import (
    UasPolicy,
    check_proxy_request,
    check_request,
    check_response,
    options_response,
)

UAS = UasPolicy()

BASE = [
    ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc"),
    ("Max-Forwards", "70"),
    ("To", "<sip:bob@example.com>"),
    ("From", "Alice <sip:alice@example.com>;tag=a1"),
    ("Call-ID", "call-1@192.0.2.1"),
    ("CSeq", "1 {method}"),
    ("Contact", "<sip:alice@192.0.2.1>"),
]


def make(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *,
    drop: tuple[str, ...] = (),
    extra: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    content_type: str | None = "application/sdp",
) -> Request:
    lines = [f"{method} {uri} SIP/2.0"]
    lines += [f"{n}: {v.format(method=method)}" for n, v in BASE if n not in drop]
    lines += [f"{n}: {v}" for n, v in extra]
    if body and content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    message = parse_message("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
    assert isinstance(message, Request)
    return message


SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def status(response: Response | None) -> int | None:
    return None if response is None else response.status


# --- the policy ----------------------------------------------------------------------


def test_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        UAS.supported = ("100rel",)  # type: ignore[misc]


def test_a_good_request_passes() -> None:
    assert check_request(make(body=SDP), policy=UAS) is None
    assert check_proxy_request(make(body=SDP), policy=UAS) is None


# --- 400: not a valid request ----------------------------------------------------------


@pytest.mark.parametrize("name", ["To", "From", "Call-ID", "CSeq", "Via"])
def test_missing_mandatory_header_400_names_it(name: str) -> None:
    response = check_request(make(drop=(name,)), policy=UAS, to_tag="t")
    assert response is not None and response.status == 400
    assert response.reason == f"Missing {name}"


def test_missing_max_forwards_is_tolerated_for_rfc2543() -> None:
    assert check_request(make(drop=("Max-Forwards",)), policy=UAS) is None


@pytest.mark.parametrize(
    "extra",
    [
        ("CSeq", "2 INVITE"),
        ("Call-ID", "other@192.0.2.1"),
        ("From", "<sip:eve@example.com>;tag=e"),
        ("To", "<sip:carol@example.com>"),
        ("Max-Forwards", "5"),
        ("Expires", "60"),
    ],
)
def test_several_values_of_a_single_value_header_400(extra: tuple[str, str]) -> None:
    # BASE already has one of each but Expires: add it twice
    response = check_request(make(extra=(extra, extra)), policy=UAS)
    assert response is not None and response.status == 400
    assert response.reason == f"Multiple values in {extra[0]}"


def test_several_contacts_only_matter_for_dialog_creating_requests() -> None:
    two = (("Contact", "<sip:alice@192.0.2.2>"),)
    assert status(check_request(make(extra=two), policy=UAS)) == 400
    registrar = UasPolicy(allowed_methods=("REGISTER",))
    assert check_request(make("REGISTER", "sip:example.com", extra=two), policy=registrar) is None


# --- §8.2.1 method inspection --------------------------------------------------------


def test_known_but_unsupported_method_405_with_allow() -> None:
    response = check_request(make("SUBSCRIBE"), policy=UAS, to_tag="t")
    assert response is not None and response.status == 405
    assert response.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS"


def test_unknown_method_501_with_allow() -> None:
    response = check_request(make("FROBNICATE"), policy=UAS)
    assert response is not None and response.status == 501
    assert response.headers.get("Allow") is not None


def test_ack_is_never_rejected_for_its_method() -> None:
    policy = UasPolicy(allowed_methods=("INVITE",))
    assert check_request(make("ACK"), policy=policy) is None


def test_responses_copy_the_request_and_carry_the_to_tag() -> None:
    request = make("SUBSCRIBE")
    response = check_request(request, policy=UAS, to_tag="uas-tag")
    assert response is not None
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert response.headers.get_all(name) == request.headers.get_all(name)
    assert response.to is not None and response.to.tag == "uas-tag"


# --- §8.2.2 header inspection ----------------------------------------------------------


def test_unsupported_request_uri_scheme_416() -> None:
    request = make(uri="tel:+15551234567")
    assert status(check_request(request, policy=UAS)) == 416
    with_tel = UasPolicy(schemes=("sip", "sips", "tel"))
    assert check_request(request, policy=with_tel) is None


def test_sips_needs_to_be_in_the_policy() -> None:
    request = make(uri="sips:bob@example.com")
    assert check_request(request, policy=UAS) is None
    assert status(check_request(request, policy=UasPolicy(schemes=("sip",)))) == 416


def test_merged_request_482_only_without_to_tag() -> None:
    seen: list[Request] = []

    def merged(request: Request) -> bool:
        seen.append(request)
        return True

    request = make()
    assert status(check_request(request, policy=UAS, is_merged=merged)) == 482
    assert seen == [request]
    in_dialog = make(extra=()).copy()
    in_dialog.headers.set("To", "<sip:bob@example.com>;tag=b1")
    assert check_request(in_dialog, policy=UAS, is_merged=merged) is None
    assert len(seen) == 1


def test_require_420_lists_only_the_unsupported_tags() -> None:
    policy = UasPolicy(supported=("100rel", "timer"))
    request = make(extra=(("Require", "100rel, foo"), ("Require", "Timer, bar")))
    response = check_request(request, policy=policy, to_tag="t")
    assert response is not None and response.status == 420
    assert response.headers.values("Unsupported") == ["foo", "bar"]
    assert check_request(make(extra=(("Require", "100rel"),)), policy=policy) is None


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_require_is_ignored_in_ack_and_cancel(method: str) -> None:
    request = make(method, extra=(("Require", "foo"), ("Proxy-Require", "bar")))
    assert check_request(request, policy=UAS) is None
    assert check_proxy_request(request, policy=UAS) is None


# --- §8.2.3 content processing ----------------------------------------------------------


def test_unknown_content_type_415_with_accept() -> None:
    request = make(body=b"<x/>", content_type="application/unknown+xml")
    response = check_request(request, policy=UAS, to_tag="t")
    assert response is not None and response.status == 415
    assert response.headers.get("Accept") == "application/sdp"
    assert response.to is not None and response.to.tag == "t"


def test_content_type_parameters_and_case_are_ignored() -> None:
    request = make(body=SDP, content_type="Application/SDP; charset=utf-8")
    assert check_request(request, policy=UAS) is None


def test_content_type_without_body_is_not_checked() -> None:
    request = make(extra=(("Content-Type", "application/unknown"),))
    assert check_request(request, policy=UAS) is None


def test_unknown_content_encoding_415_with_accept_encoding() -> None:
    request = make(body=SDP, extra=(("Content-Encoding", "gzip"),))
    response = check_request(request, policy=UAS)
    assert response is not None and response.status == 415
    assert response.headers.get("Accept-Encoding") == "identity"
    gzip = UasPolicy(accepted_encodings=("gzip",))
    assert check_request(request, policy=gzip) is None


def test_unknown_content_language_415_with_accept_language() -> None:
    french = make(body=SDP, extra=(("Content-Language", "fr"),))
    response = check_request(french, policy=UAS)
    assert response is not None and response.status == 415
    assert response.headers.get("Accept-Language") == "en"
    assert check_request(make(body=SDP, extra=(("Content-Language", "en-GB"),)), policy=UAS) is None


# --- 406: Accept that excludes our answer ---------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/sdp", None),
        ("text/plain, application/SDP", None),
        ("application/*", None),
        ("*/*", None),
        ("application/sdp;q=0.5", None),
        ("text/plain", 406),
        ("application/sdp;q=0", 406),
        ("", 406),  # an empty Accept: no body at all (§20.1)
    ],
)
def test_accept_406(accept: str, expected: int | None) -> None:
    request = make(body=SDP, extra=(("Accept", accept),))
    assert status(check_request(request, policy=UAS)) == expected


def test_accept_only_matters_for_methods_we_answer_with_a_body() -> None:
    request = make("OPTIONS", extra=(("Accept", "text/plain"),))
    assert check_request(request, policy=UAS) is None


# --- order of the checks ----------------------------------------------------------------


def test_checks_run_in_rfc_order() -> None:
    everything_wrong = make(
        "SUBSCRIBE",
        "tel:+1555",
        extra=(("Require", "foo"), ("Accept", "text/plain")),
        body=b"x",
        content_type="text/unknown",
    )
    policy = UAS
    assert status(check_request(everything_wrong, policy=policy)) == 405
    policy = dataclasses.replace(policy, allowed_methods=(*UAS.allowed_methods, "SUBSCRIBE"))
    assert status(check_request(everything_wrong, policy=policy)) == 416
    policy = dataclasses.replace(policy, schemes=("sip", "tel"))
    assert status(check_request(everything_wrong, policy=policy)) == 420
    policy = dataclasses.replace(policy, supported=("foo",))
    assert status(check_request(everything_wrong, policy=policy)) == 415
    policy = dataclasses.replace(policy, accepted_types=("text/unknown",))
    policy = dataclasses.replace(policy, answer_methods=("SUBSCRIBE",))
    assert status(check_request(everything_wrong, policy=policy)) == 406


# --- §16.3 proxy checks ------------------------------------------------------------------


def test_proxy_max_forwards_zero_483_but_options_answered() -> None:
    invite = make(extra=()).copy()
    invite.headers.set("Max-Forwards", 0)
    assert status(check_proxy_request(invite, policy=UAS)) == 483
    assert check_request(invite, policy=UAS) is None  # a UAS is the destination
    options = make("OPTIONS").copy()
    options.headers.set("Max-Forwards", 0)
    response = check_proxy_request(options, policy=UasPolicy(supported=("path",)), to_tag="p")
    assert response is not None and response.status == 200
    assert response.headers.get("Supported") == "path"
    assert response.to is not None and response.to.tag == "p"


def test_proxy_loop_detection_hook_482() -> None:
    request = make()
    assert status(check_proxy_request(request, policy=UAS, loop_detected=lambda r: True)) == 482
    assert check_proxy_request(request, policy=UAS, loop_detected=lambda r: False) is None


def test_proxy_require_420_and_require_is_not_the_proxys_business() -> None:
    request = make(extra=(("Proxy-Require", "sec-agree"), ("Require", "foo")))
    response = check_proxy_request(request, policy=UAS)
    assert response is not None and response.status == 420
    assert response.headers.get("Unsupported") == "sec-agree"
    ok = check_proxy_request(request, policy=UasPolicy(supported=("sec-agree",)))
    assert ok is None


def test_proxy_rejects_malformed_and_unknown_scheme() -> None:
    assert status(check_proxy_request(make(drop=("Call-ID",)), policy=UAS)) == 400
    assert status(check_proxy_request(make(uri="im:bob@example.com"), policy=UAS)) == 416


def test_options_response_describes_the_policy() -> None:
    policy = UasPolicy(supported=("replaces", "timer"))
    response = options_response(make("OPTIONS"), policy=policy, to_tag="o")
    assert response.status == 200
    assert response.headers.get("Allow") == "INVITE, ACK, CANCEL, BYE, OPTIONS"
    assert response.headers.get("Accept") == "application/sdp"
    assert response.headers.get("Supported") == "replaces, timer"


# --- §18.1.2 responses -------------------------------------------------------------------


def response_with_vias(*vias: str) -> Response:
    lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in vias)]
    lines += [
        "To: <sip:bob@example.com>;tag=b",
        "From: <sip:alice@example.com>;tag=a",
        "Call-ID: c@h",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
    ]
    message = parse_message("\r\n".join(lines).encode() + b"\r\n\r\n")
    assert isinstance(message, Response)
    return message


@pytest.mark.parametrize(
    ("via", "local", "kept"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", ("192.0.2.1", 5060), True),
        ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", ("192.0.2.1", 5060), True),
        ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", ("192.0.2.1", None), True),
        ("SIP/2.0/UDP Proxy.Example.COM;branch=z9hG4bK1", ("proxy.example.com", None), True),
        ("SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK1", ("192.0.2.1", 5061), True),
        ("SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK1", ("192.0.2.1", 5060), False),
        ("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1", ("2001:db8::1", 5070), True),
        ("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1", ("192.0.2.1", 5060), False),
        ("SIP/2.0/UDP 192.0.2.99;branch=z9hG4bK1", ("192.0.2.1", 5060), False),
    ],
)
def test_response_top_via_must_be_ours(via: str, local: tuple[str, int | None], kept: bool) -> None:
    assert check_response(response_with_vias(via), local_sent_by=[local]) is kept


def test_response_without_via_is_dropped() -> None:
    assert not check_response(response_with_vias(), local_sent_by=[("192.0.2.1", None)])


@pytest.mark.parametrize(
    ("second", "kept"),
    [
        ("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK2", True),
        ("SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK2", False),
        ("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK2;received=255.255.255.255", False),
        ("SIP/2.0/UDP 0.0.0.0;branch=z9hG4bK2", False),
    ],
)
def test_response_to_be_forwarded_to_a_broadcast_address_is_dropped(
    second: str, kept: bool
) -> None:
    response = response_with_vias("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", second)
    assert check_response(response, local_sent_by=[("192.0.2.1", None)]) is kept
