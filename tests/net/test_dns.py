"""RFC 3263 location over real UDP DNS: dnspython's resolver against a tiny authoritative server.

The server is built in the test from a zone text with ``dns.zone`` and ``dns.message``, bound to
127.0.0.1 on a free port. Every address in the zone is a loopback address.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from hybridvoice.net.dns import DnsLookupError, LocateError, locate, make_resolver
from hybridvoice.sip.locate import DnsCache, LocateRequest, Target, TargetList

ZONE = """
$ORIGIN example.test.
$TTL 300
@               SOA   ns hostmaster 1 3600 600 86400 60
@               NS    ns
ns              A     127.0.0.1

; RFC 3263 §4.1: NAPTR -> SRV -> A/AAAA
naptr           NAPTR 20 10 "s" "SIP+D2U"  "" _sip._udp.naptr
naptr           NAPTR 10 10 "s" "SIP+D2T"  "" _sip._tcp.naptr
naptr           NAPTR 10 20 "s" "SIP+D2S"  "" _sip._sctp.naptr
naptr           NAPTR 30 10 "s" "SIPS+D2T" "" _sips._tcp.naptr
_sip._tcp.naptr  SRV  0 0 5070 pbx1
_sip._udp.naptr  SRV  0 0 5080 pbx2
_sip._sctp.naptr SRV  0 0 5090 pbx2
_sips._tcp.naptr SRV  0 0 5071 pbx1
pbx1            A     127.0.0.11
pbx1            AAAA  ::1
pbx2            A     127.0.0.12

; §4.1 no NAPTR: SRV per transport; priorities order the targets
_sip._udp.srv   SRV   10 0 5060 pbx2
_sip._udp.srv   SRV   0 0 5062 pbx1
_sips._tcp.srv  SRV   0 0 0 .

