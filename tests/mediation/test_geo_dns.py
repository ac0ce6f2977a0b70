"""The geo-DNS core (hybridvoice.mediation.geo_dns): the seed's example answered per site, by
source address and by EDNS Client Subnet (RFC 7871); apex, NXDOMAIN, REFUSED, ANY (RFC 8482),
case (RFC 4343), truncation (RFC 1035 §4.2.1, RFC 6891), health, malformed input."""

from __future__ import annotations

import ipaddress
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest
from geo_dns_seed import AMSTERDAM, NAME, SEATTLE, seed_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridvoice.cms.settings_geo_dns import parse_geo_dns
from hybridvoice.mediation.geo_dns import GeoDns, GeoPolicy, GeoSite, policy_from_settings


def core(**changes: object) -> GeoDns:
    return GeoDns(policy_from_settings(parse_geo_dns(seed_raw(**changes))))


def ask(
    dns_core: GeoDns,
    name: str = NAME,
    rdtype: str = "A",
    source: str = "127.0.0.1",
    *,
    ecs: str | None = None,
    tcp: bool = False,
    payload: int | None = None,
) -> dns.message.Message:
    options = [dns.edns.ECSOption.from_text(ecs)] if ecs else []
    use_edns = 0 if (options or payload) else -1
    query = dns.message.make_query(
        name, rdtype, use_edns=use_edns, options=options, payload=payload or 1232
    )
    data = dns_core.answer(query.to_wire(), source, tcp=tcp)
    assert data is not None
    reply = dns.message.from_wire(data)
    assert reply.id == query.id
    return reply


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def test_each_site_gets_its_own_mediation_addresses_by_source_address() -> None:
    geo = core()
    amsterdam = ask(geo, source="127.0.0.2")
    seattle = ask(geo, source="127.0.0.3")
    assert addresses(amsterdam) == sorted(AMSTERDAM)
    assert addresses(seattle) == sorted(SEATTLE)
    assert amsterdam.flags & dns.flags.AA and not amsterdam.flags & dns.flags.RA
    assert amsterdam.answer[0].ttl == 60
    assert geo.stats_table()["Amsterdam"] == {"answer": 1}
    assert geo.stats_table()["Seattle"] == {"answer": 1}


def test_client_subnet_option_picks_the_site_and_is_echoed_with_a_scope() -> None:
    geo = core()
    reply = ask(geo, source="127.0.0.9", ecs="192.168.1.0/24")
    assert addresses(reply) == sorted(AMSTERDAM)
    (echo,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    assert (echo.address, echo.srclen, echo.scopelen) == ("192.168.1.0", 24, 24)
    assert addresses(ask(geo, source="127.0.0.2", ecs="10.10.1.77/32")) == sorted(SEATTLE)
    assert addresses(ask(geo, ecs="2001:db8:1:42::/64")) == sorted(AMSTERDAM)


def test_client_subnet_scope_is_zero_for_answers_that_are_the_same_for_everyone() -> None:
    geo = core()
    for name, rdtype in (("adatum.biz", "SOA"), ("www.adatum.biz", "A"), ("example.org", "A")):
        reply = ask(geo, name=name, rdtype=rdtype, ecs="192.168.1.0/24")
        (echo,) = reply.options
        assert (echo.srclen, echo.scopelen) == (24, 0), name


def test_client_subnet_of_length_zero_falls_back_to_the_source_address() -> None:
    reply = ask(core(), source="127.0.0.3", ecs="0.0.0.0/0")
    assert addresses(reply) == sorted(SEATTLE)
    (echo,) = reply.options
    assert echo.scopelen == 0


def test_client_subnet_with_bits_beyond_its_prefix_is_formerr() -> None:
    geo = core()
    query = dns.message.make_query(NAME, "A", use_edns=0)
    bad = struct.pack("!HBB", 1, 16, 0) + bytes([192, 168, 1])  # 3 bytes for a /16
    query.use_edns(0, options=[dns.edns.GenericOption(8, bad)])
    data = geo.answer(query.to_wire(), "127.0.0.2")
    assert data is not None
    assert dns.message.from_wire(data).rcode() == dns.rcode.FORMERR
    assert geo.stats["-", "formerr"] == 1


@pytest.mark.parametrize(
    ("unmatched", "rcode", "count"),
    [("refuse", dns.rcode.REFUSED, 0), ("nxdomain", dns.rcode.NXDOMAIN, 0), ("all", 0, 7)],
)
def test_clients_of_no_site_get_what_the_setting_says(
    unmatched: str, rcode: int, count: int
) -> None:
    geo = core(Unmatched=unmatched)
    reply = ask(geo, source="127.0.0.1")
    assert reply.rcode() == rcode
    assert len(addresses(reply)) == count
    assert sum(v for (site, _), v in geo.stats.items() if site == "unmatched") == 1


def test_names_are_case_insensitive_and_the_question_is_echoed_as_written() -> None:
    reply = ask(core(), name="HybridVoice.ADATUM.biz", source="127.0.0.3")
    assert addresses(reply) == sorted(SEATTLE)
    assert reply.question[0].name.to_text() == "HybridVoice.ADATUM.biz."


def test_apex_soa_ns_other_names_nxdomain_outside_refused() -> None:
    geo = core()
    soa = ask(geo, name="adatum.biz", rdtype="SOA")
    assert soa.answer[0].rdtype == dns.rdatatype.SOA
    assert "ns1.adatum.biz. hostmaster.adatum.biz. 1" in soa.answer[0].to_text()
    ns = ask(geo, name="adatum.biz", rdtype="NS")
    assert ns.answer[0][0].to_text() == "ns1.adatum.biz."
    glue = ask(geo, name="ns1.adatum.biz")
    assert addresses(glue) == ["192.168.1.2"]
    missing = ask(geo, name="www.adatum.biz")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].rdtype == dns.rdatatype.SOA
    outside = ask(geo, name="example.org")
    assert outside.rcode() == dns.rcode.REFUSED and not outside.answer


