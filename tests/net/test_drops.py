"""Every message a real endpoint drops or refuses is counted by reason (issue 9): each class
of bad input is sent over UDP and over TCP to an :class:`Endpoint` on loopback, and the
``hybridvoice_sip_dropped_total{endpoint, transport, reason, answered}`` sample of its class
(read as a Prometheus scrape reads it) moves by one, and no other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.metrics import endpoint_metrics
from hybridvoice.net.transport import DROP_REASONS

WAIT = 5.0

GOOD = (
    "OPTIONS sip:uas@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/{t} 127.0.0.1:{port};branch=z9hG4bK{n}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:uac@example.com>;tag=1928301774\r\n"
    "To: <sip:uas@example.com>\r\n"
    "Call-ID: drop{n}@pc33\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _replace(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new, 1)


#: reason of the cases named otherwise
REASON = {"no Via": "missing_header", "no CSeq": "missing_header"}
REASON["response without CSeq"] = "missing_header"

#: case -> (mutation of a good request, answered with an error response?)
CASES: dict[str, tuple[Callable[[str], str], bool]] = {
    "no Via": (lambda t: "\r\n".join(x for x in t.split("\r\n") if "Via" not in x), False),
    "bare_cr_lf": (_replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\nVia: x\r\n"), True),
    "bad_number": (_replace("Max-Forwards: 70", "Max-Forwards: " + "9" * 5000), True),
    "bad_host": (_replace("sip:uas@127.0.0.1 SIP", "sip:uas@[::1::2] SIP"), True),
    "bad_start_line": (_replace(" SIP/2.0\r\n", " SIP/2.0 x\r\n"), False),
    "bad_version": (_replace(" SIP/2.0\r\n", " SIP/3.0\r\n"), True),
    "bad_content_length": (_replace("Content-Length: 0", "Content-Length: 1\r\nl: 2"), True),
    "malformed": (_replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS"), True),
    # no CSeq: no transaction can take it (it used to vanish in the transaction layer)
    "no CSeq": (_replace("CSeq: 1 OPTIONS\r\n", ""), True),
    "response without CSeq": (
        lambda t: (
            t.replace("OPTIONS sip:uas@127.0.0.1 SIP/2.0", "SIP/2.0 200 OK", 1)
            .replace("CSeq: 1 OPTIONS\r\n", "")
            .replace("127.0.0.1:", "{ours}", 1)
        ),
        False,
    ),
    "unparseable": (lambda t: "\x00\x01 garbage without a header section", False),
    "via_mismatch": (
        lambda t: t.replace("OPTIONS sip:uas@127.0.0.1 SIP/2.0", "SIP/2.0 200 OK", 1).replace(
            "127.0.0.1:", "192.0.2.9:", 1
        ),
        False,
    ),
}


def dropped(endpoint: Endpoint) -> dict[tuple[str, str, str], float]:
    """The drop family's samples by (transport, reason, answered), as scraped."""
    out: dict[tuple[str, str, str], float] = {}
    for family in endpoint_metrics([("ep", endpoint)]):
        if family.name == "hybridvoice_sip_dropped":
            for sample in family.samples:
                labels = sample.labels
                assert labels["endpoint"] == "ep"
                out[labels["transport"], labels["reason"], labels["answered"]] = sample.value
    return out


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.01)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)


def test_the_reasons_of_the_cases_are_the_fixed_label_set() -> None:
    assert {REASON.get(case, case) for case in CASES} <= DROP_REASONS


@pytest.mark.parametrize("kind", ["UDP", "TCP"])
def test_each_class_of_bad_input_moves_its_own_counter(kind: str) -> None:
    async def main() -> None:
        endpoint = Endpoint()
        transport = await endpoint.listen(kind, "127.0.0.1", 0)
        port = transport.local[1]
        loop = asyncio.get_running_loop()
        udp, client = await loop.create_datagram_endpoint(_Client, local_addr=("127.0.0.1", 0))
        try:
            for n, (case, (mutate, answered)) in enumerate(CASES.items()):
                reason = REASON.get(case, case)
                before = dropped(endpoint)
                data = mutate(GOOD.format(t=kind, port=udp.get_extra_info("sockname")[1], n=n))
                data = data.replace("{ours}", f"{transport.sent_by};x=")
                answer = await _send(kind, data.encode(), port, udp, client, answered)
                # a stream waits for the head's end: the peer closes first
                counted = "truncated" if (kind, reason) == ("TCP", "unparseable") else reason
                key = (kind, counted, "true" if answered else "false")
                await until(lambda: dropped(endpoint).get(key, 0) == before.get(key, 0) + 1)  # noqa: B023
                after = dropped(endpoint)
                assert sum(after.values()) == sum(before.values()) + 1, (reason, after)
                if answered:
                    assert answer is not None and answer.startswith(b"SIP/2.0 "), reason
            # a good request after all of them: delivered, not dropped
            good = GOOD.format(t=kind, port=udp.get_extra_info("sockname")[1], n=99).encode()
            before = sum(dropped(endpoint).values())
            await _send(kind, good, port, udp, client)
            await until(lambda: endpoint.counters.requests_in.get("OPTIONS", 0) == 1)
            assert sum(dropped(endpoint).values()) == before
        finally:
            udp.close()
            await endpoint.close()

    asyncio.run(main())


async def _send(
    kind: str,
    data: bytes,
    port: int,
    udp: asyncio.DatagramTransport,
    client: _Client,
    answered: bool = False,
) -> bytes | None:
    """Send ``data``; the answer when one is expected (UDP), or whatever came back until the
    server closed (TCP)."""
    if kind == "UDP":
        seen = len(client.received)
        udp.sendto(data, ("127.0.0.1", port))
        if not answered:
            return None
        await until(lambda: len(client.received) > seen)
        return client.received[seen]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(WAIT):
            answer = await reader.read()
        return answer or None
    finally:
        writer.close()


def test_unknown_methods_are_counted_as_other() -> None:
    """Method labels are a fixed set too: a made-up method cannot add label values."""

    async def main() -> None:
        endpoint = Endpoint()
        transport = await endpoint.listen("UDP", "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(_Client, local_addr=("127.0.0.1", 0))
        try:
            for n, method in enumerate(["XYZZY", "FOO1", "OPTIONS"]):
                data = GOOD.format(t="UDP", port=udp.get_extra_info("sockname")[1], n=n)
                data = data.replace("OPTIONS", method)
                udp.sendto(data.encode(), transport.local)
            await until(lambda: sum(endpoint.counters.requests_in.values()) == 3)
            assert endpoint.counters.requests_in == {"other": 2, "OPTIONS": 1}
        finally:
            udp.close()
            await endpoint.close()

    asyncio.run(main())
