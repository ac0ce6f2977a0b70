"""The geo-DNS responder on loopback (hybridvoice.net.dns_server + the geo-DNS core), queried with
dnspython over UDP and TCP from two loopback source addresses standing for two sites' clients
(127.0.0.2/32 is "Amsterdam", 127.0.0.3/32 "Seattle"), and by EDNS Client Subnet; truncation
and retry over TCP; garbage datagrams and TCP frames neither crash it nor stop it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
from geo_dns_seed import AMSTERDAM, NAME, SEATTLE, seed_raw
from ports import free_port

from hybridvoice.cms.settings_geo_dns import parse_geo_dns
from hybridvoice.mediation.geo_dns import GeoDns, GeoPolicy, GeoSite, policy_from_settings
from hybridvoice.net.dns_server import DnsServer

TIMEOUT = 10.0


def run(test: Callable[[DnsServer, GeoDns], Awaitable[None]], geo: GeoDns | None = None) -> None:
    core = geo or GeoDns(policy_from_settings(parse_geo_dns(seed_raw())))

    async def main() -> None:
        server = await DnsServer.open(core.answer, "127.0.0.1", free_port())
        try:
            await test(server, core)
        finally:
            await server.close()

    asyncio.run(main())


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def test_udp_and_tcp_from_each_site_get_that_sites_mediation_addresses() -> None:
    async def check(server: DnsServer, core: GeoDns) -> None:
        host, port = server.address
        for source, expected in (("127.0.0.2", AMSTERDAM), ("127.0.0.3", SEATTLE)):
            query = dns.message.make_query(NAME, "A")
            udp = await dns.asyncquery.udp(query, host, port=port, source=source, timeout=TIMEOUT)
            tcp = await dns.asyncquery.tcp(query, host, port=port, source=source, timeout=TIMEOUT)
            assert addresses(udp) == addresses(tcp) == sorted(expected)
        table = core.stats_table()
        assert table["Amsterdam"]["answer"] == 2 and table["Seattle"]["answer"] == 2

    run(check)


def test_client_subnet_stands_for_the_client_subnet_of_each_site() -> None:
    async def check(server: DnsServer, core: GeoDns) -> None:
        host, port = server.address
        for subnet, expected in (("192.168.1.0/24", AMSTERDAM), ("10.10.1.0/24", SEATTLE)):
            ecs = dns.edns.ECSOption.from_text(subnet)
            query = dns.message.make_query(NAME, "A", use_edns=0, options=[ecs])
            reply = await dns.asyncquery.udp(query, host, port=port, timeout=TIMEOUT)
            assert addresses(reply) == sorted(expected)
        refused = await dns.asyncquery.udp(
            dns.message.make_query(NAME, "A"), host, port=port, timeout=TIMEOUT
        )
        assert refused.rcode() == dns.rcode.REFUSED  # 127.0.0.1 is in no site (Unmatched)

    run(check)


def test_a_truncated_udp_answer_is_complete_over_tcp() -> None:
    many = tuple(ipaddress.ip_address(f"10.20.0.{i}") for i in range(1, 41))
    site = GeoSite("Big", (ipaddress.ip_network("127.0.0.0/8"),), many)
    geo = GeoDns(GeoPolicy(name="hv.example.com", zone="example.com", sites=(site,)))

    async def check(server: DnsServer, core: GeoDns) -> None:
        host, port = server.address
        query = dns.message.make_query("hv.example.com", "A")
        udp = await dns.asyncquery.udp(query, host, port=port, timeout=TIMEOUT)
        assert udp.flags & dns.flags.TC and not udp.answer
        reply, used_tcp = await dns.asyncquery.udp_with_fallback(
            query, host, port=port, timeout=TIMEOUT
        )
        assert used_tcp and len(addresses(reply)) == 40

    run(check, geo)


def test_garbage_over_udp_and_tcp_is_survived_and_counted() -> None:
    async def check(server: DnsServer, core: GeoDns) -> None:
        host, port = server.address
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind(("127.0.0.2", 0))
            for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\x00" * 3 + b"\x01" * 40):
                await loop.sock_sendto(sock, junk, (host, port))
            formerr = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
        assert dns.message.from_wire(formerr).rcode() == dns.rcode.FORMERR
        _reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x00\x05junk!\x00\x30" + b"\x00" * 5)  # one junk frame, one cut short
        writer.close()
        query = dns.message.make_query(NAME, "A")
        reply = await dns.asyncquery.tcp(query, host, port=port, source="127.0.0.3",
                                         timeout=TIMEOUT)  # fmt: skip
        assert addresses(reply) == sorted(SEATTLE)
        assert core.stats["-", "dropped"] >= 2 and core.stats["-", "formerr"] >= 1
        assert server.errors == 0

    run(check)


def test_a_handler_that_raises_leaves_the_server_serving() -> None:
    calls: list[bytes] = []

    def flaky(data: bytes, source: str, tcp: bool) -> bytes | None:
        calls.append(data)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return dns.message.make_response(dns.message.from_wire(data)).to_wire()

    async def main() -> None:
        server = await DnsServer.open(flaky, "127.0.0.1", free_port())
        try:
            query = dns.message.make_query(NAME, "A")
            host, port = server.address
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(query.to_wire(), (host, port))  # the handler raises on this one
                for _ in range(1000):
                    if calls:
                        break
                    await asyncio.sleep(0.01)
            reply = await dns.asyncquery.tcp(query, host, port=port, timeout=TIMEOUT)
            assert reply.id == query.id
            assert server.errors == 1
        finally:
            await server.close()

    asyncio.run(main())


def test_tcp_connections_beyond_the_limit_are_closed_and_the_first_still_served() -> None:
    core = GeoDns(policy_from_settings(parse_geo_dns(seed_raw())))

    async def main() -> None:
        server = await DnsServer.open(core.answer, "127.0.0.1", free_port(), max_connections=1)
        try:
            host, port = server.address
            first_reader, first = await asyncio.open_connection(host, port, local_addr=(
                "127.0.0.2", 0))  # fmt: skip
            query = dns.message.make_query(NAME, "A").to_wire()
            first.write(len(query).to_bytes(2, "big") + query)
            await first.drain()
            size = int.from_bytes(await first_reader.readexactly(2), "big")
            reply = dns.message.from_wire(await first_reader.readexactly(size))
            assert addresses(reply) == sorted(AMSTERDAM)
            second_reader, second = await asyncio.open_connection(host, port)
            assert await asyncio.wait_for(second_reader.read(), TIMEOUT) == b""  # closed
            second.close()
            first.write(len(query).to_bytes(2, "big") + query)  # the first one goes on
            size = int.from_bytes(await first_reader.readexactly(2), "big")
            assert addresses(dns.message.from_wire(await first_reader.readexactly(size)))
            first.close()
        finally:
            await server.close()

    asyncio.run(main())