def test_aaaa_without_v6_addresses_is_nodata_and_any_is_one_rrset() -> None:
    geo = core()
    nodata = ask(geo, rdtype="AAAA", source="127.0.0.3")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    mx = ask(geo, rdtype="MX", source="127.0.0.3")
    assert not mx.answer and mx.authority
    anything = ask(geo, rdtype="ANY", source="127.0.0.2")
    assert len(anything.answer) == 1 and anything.answer[0].rdtype == dns.rdatatype.A


def test_aaaa_records_for_v6_mediation_addresses() -> None:
    raw = seed_raw()
    raw["GeoDns"]["Sites"]["Amsterdam"]["MediationIPs"].append("2001:db8:1::45")
    geo = GeoDns(policy_from_settings(parse_geo_dns(raw)))
    assert addresses(ask(geo, rdtype="AAAA", source="127.0.0.2")) == ["2001:db8:1::45"]


def test_down_appliances_are_left_out_and_a_dead_site_falls_back_to_the_others() -> None:
    geo = core()
    geo.set_down(["192.168.1.45", "192.168.1.46"])
    assert addresses(ask(geo, source="127.0.0.2")) == ["192.168.1.47", "192.168.1.48"]
    geo.set_down(SEATTLE)
    assert addresses(ask(geo, source="127.0.0.3")) == sorted(AMSTERDAM)
    geo.set_down([])
    assert addresses(ask(geo, source="127.0.0.3")) == sorted(SEATTLE)


def big_core() -> GeoDns:
    many = tuple(ipaddress.ip_address(f"10.20.0.{i}") for i in range(1, 41))
    site = GeoSite("Big", (ipaddress.ip_network("127.0.0.0/8"),), many)
    return GeoDns(GeoPolicy(name="hv.example.com", zone="example.com", sites=(site,)))


def test_udp_answers_over_512_bytes_are_truncated_unless_edns_allows_them() -> None:
    geo = big_core()
    classic = ask(geo, name="hv.example.com")
    assert classic.flags & dns.flags.TC and not classic.answer
    assert len(addresses(ask(geo, name="hv.example.com", tcp=True))) == 40
    assert len(addresses(ask(geo, name="hv.example.com", payload=1232))) == 40
    small = ask(geo, name="hv.example.com", payload=200)  # below 512 counts as 512 (RFC 6891)
    assert small.flags & dns.flags.TC
    assert geo.stats["-", "truncated"] == 2


