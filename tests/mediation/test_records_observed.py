"""The observed path of a call (mediation.records_observed): the hops worked out of a real
INVITE as the mediation role receives it (Vias stamped on the way, the edge's two
Record-Route entries, the SDP of both legs), and their place in the call record (schema 4;
a version 3 database reads back with no observed path)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hybridvoice.mediation.bypass import BypassPolicy, client_media_from_sdp
from hybridvoice.mediation.records import CallRecordStore, CallState, Direction
from hybridvoice.mediation.records_model import COLUMNS, MIGRATIONS, CallRecord, to_row
from hybridvoice.mediation.records_observed import (
    ObservedHop,
    ObservedPaths,
    audio_address,
    observe_outbound,
)
from hybridvoice.sip.message import Request
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.sdp import SessionDescription

T0 = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)


def sdp(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=x 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


def invite(client: str, media: tuple[str, int]) -> Request:
    """An INVITE as the mediation role gets it: through the online service (127.64.0.1) and
    the edge (external 127.0.0.1:5061, internal 127.0.0.1:5071)."""
    body = sdp(*media)
    text = (
        "INVITE sip:+15550199@127.0.0.1:5068;user=phone;transport=tcp SIP/2.0\r\n"
        "Record-Route: <sip:127.0.0.1:5071;transport=tcp;lr>\r\n"
        "Record-Route: <sip:127.0.0.1:5061;transport=tcp;lr>\r\n"
        "Record-Route: <sip:127.64.0.1:5060;transport=tcp;lr>\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bKedge\r\n"
        "Via: SIP/2.0/TCP 127.64.0.1:5060;branch=z9hG4bKonline\r\n"
        f"Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKcli;rport=40000;received={client}\r\n"
        "Max-Forwards: 68\r\nFrom: <sip:alice@contoso.example>;tag=1\r\n"
        "To: <sip:+15550199@contoso.example>\r\nCall-ID: c-1\r\nCSeq: 1 INVITE\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    message = parse_message(text)
    assert isinstance(message, Request)
    return message


EDGE_RELAY = BypassPolicy(enabled=True, edge_relays=frozenset({"127.0.0.1"}),
                          edge_relay_ports=(30000, 30060))  # fmt: skip


def observe(request: Request, *, bypass: bool) -> ObservedPaths:
    return observe_outbound(
        request, edge_source=("127.0.0.1", 5071), arrived_on=("127.0.0.1", 5062),
        gateway_leg=(("127.0.0.1", 5068), ("127.0.0.1", 5080)), bypass=bypass,
        policy=EDGE_RELAY, answer_to_caller=sdp("127.0.0.1", 40100),
        offer_to_gateway=sdp("127.0.0.1", 40102), gateway_answer=sdp("127.0.0.1", 49152),
    )  # fmt: skip


def ends(hops: tuple[ObservedHop, ...]) -> list[tuple[str, str, int | None, str, str, int | None]]:
    return [(h.source, h.source_host, h.source_port, h.target, h.target_host, h.target_port)
            for h in hops]  # fmt: skip


def test_signalling_from_the_stamped_vias_the_edges_record_route_and_the_legs() -> None:
    paths = observe(invite("127.0.0.1", ("127.0.0.1", 41000)), bypass=False)
    assert ends(paths.signalling) == [
        ("client", "127.0.0.1", 40000, "online", "127.64.0.1", 5060),  # received + rport
        ("online", "127.64.0.1", 5060, "edge", "127.0.0.1", 5061),  # the RR toward it
        ("edge", "127.0.0.1", 5071, "mediation", "127.0.0.1", 5062),
        ("mediation", "127.0.0.1", 5068, "gateway", "127.0.0.1", 5080),
    ]
    assert not any(h.inferred for h in paths.signalling)


def test_media_anchored_bypassed_and_through_the_edge_relay() -> None:
    anchored = observe(invite("127.0.0.1", ("127.0.0.1", 41000)), bypass=False)
    assert ends(anchored.media) == [
        ("client", "127.0.0.1", 41000, "mediation", "127.0.0.1", 40100),
        ("mediation", "127.0.0.1", 40102, "gateway", "127.0.0.1", 49152),
    ]
    bypassed = observe(invite("127.0.0.1", ("127.0.0.1", 41000)), bypass=True)
    assert ends(bypassed.media) == [("client", "127.0.0.1", 41000, "gateway", "127.0.0.1", 49152)]
    internet = observe(invite("127.128.0.1", ("127.0.0.1", 30010)), bypass=False)
    assert ends(internet.media) == [
        ("client", "127.128.0.1", None, "edge", "127.0.0.1", 30010),  # inferred: no port
        ("edge", "127.0.0.1", 30010, "mediation", "127.0.0.1", 40100),
        ("mediation", "127.0.0.1", 40102, "gateway", "127.0.0.1", 49152),
    ]
    assert [h.inferred for h in internet.media] == [True, False, False]
    assert "inferred" in internet.media[0].seen_by


def test_no_offer_no_media_hops() -> None:
    request = invite("127.0.0.1", ("127.0.0.1", 41000))
    paths = observe_outbound(
        request, edge_source=("127.0.0.1", 5071), arrived_on=("127.0.0.1", 5062),
        gateway_leg=(("127.0.0.1", 5068), ("127.0.0.1", 5080)), bypass=False,
        policy=EDGE_RELAY, answer_to_caller=None, offer_to_gateway=None, gateway_answer=None,
    )  # fmt: skip
    assert paths.media == () and len(paths.signalling) == 4


def test_observed_paths_round_trip_through_the_store(tmp_path: Path) -> None:
    paths = observe(invite("127.128.0.1", ("127.0.0.1", 30010)), bypass=False)
    assert ObservedPaths.from_json(paths.to_json()) == paths
    with CallRecordStore(tmp_path / "calls.db") as store:
        store.start("c-1", direction=Direction.OUTBOUND, caller="+1", callee="+2")
        store.observed("c-1", paths)
        store.flush()
        assert store.live("c-1") is not None and store.live("c-1").observed == paths  # type: ignore[union-attr]
    with CallRecordStore(tmp_path / "calls.db") as again:
        found = again.by_call_id("c-1")
        assert found is not None and found.observed == paths


def test_a_version_3_database_gains_the_observed_column(tmp_path: Path) -> None:
    """Records written before schema 4 read back with ``observed`` None."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:3]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (3)")
    old_columns = COLUMNS[: COLUMNS.index("mos_poor") + 1]
    old = CallRecord("r-old", "old-call", Direction.OUTBOUND, "+1", "+2", T0, CallState.ENDED)
    values = to_row(old)[: len(old_columns)]
    conn.execute(
        f"INSERT INTO calls ({', '.join(old_columns)}) VALUES ({', '.join('?' * len(values))})",
        values,
    )
    conn.close()
    with CallRecordStore(path) as store:
        assert store.schema_version_found == 3
        found = store.by_record_id("r-old")
        assert found == old and found.observed is None


