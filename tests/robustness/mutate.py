"""A seeded generator of hostile SIP traffic: valid INVITE/REGISTER/OPTIONS/BYE/CANCEL/ACK
requests and responses, mutated the ways an outside fuzzer mutated them (byte flips,
truncation, duplicated or deleted lines, numbers of thousands of digits, bare CR/LF inside
values, bad IPv6 hosts, bad SDP bodies), plus CRLF keep-alives. Pure: the same seed gives
the same messages."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

SDP = (
    "v=0\r\n"
    "o=- {n} 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)

_PRISTINE_SDP = re.compile(re.escape(SDP).replace(r"\{n\}", "[0-9]+").replace(r"\{rtp\}", "[0-9]+"))


def sdp_intact(body: bytes) -> bool:
    """Whether ``body`` is empty or the flood's SDP as generated (no mutation hit it)."""
    return not body or _PRISTINE_SDP.fullmatch(body.decode("utf-8", "replace")) is not None


_REQUEST = (
    "{method} {ruri} SIP/2.0\r\n"
    "Via: SIP/2.0/{transport} 127.0.0.1:{via_port};branch=z9hG4bKflood{n}{rport}\r\n"
    "Max-Forwards: 70\r\n"
    "From: {from_} <sip:{caller}>;tag=f{n}\r\n"
    "To: <{to}>{to_tag}\r\n"
    "Call-ID: flood-{n}@127.0.0.1\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Contact: <sip:flood@127.0.0.1:{via_port};transport={transport_lower}>{expires}\r\n"
    "User-Agent: flood\r\n"
    "{extra}"
    "Content-Length: {length}\r\n\r\n"
)

_RESPONSE = (
    "SIP/2.0 {status}\r\n"
    "Via: SIP/2.0/{transport} {via_host};branch=z9hG4bKflood{n}\r\n"
    "From: <sip:{caller}>;tag=f{n}\r\n"
    "To: <{to}>;tag=t{n}\r\n"
    "Call-ID: flood-{n}@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:flood@127.0.0.1:{via_port}>\r\n"
    "Content-Length: 0\r\n\r\n"
)


@dataclass(frozen=True)
class Target:
    """Where the flood goes and what its requests look like there."""

    transport: str  # UDP or TCP
    host: str
    port: int
    request_uri: str  # of an INVITE
    caller: str  # From's addr-spec
    domain: str  # REGISTER's Request-URI and To


def base_message(rng: random.Random, n: int, target: Target, via_port: int) -> str:
    """One valid message for ``target``; its branch and Call-ID are unique to ``n``."""
    kind = rng.choice(
        ["INVITE"] * 4 + ["REGISTER"] * 2 + ["OPTIONS", "BYE", "CANCEL", "ACK"] + ["response"] * 2
    )
    if kind == "response":
        status = rng.choice(["100 Trying", "180 Ringing", "200 OK", "486 Busy Here", "487 X"])
        via_host = rng.choice([f"127.0.0.1:{target.port}", f"127.0.0.1:{via_port}"])
        return _RESPONSE.format(
            status=status, transport=target.transport, via_host=via_host, n=n, via_port=via_port,
            caller=target.caller, to=target.request_uri,
        )  # fmt: skip
    body = SDP.format(n=n, rtp=40000 + 2 * (n % 1000)) if kind == "INVITE" else ""
    to = f"sip:alice@{target.domain}" if kind == "REGISTER" else target.request_uri
    ruri = f"sip:{target.domain}" if kind == "REGISTER" else target.request_uri
    return (
        _REQUEST.format(
            method=kind,
            ruri=ruri,
            transport=target.transport,
            transport_lower=target.transport.lower(),
            via_port=via_port,
            rport=";rport" if rng.random() < 0.5 else "",
            n=n,
            from_='"Flood"',
            caller=target.caller,
            to=to,
            to_tag=f";tag=t{n}" if kind in ("BYE", "ACK") else "",
            cseq=rng.randint(1, 1000),
            expires=";expires=60" if kind == "REGISTER" else "",
            extra="Content-Type: application/sdp\r\n" if body else "",
            length=len(body.encode()),
        )
        + body
    )


# --- mutations: each takes the text and the generator, returns the new text -----------------


