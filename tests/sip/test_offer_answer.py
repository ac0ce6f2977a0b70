"""Tests for hybridvoice.sip.offer_answer: RFC 3264 answers, validation, hold and resume."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.sip.offer_answer import (
    OfferAnswerError,
    common_codecs,
    hold,
    make_answer,
    needs_g711_transcoding,
    negotiate,
    resume,
    validate_answer,
)
from hybridvoice.sip.sdp import (
    Attribute,
    Codec,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
)


def crlf(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def sdp(*lines: str) -> SessionDescription:
    return SessionDescription.parse(crlf(*lines))


BARESIP_OFFER = sdp(
    "v=0",
    "o=- 1863371592 3263420457 IN IP4 192.168.1.20",
    "s=-",
    "c=IN IP4 192.168.1.20",
    "t=0 0",
    "a=tool:baresip 3.10.1",
    "m=audio 10110 RTP/AVP 96 9 0 8 101",
    "b=AS:128",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 stereo=1;sprop-stereo=1",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=rtcp-mux",
    "a=sendrecv",
    "a=label:1",
    "a=ptime:20",
    "m=video 10112 RTP/AVP 100",
    "a=rtpmap:100 H264/90000",
    "a=fmtp:100 packetization-mode=0;profile-level-id=42002a",
    "a=rtcp-mux",
    "a=sendrecv",
)

ANSWER_VIDEO_REJECTED = sdp(
    "v=0",
    "o=FreeSWITCH 1702380045 1702380046 IN IP4 203.0.113.5",
    "s=FreeSWITCH",
    "c=IN IP4 203.0.113.5",
    "t=0 0",
    "m=audio 30412 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
    "m=video 0 RTP/AVP 100",
)

LYNC_OFFER = sdp(
    "v=0",
    "o=- 0 0 IN IP4 10.10.0.25",
    "s=session",
    "c=IN IP4 10.10.0.25",
    "b=CT:99980",
    "t=0 0",
    "m=audio 19432 RTP/SAVP 117 9 0 8 13 101",
    "a=x-ssrc-range:3019434752-3019434752",
    "a=candidate:1 1 UDP 2130706431 10.10.0.25 19432 typ host ",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:6F3frXbFjXrF0bkCpV7HKqJbhBfgGbJF0Aa5dEfN|2^31|1:1",
    "a=rtcp:19433",
    "a=rtpmap:117 G722/8000/2",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:13 CN/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
)

ME = Origin("hybridvoice", "4711", 1, "IN", "IP4", "198.51.100.1")
PCMU = Codec("0", "PCMU", 8000)
PCMA = Codec("8", "PCMA", 8000)
G722 = Codec("9", "G722", 8000)
DTMF = Codec("96", "telephone-event", 8000, fmtp="0-16")  # our dynamic PT differs from theirs
CN = Codec("13", "CN", 8000)


def simple_offer(*media_lines: str, session: tuple[str, ...] = ()) -> SessionDescription:
    return sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.9",
        "s=-",
        "c=IN IP4 192.0.2.9",
        "t=0 0",
        *session,
        *media_lines,
    )


def answer_to(
    offer: SessionDescription,
    codecs: list[Codec],
    *,
    direction: Direction = Direction.SENDRECV,
    protocols: frozenset[str] | set[str] = frozenset({"RTP/AVP"}),
    rtcp_mux: bool = False,
    single_codec: bool = False,
) -> SessionDescription:
    ports = [30000 + 2 * i for i in range(len(offer.media))]
    return make_answer(
        offer,
        codecs,
        origin=ME,
        address="198.51.100.1",
        ports=ports,
        direction=direction,
        protocols=protocols,
        rtcp_mux=rtcp_mux,
        single_codec=single_codec,
    )


# --- make_answer -------------------------------------------------------------------------------


def test_answer_to_baresip_keeps_m_lines_and_offerer_order() -> None:
    answer = answer_to(BARESIP_OFFER, [PCMA, DTMF, PCMU])
    assert bytes(answer) == crlf(
        "v=0",
        "o=hybridvoice 4711 1 IN IP4 198.51.100.1",
        "s=-",
        "c=IN IP4 198.51.100.1",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "m=video 0 RTP/AVP 100",
    )
    validate_answer(BARESIP_OFFER, answer, strict=True)


def test_answer_keeps_offerer_dynamic_payload_types_and_channels() -> None:
    opus = Codec("111", "OPUS", 48000, 2)
    answer = answer_to(BARESIP_OFFER, [opus])
    audio = answer.media[0]
    assert audio.formats == ("96",)
    assert audio.codecs() == (Codec("96", "opus", 48000, 2, "stereo=1;sprop-stereo=1"),)
    assert str(audio.lines[0]) == "a=rtpmap:96 opus/48000/2"


def test_fmtp_is_ours_when_we_have_one_else_the_offerers() -> None:
    answer = answer_to(BARESIP_OFFER, [PCMU, Codec("101", "telephone-event", 8000)])
    assert answer.media[0].fmtp("101") == "0-15"
    answer = answer_to(BARESIP_OFFER, [PCMU, DTMF])
    assert answer.media[0].fmtp("101") == "0-16"


def test_telephone_event_alone_does_not_accept_a_stream() -> None:
    answer = answer_to(BARESIP_OFFER, [DTMF, CN, Codec("18", "G729", 8000)])
    assert [m.port for m in answer.media] == [0, 0]
    assert answer.media[0].formats == BARESIP_OFFER.media[0].formats
    assert answer.media[0].lines == ()
    validate_answer(BARESIP_OFFER, answer)


def test_telephone_event_dropped_when_we_lack_it() -> None:
    answer = answer_to(BARESIP_OFFER, [G722])
    assert answer.media[0].formats == ("9",)


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        ("sendrecv", Direction.SENDRECV, Direction.SENDRECV),
        ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
        ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
        ("inactive", Direction.SENDRECV, Direction.INACTIVE),
        ("sendrecv", Direction.RECVONLY, Direction.RECVONLY),
        ("sendonly", Direction.SENDONLY, Direction.INACTIVE),
    ],
)
def test_answer_mirrors_direction(offered: str, wanted: Direction, answered: Direction) -> None:
    offer = simple_offer("m=audio 4000 RTP/AVP 0", f"a={offered}")
    answer = answer_to(offer, [PCMU], direction=wanted)
    assert answer.media[0].direction is answered
    validate_answer(offer, answer)


def test_session_level_direction_and_rfc2543_hold_are_mirrored() -> None:
    offer = simple_offer("m=audio 4000 RTP/AVP 0", session=("a=sendonly",))
    assert answer_to(offer, [PCMU]).media[0].direction is Direction.RECVONLY
    old_hold = sdp(
        "v=0", "o=- 1 2 IN IP4 h", "s=-", "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 4000 RTP/AVP 0"
    )
    assert answer_to(old_hold, [PCMU]).media[0].direction is Direction.RECVONLY


def test_secure_transport_rejected_unless_allowed() -> None:
    rejected = answer_to(LYNC_OFFER, [PCMU, DTMF])
    assert rejected.media[0].port == 0
    accepted = answer_to(LYNC_OFFER, [PCMA, PCMU, CN, DTMF], protocols={"RTP/SAVP"})
    audio = accepted.media[0]
    assert (audio.port, audio.proto, audio.formats) == (30000, "RTP/SAVP", ("0", "8", "13", "101"))
    validate_answer(LYNC_OFFER, accepted)


def test_single_codec_keeps_first_common_and_matching_telephone_event() -> None:
    offer = simple_offer(
        "m=audio 4000 RTP/AVP 96 0 8 101 102",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:101 telephone-event/48000",
        "a=rtpmap:102 telephone-event/8000",
    )
    local = [PCMA, PCMU, Codec("1", "telephone-event", 8000), Codec("2", "telephone-event", 48000)]
    assert answer_to(offer, local).media[0].formats == ("0", "8", "101", "102")
    assert answer_to(offer, local, single_codec=True).media[0].formats == ("0", "102")


def test_rtcp_mux_only_when_offered_and_wanted() -> None:
    assert answer_to(BARESIP_OFFER, [PCMU]).media[0].rtcp_mux is False
    assert answer_to(BARESIP_OFFER, [PCMU], rtcp_mux=True).media[0].rtcp_mux is True
    assert (
        answer_to(LYNC_OFFER, [PCMU], rtcp_mux=True, protocols={"RTP/SAVP"}).media[0].rtcp_mux
        is False
    )


def test_offered_port_zero_and_our_port_zero_reject() -> None:
    offer = simple_offer("m=audio 0 RTP/AVP 0", "m=audio 4000 RTP/AVP 0", "m=audio 4002 RTP/AVP 8")
    answer = make_answer(offer, [PCMU, PCMA], origin=ME, address="198.51.100.1", ports=[5, 6, 0])
    assert [m.port for m in answer.media] == [0, 6, 0]
    validate_answer(offer, answer)


def test_ports_must_match_m_lines() -> None:
    with pytest.raises(ValueError, match="2 ports given for 1 m-lines"):
        make_answer(
            simple_offer("m=audio 1 RTP/AVP 0"), [PCMU], origin=ME, address="h", ports=[1, 2]
        )


def test_ipv6_answer_and_round_trip() -> None:
    answer = make_answer(BARESIP_OFFER, [PCMU], origin=ME, address="2001:db8::5", ports=[7, 8])
    assert str(answer.lines[3]) == "c=IN IP6 2001:db8::5"
    assert SessionDescription.parse(bytes(answer)) == answer


# --- validate_answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: SessionDescription(a.lines, a.media[:1]), "1 m-lines, offer has 2"),
        (
            lambda a: a.with_media(1, MediaDescription("audio", 0, "RTP/AVP", ("100",))),
            "answer is 'audio', offer 'video'",
        ),
        (
            lambda a: a.with_media(0, MediaDescription("audio", 1, "RTP/SAVP", ("0",))),
            "proto",
        ),
        (lambda a: a.with_media(0, MediaDescription("audio", 1, "RTP/AVP", ())), "no formats"),
        (
            lambda a: a.with_media(0, MediaDescription("audio", 1, "RTP/AVP", ("18",))),
            "no answered format was offered",
        ),
        (
            lambda a: a.with_media(0, MediaDescription("audio", 1, "RTP/AVP", ("97",))),
            "no rtpmap",
        ),
    ],
)
def test_invalid_answers(mutate: object, message: str) -> None:
    assert callable(mutate)
    with pytest.raises(OfferAnswerError, match=message):
        validate_answer(BARESIP_OFFER, mutate(ANSWER_VIDEO_REJECTED))


def test_answer_with_port_for_offered_port_zero_is_invalid() -> None:
    offer = simple_offer("m=audio 0 RTP/AVP 0")
    answer = simple_offer("m=audio 4000 RTP/AVP 0")
    with pytest.raises(OfferAnswerError, match="port 0"):
        validate_answer(offer, answer)


def test_extra_formats_allowed_unless_strict() -> None:
    answer = ANSWER_VIDEO_REJECTED.with_media(
        0, ANSWER_VIDEO_REJECTED.media[0].with_formats(["0", "18", "101"])
    )
    validate_answer(BARESIP_OFFER, answer)  # RFC 3264 §6.1 allows it
    with pytest.raises(OfferAnswerError, match="did not"):
        validate_answer(BARESIP_OFFER, answer, strict=True)


@pytest.mark.parametrize(
    ("offered", "answered", "ok"),
    [
        ("sendonly", "recvonly", True),
        ("sendonly", "inactive", True),
        ("sendonly", "sendonly", False),
        ("sendonly", "sendrecv", False),
        ("recvonly", "sendonly", True),
        ("recvonly", "recvonly", False),
        ("inactive", "inactive", True),
        ("inactive", "sendrecv", False),
        ("sendrecv", "recvonly", True),
    ],
)
def test_direction_rules(offered: str, answered: str, ok: bool) -> None:
    offer = simple_offer("m=audio 4000 RTP/AVP 0", f"a={offered}")
    answer = simple_offer("m=audio 5000 RTP/AVP 0", f"a={answered}")
    if ok:
        validate_answer(offer, answer)
    else:
        with pytest.raises(OfferAnswerError, match="offered"):
            validate_answer(offer, answer)


def test_rfc2543_hold_answered_sendrecv_is_tolerated() -> None:
    offer = sdp(
        "v=0", "o=- 1 2 IN IP4 h", "s=-", "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 4000 RTP/AVP 0"
    )
    answer = simple_offer("m=audio 5000 RTP/AVP 0", "a=sendrecv")
    validate_answer(offer, answer)
    (stream,) = negotiate(offer, answer, local_is_offerer=False)
    assert stream.direction is Direction.RECVONLY  # never send to 0.0.0.0


def test_non_rtp_streams_match_by_format() -> None:
    offer = simple_offer("m=image 4000 udptl t38")
    validate_answer(offer, simple_offer("m=image 5000 udptl t38"))
    with pytest.raises(OfferAnswerError, match="no answered format"):
        validate_answer(offer, simple_offer("m=image 5000 udptl t37"))


# --- negotiate ---------------------------------------------------------------------------------


def test_negotiate_from_the_offerers_side() -> None:
    audio, video = negotiate(BARESIP_OFFER, ANSWER_VIDEO_REJECTED)
    assert audio.accepted and audio.index == 0 and audio.media == "audio"
    assert audio.direction is Direction.SENDRECV
    assert audio.remote_address == "203.0.113.5"
    assert audio.remote_port == 30412
    assert not audio.rtcp_mux
    assert (audio.remote_rtcp_address, audio.remote_rtcp_port) == ("203.0.113.5", 30413)
    assert [c.payload_type for c in audio.send_codecs] == ["0", "101"]
    assert audio.send_codecs[1].fmtp == "0-16"
    assert audio.receive_codecs[1].fmtp == "0-15"
    assert not video.accepted
    assert video.direction is Direction.INACTIVE
    assert (video.remote_port, video.remote_address, video.remote_rtcp_port) == (0, None, None)


def test_negotiate_from_the_answerers_side_with_differing_payload_types() -> None:
    offer = simple_offer(
        "m=audio 4000 RTP/AVP 8 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtcp:4005 IN IP4 192.0.2.10",
        "a=sendonly",
    )
    answer = sdp(
        "v=0",
        "o=- 5 5 IN IP4 198.51.100.1",
        "s=-",
        "t=0 0",
        "m=audio 6000 RTP/AVP 8 96",
        "c=IN IP4 198.51.100.1",
        "a=rtpmap:96 telephone-event/8000",
        "a=recvonly",
    )
    (stream,) = negotiate(offer, answer, local_is_offerer=False)
    assert stream.direction is Direction.RECVONLY
    assert (stream.remote_address, stream.remote_port) == ("192.0.2.9", 4000)
    assert (stream.remote_rtcp_address, stream.remote_rtcp_port) == ("192.0.2.10", 4005)
    assert [c.payload_type for c in stream.send_codecs] == ["8", "101"]
    assert [c.payload_type for c in stream.receive_codecs] == ["8", "96"]
    (mine,) = negotiate(offer, answer)
    assert mine.direction is Direction.SENDONLY
    assert (mine.remote_address, mine.remote_port) == ("198.51.100.1", 6000)
    assert [c.payload_type for c in mine.send_codecs] == ["8", "96"]


def test_negotiate_rtcp_mux() -> None:
    answer = answer_to(BARESIP_OFFER, [PCMU], rtcp_mux=True)
    audio, _video = negotiate(BARESIP_OFFER, answer)
    assert audio.rtcp_mux
    assert (audio.remote_rtcp_address, audio.remote_rtcp_port) == ("198.51.100.1", 30000)


def test_negotiate_validates() -> None:
    with pytest.raises(OfferAnswerError):
        negotiate(BARESIP_OFFER, LYNC_OFFER)


# --- hold / resume -----------------------------------------------------------------------------


def test_hold_and_resume_round_trip() -> None:
    held = hold(BARESIP_OFFER)
    assert [m.direction for m in held.media] == [Direction.SENDONLY, Direction.SENDONLY]
    assert held.origin.sess_version == BARESIP_OFFER.origin.sess_version + 1
    expected = (
        bytes(BARESIP_OFFER)
        .replace(b"a=sendrecv", b"a=sendonly")
        .replace(b"3263420457 IN", b"3263420458 IN")
    )
    assert bytes(held) == expected
    resumed = resume(held)
    assert resumed.origin.sess_version == held.origin.sess_version + 1
    assert bytes(resumed) == bytes(BARESIP_OFFER).replace(b"3263420457 IN", b"3263420459 IN")


def test_hold_recvonly_goes_inactive_and_back() -> None:
    offer = simple_offer("m=audio 4000 RTP/AVP 0", "a=recvonly", "m=audio 0 RTP/AVP 0")
    held = hold(offer)
    assert held.media[0].direction is Direction.INACTIVE
    assert held.media[1] == offer.media[1]  # rejected streams untouched
    assert resume(held).media[0].direction is Direction.RECVONLY


def test_hold_uses_session_level_direction_and_adds_media_level() -> None:
    offer = simple_offer("m=audio 4000 RTP/AVP 0", session=("a=sendrecv",))
    held = hold(offer)
    assert held.media[0].direction is Direction.SENDONLY
    assert held.media[0].effective_direction(held) is Direction.SENDONLY
    answer = answer_to(held, [PCMU])
    assert answer.media[0].direction is Direction.RECVONLY


# --- codec helpers -----------------------------------------------------------------------------


def test_common_codecs_by_name_and_rate() -> None:
    theirs = BARESIP_OFFER.media[0].codecs()
    ours = [Codec("8", "pcma", 8000), Codec("120", "OPUS", 48000, 2), Codec("9", "G722", 16000)]
    assert [c.payload_type for c in common_codecs(theirs, ours)] == ["96", "8"]
    assert [c.payload_type for c in common_codecs(ours, theirs)] == ["8", "120"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([PCMU], [PCMA], True),
        ([PCMU, DTMF], [PCMA, Codec("101", "telephone-event", 8000)], True),
        ([PCMU, PCMA], [PCMA], False),
        ([PCMU], [PCMU], False),
        ([G722], [PCMA], False),
        ([PCMU, G722], [PCMA, G722], False),
        ([], [PCMA], False),
    ],
)
def test_needs_g711_transcoding(a: list[Codec], b: list[Codec], expected: bool) -> None:
    assert needs_g711_transcoding(a, b) is expected
    assert needs_g711_transcoding(b, a) is expected


# --- properties --------------------------------------------------------------------------------

_KNOWN = [
    PCMU,
    PCMA,
    G722,
    Codec("18", "G729", 8000),
    Codec("96", "opus", 48000, 2),
    Codec("97", "telephone-event", 8000),
    Codec("98", "H264", 90000),
    CN,
]


@st.composite
def _offers(draw: st.DrawFn) -> SessionDescription:
    media = []
    for _ in range(draw(st.integers(1, 4))):
        codecs = draw(st.lists(st.sampled_from(_KNOWN), min_size=1, max_size=6, unique=True))
        lines = [Attribute("rtpmap", c.rtpmap_value()) for c in codecs]
        direction = draw(st.sampled_from([None, *Direction]))
        if direction is not None:
            lines.append(Attribute(direction.value))
        port = draw(st.sampled_from([0, 4000, 5000]))
        formats = tuple(c.payload_type for c in codecs)
        media.append(MediaDescription("audio", port, "RTP/AVP", formats, lines=tuple(lines)))
    return SessionDescription.create(ME, media=media)


@given(
    _offers(),
    st.lists(st.sampled_from(_KNOWN), unique=True),
    st.sampled_from(list(Direction)),
    st.booleans(),
)
def test_property_answers_are_valid(
    offer: SessionDescription, local: list[Codec], direction: Direction, single: bool
) -> None:
    answer = answer_to(offer, local, direction=direction, single_codec=single)
    validate_answer(offer, answer, strict=True)
    assert SessionDescription.parse(bytes(answer)) == answer
    for stream in negotiate(offer, answer):
        if stream.accepted:
            assert stream.send_codecs
            assert any(c.encoding not in ("telephone-event", "CN") for c in stream.send_codecs)