def test_names_in_the_route_set_the_edge_address_is_inferred_and_said() -> None:
    """Over TLS the roles record FQDNs (never a bare IP toward a TLS peer): the online
    service's Via gets the edge's ``received`` stamp, the edge's external side stands in."""
    request = invite("127.0.0.1", ("127.0.0.1", 41000))
    text = bytes(request).decode()
    text = text.replace(
        "<sip:127.0.0.1:5061;transport=tcp;lr>", "<sip:edge.contoso.example:5061;transport=tls;lr>"
    )
    stamped = "SIP/2.0/TLS sip.online.example:5061;branch=z9hG4bKonline;received=127.64.0.1"
    text = text.replace("SIP/2.0/TCP 127.64.0.1:5060;branch=z9hG4bKonline", stamped)
    named = parse_message(text.encode())
    assert isinstance(named, Request)
    paths = observe(named, bypass=False)
    assert ends(paths.signalling)[:2] == [
        ("client", "127.0.0.1", 40000, "online", "127.64.0.1", 5061),
        ("online", "127.64.0.1", 5061, "edge", "127.0.0.1", None),
    ]
    assert [h.inferred for h in paths.signalling] == [False, True, False, False]


@pytest.mark.parametrize(
    "body",
    [
        sdp("127.0.0.1", 41000),
        b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=video 5000 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\n"
        b"m=audio 6000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\na=rtpmap:0 PCMU/8000\r\n"
        b"m=audio 7000 RTP/AVP 0\r\nc=IN IP4 10.0.0.3\r\n",
        b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 0 RTP/AVP 0\r\nc=IN IP4 10.0.0.5\r\nm=audio 6002 RTP/AVP 0\r\n",
        b"v=0\r\no=x 1 1 IN IP6 h\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n"
        b"m=audio 6004/2 RTP/AVP 0\r\n",
        b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        b"m=audio 6006 RTP/AVP 0\r\n",
        b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 6008 RTP/AVP 0\r\n",
        b"v=0\r\no=x 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 224.2.1.1/127\r\nt=0 0\r\n"
        b"m=audio 6010 RTP/AVP 0\r\n",
        b"",
    ],
)  # fmt: skip
def test_the_sdp_scan_finds_what_the_full_parser_finds(body: bytes) -> None:
    """The record reads each SDP by a line scan (a full parse per answered call cost more
    than the rest of its record); it agrees with the parser and the bypass decision's
    reading: the first active audio stream, media-level c= first, no hold address."""
    full = client_media_from_sdp(SessionDescription.parse(body)) if body else None
    scanned = audio_address(body)
    expected = None if full is None else (full.address, full.port)
    assert (None if scanned is None else (scanned.address, scanned.port)) == expected