def _flip(text: str, rng: random.Random) -> str:
    data = bytearray(text.encode("utf-8", "surrogateescape"))
    if not data:
        return text
    for _ in range(rng.randint(1, 5)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data.decode("utf-8", "surrogateescape")


def _truncate(text: str, rng: random.Random) -> str:
    return text[: rng.randrange(1, len(text))] if len(text) > 1 else text


def _lines(text: str) -> tuple[list[str], str]:
    head, _, body = text.partition("\r\n\r\n")
    return head.split("\r\n"), body


def _join(lines: list[str], body: str) -> str:
    return "\r\n".join(lines) + "\r\n\r\n" + body


def _duplicate_line(text: str, rng: random.Random) -> str:
    lines, body = _lines(text)
    if len(lines) < 2:
        return text
    i = rng.randrange(1, len(lines))
    lines.insert(i, lines[i])
    return _join(lines, body)


def _delete_line(text: str, rng: random.Random) -> str:
    lines, body = _lines(text)
    del lines[rng.randrange(len(lines))]
    return _join(lines, body)


_NUMBERS = re.compile(
    r"(?m)^((?:CSeq|Max-Forwards|Content-Length|Expires): )([0-9]+)"
    r"|;expires=([0-9]+)|:(5060|40[0-9]{3})"
)


def _huge_number(text: str, rng: random.Random) -> str:
    huge = "9" * rng.choice([11, 100, 5000])
    lines, body = _lines(text)
    if rng.random() < 0.5:
        lines.insert(rng.randrange(1, len(lines) + 1), rng.choice(
            [f"Expires: {huge}", f"Min-SE: {huge}", f"Session-Expires: {huge}", f"RSeq: {huge}",
             f"Retry-After: {huge}", f"Min-Expires: {huge}", f"RAck: {huge} 1 INVITE"]
        ))  # fmt: skip
        return _join(lines, body)
    matches = list(_NUMBERS.finditer(text))
    if not matches:
        return text
    m = rng.choice(matches)
    group = next(i for i in (2, 3, 4) if m.group(i) is not None)
    return text[: m.start(group)] + huge + text[m.end(group) :]


def _bare_line_end(text: str, rng: random.Random) -> str:
    lines, body = _lines(text)
    if len(lines) < 2:
        return text
    i = rng.randrange(1, len(lines))
    lines[i] += rng.choice(
        ["\nVia: SIP/2.0/UDP 203.0.113.66;branch=z9hG4bKevil", "\r", "\nX: y", "\r\n"]
    )
    return _join(lines, body)


def _bad_host(text: str, rng: random.Random) -> str:
    return text.replace("127.0.0.1", rng.choice(["[::1::2]", "[1:2:3:4:5:6:7:8:9]", "[::1]"]), 1)


_SDP_BREAKS = (
    ("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMU/abc"),
    ("a=rtpmap:8 PCMA/8000", "a=rtpmap:8 PCMA/99999999999999999999999"),
    ("m=audio ", "m=audio 999999"),
    ("c=IN IP4 127.0.0.1\r\n", ""),
    ("v=0", "v=x"),
    ("RTP/AVP 0 8 101", "RTP/AVP"),
)


def _bad_sdp(text: str, rng: random.Random) -> str:
    """A valid SIP message whose SDP is broken (Content-Length kept right)."""
    head, sep, body = text.partition("\r\n\r\n")
    if not body:
        return text
    old, new = rng.choice(_SDP_BREAKS)
    body = body.replace(old, new, 1)
    length = len(body.encode("utf-8", "surrogateescape"))
    head = re.sub(r"Content-Length: [0-9]+", f"Content-Length: {length}", head)
    return head + sep + body


MUTATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "none": lambda text, rng: text,
    "flip": _flip,
    "truncate": _truncate,
    "duplicate_line": _duplicate_line,
    "delete_line": _delete_line,
    "huge_number": _huge_number,
    "bare_line_end": _bare_line_end,
    "bad_host": _bad_host,
    "bad_sdp": _bad_sdp,
}


def flood(seed: int, count: int, target: Target, via_port: int) -> list[bytes]:
    """``count`` messages for ``target``: mostly mutated, some valid, some keep-alives."""
    rng = random.Random(f"{seed}-{target.transport}-{target.port}")
    out: list[bytes] = []
    names = list(MUTATIONS)
    for n in range(count):
        if rng.random() < 0.02:
            out.append(rng.choice([b"\r\n\r\n", b"\r\n"]))
            continue
        text = base_message(rng, n, target, via_port)
        for name in rng.sample(names, rng.choice([1, 1, 1, 2])):
            text = MUTATIONS[name](text, rng)
        out.append(text.encode("utf-8", "surrogateescape"))
    return out
