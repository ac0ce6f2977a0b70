"""Messages built in code carry the parsed-value cache of whoever builds them (RFC 3261 §20
values, :mod:`hybridvoice.sip.value_cache`): a dialog's requests (§12.2.1.1) the cache of the
messages that made the dialog, a response (§8.2.6.2) its request's, the UA core's INVITE its
transport's. Their typed views (From, To, Contact, Via) are then parsed once per text, as the
module-level memo did before the cache was injected; and a Via we add to a parsed message is
kept parsed with the same cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hybridvoice.sip import make_response, parse_address, parse_message, parse_uri
from hybridvoice.sip.dialog import Dialog
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.ua_core import UaCore
from hybridvoice.sip.value_cache import ValueCache

INVITE = (
    "INVITE sip:bob@127.0.0.2 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa1\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@example.com>\r\nCall-ID: c1@example.com\r\nCSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n"
)


def invite(cache: ValueCache) -> Request:
    request = parse_message(INVITE.encode(), cache)
    assert isinstance(request, Request)
    return request


def test_a_response_built_for_a_parsed_request_uses_its_cache() -> None:
    cache = ValueCache()
    response = make_response(invite(cache), 180, to_tag="b1")
    assert response.headers.value_cache is cache
    to = response.to
    assert to is not None and to.tag == "b1"
    assert cache.address["<sip:bob@example.com>;tag=b1"] is to


def test_the_requests_of_a_uas_dialog_use_the_cache_of_its_request() -> None:
    cache = ValueCache()
    request = invite(cache)
    dialog = Dialog.from_uas(request, "b1", parse_address("<sip:bob@127.0.0.2>"))
    bye = dialog.create_request("BYE")
    assert bye.headers.value_cache is cache
    from_, to = bye.from_, bye.to
    assert from_ is not None and to is not None
    assert cache.address[str(from_)] is from_ and cache.address[str(to)] is to
    assert bye.to is to  # the typed view, parsed once


def test_the_requests_of_a_uac_dialog_use_the_cache_of_its_response() -> None:
    ours, theirs = ValueCache(), ValueCache()
    request = invite(ours)
    text = bytes(make_response(request, 200, to_tag="b1"))
    response = parse_message(text, theirs)
    assert isinstance(response, Response)
    dialog = Dialog.from_uac(request, response)
    ack = dialog.create_ack(1)
    assert ack.headers.value_cache is theirs
    to = ack.to
    assert to is not None and theirs.address[str(to)] is to


@dataclass(frozen=True)
class Transport:
    """A transport with a value cache (``UdpTransport`` and ``StreamTransport`` have one)."""

    values: ValueCache = field(default_factory=ValueCache)
    kind: str = "UDP"
    sent_by: str = "127.0.0.1:5060"
    advertised: tuple[str, int] = ("127.0.0.1", 5060)


def test_the_ua_cores_invite_uses_its_transports_cache() -> None:
    core = UaCore(rng=random.Random(1))
    transport = Transport()
    leg, _ = core.invite(
        parse_uri("sip:bob@127.0.0.2"),
        from_=parse_address("<sip:alice@example.com>"),
        to=parse_address("<sip:bob@example.com>"),
        sdp=None,
        transport=transport,
    )
    request = leg.session.invite
    assert request.headers.value_cache is transport.values
    assert transport.values.address["<sip:bob@example.com>"] == request.to


def test_a_via_prepended_to_a_parsed_message_is_parsed_with_its_cache() -> None:
    cache = ValueCache()
    request = invite(cache)
    assert request.top_via is not None  # the parsed view exists
    ours = "SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKp1"
    request.headers.prepend("Via", ours)
    assert request.top_via is cache.via[ours]