def test_notimp_for_other_opcodes_badvers_for_other_edns_versions() -> None:
    geo = core()
    update = dns.message.make_query(NAME, "A")
    update.set_opcode(dns.opcode.UPDATE)
    data = geo.answer(update.to_wire(), "127.0.0.2")
    assert data is not None and dns.message.from_wire(data).rcode() == dns.rcode.NOTIMP
    v1 = dns.message.make_query(NAME, "A", use_edns=1)
    data = geo.answer(v1.to_wire(), "127.0.0.2")
    assert data is not None and dns.message.from_wire(data).rcode() == dns.rcode.BADVERS


def test_garbage_is_dropped_or_formerr_never_a_crash() -> None:
    geo = core()
    assert geo.answer(b"", "127.0.0.2") is None
    assert geo.answer(b"\x12\x34\x01", "127.0.0.2") is None
    header_only_lies = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"
    data = geo.answer(header_only_lies, "127.0.0.2")
    assert data is not None
    reply = dns.message.from_wire(data)
    assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
    response = dns.message.make_response(dns.message.make_query(NAME, "A"))
    assert geo.answer(response.to_wire(), "127.0.0.2") is None  # never answer a response
    assert geo.stats["-", "dropped"] == 3 and geo.stats["-", "formerr"] == 1


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_any_bytes_never_crash_the_core(data: bytes, tcp: bool) -> None:
    reply = core().answer(data, "127.0.0.2", tcp=tcp)
    if reply is not None:
        assert len(reply) >= 12 and reply[:2] == data[:2]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 30))
def test_mangled_real_queries_never_crash_the_core(tail: bytes, cut: int) -> None:
    query = dns.message.make_query(NAME, "A", use_edns=0, options=[
        dns.edns.ECSOption("192.168.1.0", 24)]).to_wire()  # fmt: skip
    data = query[: len(query) - cut] + tail
    reply = core().answer(data, "127.0.0.2")
    assert reply is None or reply[:2] == data[:2]


def test_repeated_queries_are_answered_alike_and_counted_and_health_changes_apply() -> None:
    geo = core()
    first = ask(geo, source="127.0.0.2")
    again = ask(geo, source="127.0.0.2")  # another ID, the same question: from the cache
    assert addresses(first) == addresses(again) == sorted(AMSTERDAM)
    assert geo.stats["Amsterdam", "answer"] == 2
    geo.set_down(["192.168.1.45"])
    assert "192.168.1.45" not in addresses(ask(geo, source="127.0.0.2"))
    geo.policy = core(Unmatched="all").policy
    assert len(addresses(ask(geo, source="127.0.0.1"))) == 6  # all sites, one still down


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
            st.sampled_from([NAME, "adatum.biz", "www.adatum.biz", "HYBRIDVOICE.adatum.biz"]),
            st.sampled_from(["A", "AAAA", "SOA", "ANY"]),
            st.sampled_from([None, "192.168.1.0/24", "10.10.1.0/24", "8.8.8.0/24"]),
            st.sampled_from([(), ("192.168.1.45",), tuple(SEATTLE)]),
        ),
        max_size=30,
    )
)
def test_the_cache_never_changes_an_answer(
    steps: list[tuple[str, str, str, str | None, tuple[str, ...]]],
) -> None:
    cached = core()
    current: tuple[str, ...] = ()
    for source, name, rdtype, ecs, down in steps:
        if down != current:  # a new down set empties the cache; the same one keeps it
            cached.set_down(down)
            current = down
        fresh = core()
        fresh.set_down(down)
        options = [dns.edns.ECSOption.from_text(ecs)] if ecs else []
        query = dns.message.make_query(name, rdtype, use_edns=0 if ecs else -1, options=options)
        wire = query.to_wire()
        assert cached.answer(wire, source) == fresh.answer(wire, source)
        assert cached.answer(wire, source) == fresh.answer(wire, source)
    total = sum(cached.stats.values())
    assert total == 2 * len(steps)