; §4.2 no NAPTR, no SRV: A/AAAA on the default port
plain           A     127.0.0.13
plain           AAAA  ::1
"""

T = TypeVar("T")


class ZoneServer(asyncio.DatagramProtocol):
    """Authoritative answers from a zone; some names SERVFAIL, some are never answered."""

    def __init__(self, zone: dns.zone.Zone, servfail: set[str], silent: set[str]) -> None:
        assert zone.origin is not None
        self.zone = zone
        self.origin = zone.origin
        self.servfail = {dns.name.from_text(n) for n in servfail}
        self.silent = {dns.name.from_text(n) for n in silent}
        self.questions: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport is not a DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        self.questions.append(
            (question.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype))
        )
        if question.name in self.silent:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        self.answer(question, response)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    def answer(self, question: dns.rrset.RRset, response: dns.message.Message) -> None:
        if question.name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        if not question.name.is_subdomain(self.origin):
            response.set_rcode(dns.rcode.REFUSED)
            return
        node = self.zone.get_node(question.name)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rdataset = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
            if rdataset is not None:
                response.answer.append(
                    dns.rrset.from_rdata_list(question.name, rdataset.ttl, list(rdataset))
                )
                return
        soa = self.zone.find_rdataset(self.origin, dns.rdatatype.SOA)
        response.authority.append(dns.rrset.from_rdata_list(self.origin, 60, list(soa)))


def with_server(
    scenario: Callable[[ZoneServer, int], Awaitable[T]],
    *,
    servfail: set[str] | None = None,
    silent: set[str] | None = None,
) -> T:
    """Run ``scenario(server, port)`` with the zone served on 127.0.0.1 on a free UDP port."""
    zone = dns.zone.from_text(ZONE, relativize=False)

    async def main() -> T:
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(
            lambda: ZoneServer(zone, servfail or set(), silent or set()),
            local_addr=("127.0.0.1", 0),
        )
        try:
            return await scenario(server, transport.get_extra_info("sockname")[1])
        finally:
            transport.close()

    return asyncio.run(main())


def request(host: str, *, secure: bool = False, transport: str | None = None) -> LocateRequest:
    return LocateRequest(host, None, transport, secure)


def hops(targets: list[Target]) -> list[tuple[str, str, int]]:
    return [(t.transport, t.address, t.port) for t in targets]


def locate_via_server(
    req: LocateRequest,
    *,
    supported: Sequence[str] = ("udp", "tcp", "tls"),
    families: Sequence[int] = (4, 6),
) -> tuple[list[Target], list[tuple[str, str]]]:
    """Locate ``req`` through the zone server; the targets and the questions it was asked."""

    async def scenario(server: ZoneServer, port: int) -> tuple[list[Target], list[tuple[str, str]]]:
        resolver = make_resolver(["127.0.0.1"], port=port, timeout=0.5, lifetime=1.0)
        rng = random.Random(1)
        targets = await locate(req, resolver, rng=rng, supported=supported, families=families)
        return targets, server.questions

    return with_server(scenario)


def test_naptr_srv_and_addresses_over_real_dns() -> None:
    targets, asked = locate_via_server(request("naptr.example.test"))
    assert hops(targets) == [
        ("tcp", "127.0.0.11", 5070),
        ("tcp", "::1", 5070),
        ("udp", "127.0.0.12", 5080),
        ("tls", "127.0.0.11", 5071),
        ("tls", "::1", 5071),
    ]
    assert targets[0].host == "pbx1.example.test"
    assert asked[0] == ("naptr.example.test", "NAPTR")
    assert ("_sip._sctp.naptr.example.test", "SRV") not in asked  # SCTP is not supported


def test_sctp_naptr_used_when_supported() -> None:
    targets, _ = locate_via_server(
        request("naptr.example.test"), supported=("udp", "tcp", "tls", "sctp")
    )
    assert hops(targets)[2] == ("sctp", "127.0.0.12", 5090)


def test_sips_keeps_only_sips_naptr() -> None:
    targets, _ = locate_via_server(request("naptr.example.test", secure=True))
    assert hops(targets) == [("tls", "127.0.0.11", 5071), ("tls", "::1", 5071)]


def test_srv_without_naptr_and_dot_target_over_real_dns() -> None:
    targets, asked = locate_via_server(request("srv.example.test"))
    assert hops(targets) == [
        ("udp", "127.0.0.11", 5062),
        ("udp", "::1", 5062),
        ("udp", "127.0.0.12", 5060),
    ]
    assert {("_sips._tcp.srv.example.test", "SRV"), ("_sip._tcp.srv.example.test", "SRV")} <= set(
        asked
    )


def test_sips_with_dot_srv_target_finds_nothing() -> None:
    targets, asked = locate_via_server(request("srv.example.test", secure=True))
    assert targets == []
    assert ("srv.example.test", "A") not in asked


def test_address_fallback_on_default_port_over_real_dns() -> None:
    targets, _ = locate_via_server(request("plain.example.test"), families=(6, 4))
    assert hops(targets) == [("udp", "::1", 5060), ("udp", "127.0.0.13", 5060)]


def test_transport_parameter_over_real_dns() -> None:
    targets, asked = locate_via_server(request("plain.example.test", transport="tls"))
    assert hops(targets) == [("tls", "127.0.0.13", 5061), ("tls", "::1", 5061)]
    assert asked[0] == ("_sips._tcp.plain.example.test", "SRV")


def test_nxdomain_is_an_empty_list() -> None:
    targets, asked = locate_via_server(request("missing.example.test"))
    assert targets == []
    assert ("missing.example.test", "A") in asked


def test_numeric_target_sends_no_query() -> None:
    targets, asked = locate_via_server(LocateRequest("127.0.0.5", 5099, None, secure=False))
    assert hops(targets) == [("udp", "127.0.0.5", 5099)]
    assert asked == []


def test_cache_saves_the_second_lookup() -> None:
    async def scenario(server: ZoneServer, port: int) -> None:
        resolver = make_resolver(["127.0.0.1"], port=port)
        cache = DnsCache()
        rng = random.Random(1)
        first = await locate(request("srv.example.test"), resolver, rng=rng, cache=cache, now=0.0)
        count = len(server.questions)
        second = await locate(request("srv.example.test"), resolver, rng=rng, cache=cache, now=5.0)
        assert len(server.questions) == count
        assert {*first} == {*second}
        await locate(request("srv.example.test"), resolver, rng=rng, cache=cache, now=400.0)
        assert len(server.questions) == 2 * count

    with_server(scenario)


def test_servfail_raises_locate_error() -> None:
    async def scenario(server: ZoneServer, port: int) -> None:
        resolver = make_resolver(["127.0.0.1"], port=port, timeout=0.5, lifetime=1.0)
        with pytest.raises(DnsLookupError) as caught:
            await locate(request("naptr.example.test"), resolver, rng=random.Random(1))
        assert caught.value.query.name == "_sip._tcp.naptr.example.test"

    with_server(scenario, servfail={"_sip._tcp.naptr.example.test"})


def test_timeout_raises_locate_error() -> None:
    async def scenario(server: ZoneServer, port: int) -> None:
        resolver = make_resolver(["127.0.0.1"], port=port, timeout=0.2, lifetime=0.4)
        with pytest.raises(LocateError, match="timed out"):
            await locate(request("plain.example.test"), resolver, rng=random.Random(1))

    with_server(scenario, silent={"plain.example.test"})


def test_failover_walks_the_located_targets() -> None:
    targets, _ = locate_via_server(request("srv.example.test"), families=(4,))
    attempts = TargetList(targets)
    first = attempts.next()
    assert first is not None
    attempts.mark_failed(first, now=0.0)  # e.g. a 503 from 127.0.0.11
    nxt = attempts.next()
    assert nxt is not None and nxt.address == "127.0.0.12"
    assert attempts.next() is None
