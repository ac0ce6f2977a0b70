"""The per-call capture buffer (trace/capture.py): kept by Call-ID, bounded per call and in
total with the oldest calls evicted, a hop seen at both ends kept once."""

from __future__ import annotations

import pytest
from trace_helpers import ladder, sip

from hybridvoice.trace.capture import CaptureBuffer, CaptureLimits, call_id_of, merge

A, B = ("127.0.0.1", 5070), ("127.0.0.1", 5080)


def test_call_id_of_reads_long_and_compact_forms_in_any_case() -> None:
    assert call_id_of(sip("OPTIONS sip:x SIP/2.0", "abc@host", "1 OPTIONS")) == "abc@host"
    compact = b"BYE sip:x SIP/2.0\r\nv: SIP/2.0/UDP h\r\ni:  xyz \r\n\r\n"
    assert call_id_of(compact) == "xyz"
    assert call_id_of(b"SIP/2.0 200 OK\r\nCALL-ID: Q1\r\n\r\n") == "Q1"
    # only the header section counts: a Call-ID line in a body is not the message's
    assert call_id_of(b"MESSAGE sip:x SIP/2.0\r\nVia: x\r\n\r\nCall-ID: body\r\n") is None


def test_messages_are_kept_by_call_in_order() -> None:
    buf = CaptureBuffer()
    for i, (caller, data) in enumerate(ladder("c1")):
        src, dst = (A, B) if caller else (B, A)
        assert buf.add(100.0 + i, "UDP", src, dst, data, outgoing=caller) is not None
    buf.add(200.0, "UDP", A, B, sip("OPTIONS sip:x SIP/2.0", "other", "1 OPTIONS"), outgoing=True)
    got = buf.messages_of(["c1"])
    assert [m.data.split(b" ", 2)[:2] for m in got][:3] == [
        [b"INVITE", b"sip:bob@127.0.0.1"], [b"SIP/2.0", b"100"], [b"SIP/2.0", b"180"],
    ]  # fmt: skip
    assert len(got) == 7 and buf.calls() == ["c1", "other"]
    assert buf.messages_of(["c1", None, "c1", "missing"]) == got


def test_bytes_are_kept_not_copied() -> None:
    buf = CaptureBuffer()
    data = sip("OPTIONS sip:x SIP/2.0", "c", "1 OPTIONS")
    kept = buf.add(1.0, "UDP", A, B, data, outgoing=True)
    assert kept is not None and kept.data is data


def test_oldest_calls_are_evicted_past_max_calls() -> None:
    buf = CaptureBuffer(CaptureLimits(max_calls=3))
    for n in range(5):
        buf.add(float(n), "UDP", A, B, sip("OPTIONS sip:x SIP/2.0", f"c{n}", "1 OPTIONS"),
                outgoing=True)  # fmt: skip
    assert buf.calls() == ["c2", "c3", "c4"] and buf.evicted == 2


def test_total_bound_evicts_oldest_and_call_bound_truncates() -> None:
    one = len(sip("OPTIONS sip:x SIP/2.0", "c0", "1 OPTIONS"))
    buf = CaptureBuffer(CaptureLimits(max_calls=100, max_call_bytes=2 * one, max_bytes=3 * one))
    for n in range(4):
        buf.add(float(n), "UDP", A, B, sip("OPTIONS sip:x SIP/2.0", f"c{n}", "1 OPTIONS"),
                outgoing=True)  # fmt: skip
    assert buf.calls() == ["c1", "c2", "c3"] and buf.size == 3 * one
    for _ in range(3):
        buf.add(9.0, "UDP", A, B, sip("OPTIONS sip:x SIP/2.0", "c3", "1 OPTIONS"), outgoing=True)
    trace = buf.get("c3")
    assert trace is not None and len(trace.messages) == 2 and trace.truncated == 2
    assert buf.size <= 3 * one


def test_message_without_call_id_is_counted_not_kept() -> None:
    buf = CaptureBuffer()
    assert buf.add(1.0, "UDP", A, B, b"garbage\r\n\r\n", outgoing=False) is None
    assert buf.untagged == 1 and len(buf) == 0


@pytest.mark.parametrize("field", ["max_calls", "max_call_bytes", "max_bytes"])
def test_limits_name_the_bad_field(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CaptureLimits(**{field: 0})


def test_a_hop_captured_at_both_ends_is_kept_once_but_retransmissions_stay() -> None:
    buf = CaptureBuffer()
    invite = ladder("c")[0][1]
    buf.add(1.0, "UDP", A, B, invite, outgoing=True)  # sent by one transport of ours
    buf.add(1.001, "UDP", A, B, invite, outgoing=False)  # received by another of ours
    buf.add(1.5, "UDP", A, B, invite, outgoing=True)  # Timer A: the retransmission
    buf.add(1.501, "UDP", A, B, invite, outgoing=False)
    got = buf.messages_of(["c"])
    assert [m.time for m in got] == [1.0, 1.5]
    # a message only received (from a peer outside the process) is kept
    trace = buf.get("c")
    assert trace is not None
    assert len(merge([trace.messages[1:2]])) == 1
