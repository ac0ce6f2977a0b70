"""SIP parse + serialise throughput: hybridvoice against sippy's parser, same run, same corpus.

Run: ``.venv/bin/python benchmarks/parser.py [--rounds 9] [--seconds 1.0]``

The corpus is one call as SIPp's built-in uac/uas scenarios and a registrar see it: the
INVITE with SDP as SIPp sends it, the 200 OK with SDP coming back through a
record-routing proxy, the ACK, the BYE, and a REGISTER with Digest credentials, for
``--calls`` distinct calls (own branches, tags and Call-IDs, as on the wire: our bounded memo
caches of parsed header text only hit on what really repeats). One "message" is bytes in ->
parsed message -> bytes out.

What each side is made to do (both get bytes and must produce bytes):

- sippy: ``data.decode()``, ``SipRequest(buf)``/``SipResponse(buf)``, then ``getBody()`` on
  every header (sippy parses lazily: this forces Via, From, To, Contact, Route,
  Record-Route, CSeq, Call-ID, Max-Forwards, Expires, Authorization... to be parsed into
  objects; unknown headers such as Subject stay strings), then ``str(msg).encode()``. The
  body is kept raw (its SDP is not parsed), as on our side.
- hybridvoice "eager": ``parse_message(data)`` (validates the start line and Via, From,
  To, Call-ID, CSeq, Max-Forwards, Content-Length, Contact, Date into typed values) then
  ``bytes(msg)``.
- hybridvoice "+ route views": the same plus the ``route`` and ``record_route`` views.
- hybridvoice "+ route + digest": the same plus the Authorization credentials
  (``hybridvoice.sip.auth.Credentials.parse``, a validating RFC 7616 parser; sippy's
  ``SipAuthorization.parse`` only splits on "," and "="). This row parses everything sippy
  parses, so it is the strict comparison.

Rounds alternate between the contestants, the first round of each is discarded (warm-up),
the table gives the median of the rest. Machines are shared and noisy: compare ratios, not
absolutes.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from hybridvoice.sip import parse_message
from hybridvoice.sip.auth import Credentials
from hybridvoice.sip.value_cache import ValueCache

SDP_OFFER = (
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)
SDP_ANSWER = SDP_OFFER.replace("user1", "user2").replace("6000", "6002")


def _message(lines: list[str], body: str = "") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


INVITE = _message(
    [
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-28764-1-0",
        "From: sipp <sip:sipp@127.0.0.1:5061>;tag=28764SIPpTag001",
        "To: service <sip:service@127.0.0.1:5060>",
        "Call-ID: 1-28764@127.0.0.1",
        "CSeq: 1 INVITE",
        "Contact: sip:sipp@127.0.0.1:5061",
        "Max-Forwards: 70",
        "Subject: Performance Test",
        "Content-Type: application/sdp",
        f"Content-Length: {len(SDP_OFFER)}",
    ],
    SDP_OFFER,
)
OK = _message(
    [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK2d4790.1;rport=5080",
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-28764-1-0",
        "Record-Route: <sip:127.0.0.1:5080;lr;ftag=28764SIPpTag001>",
        "From: sipp <sip:sipp@127.0.0.1:5061>;tag=28764SIPpTag001",
        "To: service <sip:service@127.0.0.1:5060>;tag=28770SIPpTag011",
        "Call-ID: 1-28764@127.0.0.1",
        "CSeq: 1 INVITE",
        "Contact: <sip:127.0.0.1:5070;transport=UDP>",
        "Content-Type: application/sdp",
        f"Content-Length: {len(SDP_ANSWER)}",
    ],
    SDP_ANSWER,
)
ACK = _message(
    [
        "ACK sip:127.0.0.1:5070;transport=UDP SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-28764-1-5",
        "Route: <sip:127.0.0.1:5080;lr;ftag=28764SIPpTag001>",
        "From: sipp <sip:sipp@127.0.0.1:5061>;tag=28764SIPpTag001",
        "To: service <sip:service@127.0.0.1:5060>;tag=28770SIPpTag011",
        "Call-ID: 1-28764@127.0.0.1",
        "CSeq: 1 ACK",
        "Contact: sip:sipp@127.0.0.1:5061",
        "Max-Forwards: 70",
        "Subject: Performance Test",
        "Content-Length: 0",
    ]
)
BYE = _message(
    [
        "BYE sip:127.0.0.1:5070;transport=UDP SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-28764-1-7",
        "Route: <sip:127.0.0.1:5080;lr;ftag=28764SIPpTag001>",
        "From: sipp <sip:sipp@127.0.0.1:5061>;tag=28764SIPpTag001",
        "To: service <sip:service@127.0.0.1:5060>;tag=28770SIPpTag011",
        "Call-ID: 1-28764@127.0.0.1",
        "CSeq: 2 BYE",
        "Contact: sip:sipp@127.0.0.1:5061",
        "Max-Forwards: 70",
        "Subject: Performance Test",
        "Content-Length: 0",
    ]
)
REGISTER = _message(
    [
        "REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds7;rport",
        "Max-Forwards: 70",
        "From: Alice <sip:alice@example.com>;tag=a73kszlfl",
        "To: Alice <sip:alice@example.com>",
        "Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10",
        "CSeq: 2 REGISTER",
        "Contact: <sip:alice@192.0.2.10:5060>;expires=3600",
        'Authorization: Digest username="alice", realm="example.com", '
        'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", uri="sip:example.com", '
        'response="dfe56131d1958046689d83306477ecc", algorithm=MD5, qop=auth, '
        'nc=00000001, cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
        "Expires: 3600",
        "User-Agent: hybridvoice-bench/1.0",
        "Content-Length: 0",
    ]
)
TEMPLATE: tuple[bytes, ...] = (INVITE, OK, ACK, BYE, REGISTER)


def make_corpus(calls: int) -> tuple[bytes, ...]:
    """``calls`` distinct calls, as real traffic has them: every call its own branches, tags
    and Call-ID (SIPp's call number), while Contacts, Request-URIs and the like repeat. Our
    parser keeps bounded memo caches of parsed header text; a corpus of one call repeated
    would hit them on every header and flatter us, so every call here differs."""
    out: list[bytes] = []
    for n in range(calls):
        tag = str(100_000 + n).encode()
        for data in TEMPLATE:
            out.append(
                data.replace(b"28764", tag)
                .replace(b"28770", tag + b"9")
                .replace(b"a73kszlfl", b"r" + tag)
                .replace(b"nashds7", b"reg" + tag)
                .replace(b"1j9FpLxk3uxtm8tn", b"reg-" + tag)
            )
    return tuple(out)


CORPUS: tuple[bytes, ...] = TEMPLATE  # replaced in main() by make_corpus(--calls)


# --- the contestants ------------------------------------------------------------------


#: the memo of parsed header values a UDP transport owns and parses with
VALUES = ValueCache()


def hybridvoice_eager(data: bytes) -> bytes:
    return bytes(parse_message(data, VALUES))


def hybridvoice_views(data: bytes) -> bytes:
    message = parse_message(data, VALUES)
    _ = message.route, message.record_route
    return bytes(message)


def hybridvoice_all_views(data: bytes) -> bytes:
    message = parse_message(data, VALUES)
    _ = message.route, message.record_route
    authorization = message.headers.get("Authorization")
    if authorization is not None:
        Credentials.parse(authorization)
    return bytes(message)


def make_sippy() -> Callable[[bytes], bytes]:
    from sippy.SipRequest import SipRequest  # type: ignore[import-untyped]  # noqa: PLC0415
    from sippy.SipResponse import SipResponse  # type: ignore[import-untyped]  # noqa: PLC0415

    def sippy_parse_all(data: bytes) -> bytes:
        buf = data.decode()
        message = SipResponse(buf) if buf.startswith("SIP/2.0 ") else SipRequest(buf)
        for header in message.headers:
            header.getBody()  # force sippy's lazy per-header parse
        return str(message).encode()

    return sippy_parse_all


# --- harness ----------------------------------------------------------------------------


def check(name: str, fn: Callable[[bytes], bytes]) -> None:
    """Each contestant must really handle every message of the corpus."""
    for data in CORPUS[:50]:
        out = fn(data)
        first_line = data.split(b"\r\n", 1)[0]
        if not out.startswith(first_line) or (b"Call-ID" not in out and b"Call-Id" not in out):
            raise SystemExit(f"{name} mangled {first_line!r}: {out[:120]!r}")


def run_round(fn: Callable[[bytes], bytes], seconds: float) -> float:
    """Messages per second over at least ``seconds``, in slices of 1,000 messages."""
    corpus = CORPUS
    size = len(corpus)
    done = 0
    gc.collect()
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        offset = done % size
        chunk = corpus[offset : offset + 1000]
        for data in chunk:
            fn(data)
        done += len(chunk)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9, help="rounds per contestant (>= 2)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--calls", type=int, default=4096, help="distinct calls in the corpus")
    args = parser.parse_args()
    global CORPUS
    CORPUS = make_corpus(max(1, args.calls))

    contestants: dict[str, Callable[[bytes], bytes]] = {
        "hybridvoice eager": hybridvoice_eager,
        "hybridvoice + route views": hybridvoice_views,
        "hybridvoice + route + digest": hybridvoice_all_views,
        "sippy parse-all": make_sippy(),
    }
    for name, fn in contestants.items():
        check(name, fn)
    results: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(max(2, args.rounds)):
        for name, fn in contestants.items():  # alternate A/B/C within every round
            results[name].append(run_round(fn, args.seconds))

    medians = {name: statistics.median(rates[1:]) for name, rates in results.items()}
    peer = medians["sippy parse-all"]
    print(f"corpus: {args.calls} distinct calls of INVITE+SDP, 200+SDP+Record-Route, ACK, BYE, "
          f"REGISTER+Digest; {args.rounds} rounds of {args.seconds:.1f} s, first discarded, "
          f"median")  # fmt: skip
    print(f"{'parser':<30}{'messages/s':>12}{'min':>10}{'max':>10}{'vs sippy':>10}")
    for name, rates in results.items():
        kept = rates[1:]
        print(
            f"{name:<30}{medians[name]:>12,.0f}{min(kept):>10,.0f}{max(kept):>10,.0f}"
            f"{medians[name] / peer:>9.2f}x"
        )
    for name in contestants:
        if name.startswith("hybridvoice"):
            ratio = medians[name] / peer
            print(f"goal >= 2.00x sippy, {name}: {'met' if ratio >= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
