"""SIP messages of one call for the trace tests (no module state: functions only)."""

from __future__ import annotations


def sip(start: str, call_id: str, cseq: str, *, body: str = "", extra: str = "") -> bytes:
    """A small but complete SIP message with the given start line."""
    head = (
        f"{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{cseq.split(maxsplit=1)[0]}\r\n"
        f"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body.encode()


def ladder(call_id: str) -> list[tuple[bool, bytes]]:
    """(sent by the caller, bytes) of INVITE, 100, 180, 200, ACK, BYE, 200."""
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    sdp += "m=audio 4000 RTP/AVP 0\r\n"
    extra = "Content-Type: application/sdp\r\n"
    return [
        (True, sip("INVITE sip:bob@127.0.0.1 SIP/2.0", call_id, "1 INVITE", body=sdp,
                   extra=extra)),
        (False, sip("SIP/2.0 100 Trying", call_id, "1 INVITE")),
        (False, sip("SIP/2.0 180 Ringing", call_id, "1 INVITE")),
        (False, sip("SIP/2.0 200 OK", call_id, "1 INVITE", body=sdp, extra=extra)),
        (True, sip("ACK sip:bob@127.0.0.1 SIP/2.0", call_id, "1 ACK")),
        (True, sip("BYE sip:bob@127.0.0.1 SIP/2.0", call_id, "2 BYE")),
        (False, sip("SIP/2.0 200 OK", call_id, "2 BYE")),
    ]  # fmt: skip
