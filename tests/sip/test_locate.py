"""RFC 3263 server location, sans-IO: answer tables for every branch of §4.1-4.3 and §5.

Addresses are documentation prefixes (RFC 5737, RFC 3849): pure data, never contacted.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridvoice.sip.locate import (
    NXDOMAIN,
    AddressRecord,
    DnsAnswer,
    DnsCache,
    DnsQuery,
    FailedTargets,
    LocateRequest,
    Locator,
    LocatorStateError,
    Naptr,
    RdType,
    Record,
    Srv,
    Target,
    TargetList,
    UnsupportedTransportError,
    default_port,
    order_srv,
    resolve_sync,
    response_route,
)

Table = Mapping[tuple[str, str], Sequence[Record]]


class FakeDns:
    """An answer table: (name, rdtype) -> records; a name not in it is NXDOMAIN."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.asked: list[tuple[str, str]] = []

    def __call__(self, query: DnsQuery) -> DnsAnswer:
        self.asked.append((query.name, str(query.rdtype)))
        if (query.name, query.rdtype) in self.table:
            return DnsAnswer(tuple(self.table[query.name, query.rdtype]))
        return NXDOMAIN


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "s") -> Naptr:
    return Naptr(order, pref, flags, service, "", replacement, ttl=300)


def srv(priority: int, weight: int, port: int, target: str, ttl: int = 300) -> Srv:
    return Srv(priority, weight, port, target, ttl)


def a(address: str, ttl: int = 300) -> AddressRecord:
    return AddressRecord(address, ttl)


def req(
    host: str,
    port: int | None = None,
    transport: str | None = None,
    *,
    secure: bool = False,
    maddr: str | None = None,
) -> LocateRequest:
    return LocateRequest(host, port, transport, secure, maddr)


def run(
    request: LocateRequest,
    dns: FakeDns,
    seed: int = 1,
    *,
    supported: Sequence[str] = ("udp", "tcp", "tls"),
    families: Sequence[int] = (4, 6),
    cache: DnsCache | None = None,
    now: float = 0.0,
) -> list[Target]:
    return resolve_sync(
        request,
        dns,
        rng=random.Random(seed),
        supported=supported,
        families=families,
        cache=cache,
        now=now,
    )


def hops(targets: list[Target]) -> list[tuple[str, str, int]]:
    return [(t.transport, t.address, t.port) for t in targets]


# The RFC 3263 §4.1 example domain: NAPTR -> SRV -> addresses.
EXAMPLE: Table = {
    ("example.com", "NAPTR"): [
        naptr(50, 50, "SIP+D2U", "_sip._udp.example.com."),
        naptr(90, 50, "SIP+D2T", "_sip._tcp.example.com."),
        naptr(100, 50, "SIPS+D2T", "_sips._tcp.example.com."),
    ],
    ("_sip._udp.example.com", "SRV"): [srv(0, 0, 5060, "server1.example.com.")],
    ("_sip._tcp.example.com", "SRV"): [srv(0, 0, 5060, "server2.example.com.")],
    ("_sips._tcp.example.com", "SRV"): [srv(0, 0, 5061, "server3.example.com.")],
    ("server1.example.com", "A"): [a("192.0.2.1")],
    ("server2.example.com", "A"): [a("192.0.2.2")],
    ("server3.example.com", "A"): [a("192.0.2.3")],
    ("server3.example.com", "AAAA"): [a("2001:db8::3")],
}


# --- §4.1 numeric TARGET, explicit port, transport parameter -----------------------------------


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (req("192.0.2.9"), ("udp", "192.0.2.9", 5060)),
        (req("[2001:DB8::9]", 5070), ("udp", "2001:db8::9", 5070)),
        (req("2001:db8::9"), ("udp", "2001:db8::9", 5060)),
        (req("192.0.2.9", secure=True), ("tls", "192.0.2.9", 5061)),
        (req("192.0.2.9", transport="tcp"), ("tcp", "192.0.2.9", 5060)),
        (req("192.0.2.9", transport="TCP", secure=True), ("tls", "192.0.2.9", 5061)),
        (req("example.com", maddr="192.0.2.7"), ("udp", "192.0.2.7", 5060)),
    ],
)
def test_numeric_target_needs_no_dns(
    request_: LocateRequest, expected: tuple[str, str, int]
) -> None:
    dns = FakeDns({})
    assert hops(run(request_, dns)) == [expected]
    assert dns.asked == []


def test_explicit_port_skips_naptr_and_srv_and_uses_udp() -> None:
    dns = FakeDns(EXAMPLE)
    targets = run(req("server3.example.com", 5070), dns)
    assert hops(targets) == [("udp", "192.0.2.3", 5070), ("udp", "2001:db8::3", 5070)]
    assert targets[0].host == "server3.example.com"
    assert dns.asked == [("server3.example.com", "A"), ("server3.example.com", "AAAA")]


def test_explicit_port_on_sips_uses_tls() -> None:
    targets = run(req("server1.example.com", 5071, secure=True), FakeDns(EXAMPLE))
    assert hops(targets) == [("tls", "192.0.2.1", 5071)]


def test_explicit_port_with_transport_parameter() -> None:
    targets = run(req("server1.example.com", 5072, "tcp"), FakeDns(EXAMPLE))
    assert hops(targets) == [("tcp", "192.0.2.1", 5072)]


def test_transport_parameter_queries_srv_for_that_transport_only() -> None:
    dns = FakeDns(EXAMPLE)
    assert hops(run(req("example.com", transport="tcp"), dns)) == [("tcp", "192.0.2.2", 5060)]
    assert dns.asked[0] == ("_sip._tcp.example.com", "SRV")
    assert ("example.com", "NAPTR") not in dns.asked


def test_transport_tcp_on_sips_uri_means_sips_srv_and_tls() -> None:
    dns = FakeDns(EXAMPLE)
    targets = run(req("example.com", transport="tcp", secure=True), dns)
    assert hops(targets) == [("tls", "192.0.2.3", 5061), ("tls", "2001:db8::3", 5061)]
    assert dns.asked[0] == ("_sips._tcp.example.com", "SRV")


def test_transport_parameter_without_srv_falls_back_to_address_on_default_port() -> None:
    dns = FakeDns({("pbx.example.net", "A"): [a("198.51.100.5")]})
    assert hops(run(req("pbx.example.net", transport="tls"), dns)) == [
        ("tls", "198.51.100.5", 5061)
    ]


@pytest.mark.parametrize(
    ("request_", "supported"),
    [
        (req("example.com", transport="udp", secure=True), ("udp", "tcp", "tls")),
        (req("example.com", transport="sctp"), ("udp", "tcp", "tls")),
        (req("example.com", transport="carrier-pigeon"), ("udp", "tcp", "tls")),
        (req("example.com", secure=True), ("udp", "tcp")),
        (req("192.0.2.1"), ()),
    ],
)
def test_unusable_transport_is_an_error(
    request_: LocateRequest, supported: tuple[str, ...]
) -> None:
    with pytest.raises(UnsupportedTransportError):
        run(request_, FakeDns({}), supported=supported)


def test_maddr_name_is_the_target() -> None:
    dns = FakeDns(EXAMPLE)
    targets = run(req("elsewhere.example.net", maddr="Example.COM"), dns)
    assert dns.asked[0] == ("example.com", "NAPTR")
    assert targets[0].address == "192.0.2.1"


def test_websocket_has_no_srv_name_so_goes_to_address_on_its_default_port() -> None:
    dns = FakeDns({("edge.example.net", "A"): [a("198.51.100.6")]})
    targets = run(req("edge.example.net", transport="ws", secure=True), dns, supported=("wss",))
    assert hops(targets) == [("wss", "198.51.100.6", 443)]
    assert [rdtype for _, rdtype in dns.asked] == ["A", "AAAA"]


def test_sip_uri_without_udp_support_defaults_to_tcp() -> None:
    assert hops(run(req("192.0.2.1"), FakeDns({}), supported=("tcp", "tls"))) == [
        ("tcp", "192.0.2.1", 5060)
    ]


# --- §4.1 NAPTR --------------------------------------------------------------------------------


def test_naptr_order_then_srv_then_addresses() -> None:
    dns = FakeDns(EXAMPLE)
    assert hops(run(req("example.com"), dns)) == [
        ("udp", "192.0.2.1", 5060),
        ("tcp", "192.0.2.2", 5060),
        ("tls", "192.0.2.3", 5061),
        ("tls", "2001:db8::3", 5061),
    ]
    assert dns.asked[0] == ("example.com", "NAPTR")


def test_naptr_sorted_by_order_then_preference_whatever_the_answer_order() -> None:
    table = {**EXAMPLE}
    table["example.com", "NAPTR"] = [
        naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
        naptr(10, 90, "SIP+D2T", "_sip._tcp.example.com"),
        naptr(10, 20, "SIPS+D2T", "_sips._tcp.example.com"),
    ]
    assert [t.transport for t in run(req("example.com"), FakeDns(table))] == [
        "tls",
        "tls",
        "tcp",
        "udp",
    ]


def test_naptr_services_of_unsupported_transports_and_bad_flags_are_ignored() -> None:
    table: Table = {
        ("example.org", "NAPTR"): [
            naptr(1, 1, "SIP+D2S", "_sip._sctp.example.org"),
            naptr(2, 1, "SIP+D2W", "_sip._ws.example.org"),
            naptr(3, 1, "E2U+sip", "_sip._tcp.example.org"),
            naptr(4, 1, "SIP+D2T", "_sip._tcp.example.org", flags="a"),
            naptr(5, 1, "SIP+D2T", "."),
            naptr(9, 1, "sip+d2u", "_SIP._UDP.Example.Org."),
        ],
        ("_sip._sctp.example.org", "SRV"): [srv(0, 0, 5060, "sctp.example.org")],
        ("_sip._ws.example.org", "SRV"): [srv(0, 0, 80, "ws.example.org")],
        ("_sip._tcp.example.org", "SRV"): [srv(0, 0, 5060, "tcp.example.org")],
        ("_sip._udp.example.org", "SRV"): [srv(0, 0, 5060, "udp.example.org")],
        ("sctp.example.org", "A"): [a("192.0.2.40")],
        ("ws.example.org", "A"): [a("192.0.2.41")],
        ("tcp.example.org", "A"): [a("192.0.2.42")],
        ("udp.example.org", "A"): [a("192.0.2.43")],
    }
    dns = FakeDns(table)
    assert hops(run(req("example.org"), dns)) == [("udp", "192.0.2.43", 5060)]
    assert ("_sip._sctp.example.org", "SRV") not in dns.asked
    # Once SCTP and WebSocket are supported, their services count, in NAPTR order.
    supported = ("udp", "tcp", "sctp", "ws")
    assert hops(run(req("example.org"), FakeDns(table), supported=supported)) == [
        ("sctp", "192.0.2.40", 5060),
        ("ws", "192.0.2.41", 80),
        ("udp", "192.0.2.43", 5060),
    ]


def test_sips_uri_keeps_only_sips_naptr_services() -> None:
    dns = FakeDns(EXAMPLE)
    assert hops(run(req("example.com", secure=True), dns)) == [
        ("tls", "192.0.2.3", 5061),
        ("tls", "2001:db8::3", 5061),
    ]
    assert ("_sip._udp.example.com", "SRV") not in dns.asked


def test_naptr_without_usable_service_falls_back_to_srv() -> None:
    table: Table = {
        ("example.net", "NAPTR"): [naptr(1, 1, "http+N2L", "www.example.net")],
        ("_sip._tcp.example.net", "SRV"): [srv(0, 0, 5060, "pbx.example.net")],
        ("pbx.example.net", "A"): [a("198.51.100.1")],
    }
    dns = FakeDns(table)
    assert hops(run(req("example.net"), dns)) == [("tcp", "198.51.100.1", 5060)]
    assert ("_sips._tcp.example.net", "SRV") in dns.asked


def test_naptr_whose_srv_is_missing_falls_back_to_address_with_naptr_transport() -> None:
    table: Table = {
        ("example.net", "NAPTR"): [naptr(1, 1, "SIP+D2T", "_sip._tcp.example.net")],
        ("example.net", "A"): [a("198.51.100.2")],
    }
    assert hops(run(req("example.net"), FakeDns(table))) == [("tcp", "198.51.100.2", 5060)]


# --- §4.1 SRV without NAPTR, and the A/AAAA fallback -------------------------------------------


def test_without_naptr_srv_queried_for_each_supported_transport_in_preference_order() -> None:
    table: Table = {
        ("_sip._udp.example.net", "SRV"): [srv(0, 0, 5060, "u.example.net")],
        ("_sip._tcp.example.net", "SRV"): [srv(0, 0, 5060, "t.example.net")],
        ("_sips._tcp.example.net", "SRV"): [srv(0, 0, 5061, "s.example.net")],
        ("u.example.net", "A"): [a("198.51.100.10")],
        ("t.example.net", "A"): [a("198.51.100.11")],
        ("s.example.net", "A"): [a("198.51.100.12")],
    }
    dns = FakeDns(table)
    assert hops(run(req("example.net"), dns)) == [
        ("tls", "198.51.100.12", 5061),
        ("tcp", "198.51.100.11", 5060),
        ("udp", "198.51.100.10", 5060),
    ]
    assert dns.asked[1:4] == [
        ("_sips._tcp.example.net", "SRV"),
        ("_sip._tcp.example.net", "SRV"),
        ("_sip._udp.example.net", "SRV"),
    ]


@pytest.mark.parametrize(
    ("secure", "supported", "srv_asked"),
    [
        (True, ("udp", "tcp", "tls"), ["_sips._tcp.example.net"]),
        (False, ("udp",), ["_sip._udp.example.net"]),
        (False, ("udp", "sctp"), ["_sip._udp.example.net", "_sip._sctp.example.net"]),
    ],
)
def test_srv_queries_follow_scheme_and_supported_transports(
    secure: bool, supported: tuple[str, ...], srv_asked: list[str]
) -> None:
    dns = FakeDns({})
    run(req("example.net", secure=secure), dns, supported=supported)
    assert [name for name, rdtype in dns.asked if rdtype == "SRV"] == srv_asked


@pytest.mark.parametrize(("secure", "expected"), [(False, "udp"), (True, "tls")])
def test_no_naptr_no_srv_means_a_and_aaaa_on_default_port(secure: bool, expected: str) -> None:
    table: Table = {
        ("pbx.example.net", "A"): [a("198.51.100.5")],
        ("pbx.example.net", "AAAA"): [a("2001:db8::5")],
    }
    port = default_port(expected)
    assert hops(run(req("PBX.Example.Net.", secure=secure), FakeDns(table))) == [
        (expected, "198.51.100.5", port),
        (expected, "2001:db8::5", port),
    ]


def test_srv_dot_target_means_not_available_and_no_address_fallback() -> None:
    table: Table = {
        ("_sip._udp.example.net", "SRV"): [srv(0, 0, 0, ".")],
        ("example.net", "A"): [a("198.51.100.5")],
    }
    dns = FakeDns(table)
    assert run(req("example.net"), dns) == []
    assert ("example.net", "A") not in dns.asked


def test_srv_dot_for_one_transport_leaves_the_others() -> None:
    table: Table = {
        ("_sips._tcp.example.net", "SRV"): [srv(0, 0, 0, ".")],
        ("_sip._udp.example.net", "SRV"): [srv(0, 0, 5060, "u.example.net")],
        ("u.example.net", "A"): [a("198.51.100.10")],
    }
    assert hops(run(req("example.net"), FakeDns(table))) == [("udp", "198.51.100.10", 5060)]


def test_nothing_found_is_an_empty_list() -> None:
    assert run(req("nowhere.invalid"), FakeDns({})) == []


# --- §4.2 SRV ordering (RFC 2782) and addresses ------------------------------------------------


def test_srv_priority_comes_before_weight() -> None:
    records = [srv(20, 100, 1, "c"), srv(10, 0, 2, "b"), srv(0, 1, 3, "a")]
    assert [r.target for r in order_srv(records, random.Random(7))] == ["a", "b", "c"]


def test_srv_weighted_choice_is_deterministic_for_a_seed() -> None:
    records = [srv(0, 10, 1, "a"), srv(0, 20, 2, "b"), srv(0, 70, 3, "c")]
    first = [r.target for r in order_srv(records, random.Random(42))]
    assert first == [r.target for r in order_srv(records, random.Random(42))]
    assert sorted(first) == ["a", "b", "c"]


def test_srv_weights_share_the_load() -> None:
    records = [srv(0, 90, 1, "heavy"), srv(0, 10, 2, "light"), srv(0, 0, 3, "zero")]
    rng = random.Random(2024)
    firsts = Counter(order_srv(records, rng)[0].target for _ in range(5000))
    assert 0.85 < firsts["heavy"] / 5000 < 0.95
    assert 0.07 < firsts["light"] / 5000 < 0.13
    assert firsts["zero"] < 50  # picked first only on a draw of exactly 0 (RFC 2782)


def test_srv_targets_and_weights_reach_the_target_list() -> None:
    table: Table = {
        ("_sip._udp.example.net", "SRV"): [
            srv(1, 0, 5060, "backup.example.net"),
            srv(0, 50, 5060, "a.example.net"),
            srv(0, 50, 5062, "b.example.net"),
        ],
        ("a.example.net", "A"): [a("198.51.100.1")],
        ("b.example.net", "A"): [a("198.51.100.2")],
        ("backup.example.net", "A"): [a("198.51.100.3")],
    }
    orders = {tuple(hops(run(req("example.net"), FakeDns(table), seed=seed))) for seed in range(40)}
    assert orders == {
        (
            ("udp", "198.51.100.1", 5060),
            ("udp", "198.51.100.2", 5062),
            ("udp", "198.51.100.3", 5060),
        ),
        (
            ("udp", "198.51.100.2", 5062),
            ("udp", "198.51.100.1", 5060),
            ("udp", "198.51.100.3", 5060),
        ),
    }


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(1, 65535)), max_size=12),
    st.integers(0, 2**32),
)
def test_srv_ordering_is_a_permutation_by_priority(
    fields: list[tuple[int, int, int]], seed: int
) -> None:
    records = [srv(p, w, port, f"t{i}") for i, (p, w, port) in enumerate(fields)]
    ordered = order_srv(records, random.Random(seed))
    assert sorted(ordered, key=records.index) == records
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)


@pytest.mark.parametrize(
    ("families", "expected", "asked"),
    [
        ((4, 6), ["198.51.100.5", "2001:db8::5"], ["A", "AAAA"]),
        ((6, 4), ["2001:db8::5", "198.51.100.5"], ["AAAA", "A"]),
        ((4,), ["198.51.100.5"], ["A"]),
        ((6,), ["2001:db8::5"], ["AAAA"]),
    ],
)
def test_address_families_in_configured_order(
    families: tuple[int, ...], expected: list[str], asked: list[str]
) -> None:
    table: Table = {
        ("pbx.example.net", "A"): [a("198.51.100.5")],
        ("pbx.example.net", "AAAA"): [a("2001:db8::5")],
    }
    dns = FakeDns(table)
    targets = run(req("pbx.example.net", 5060), dns, families=families)
    assert [t.address for t in targets] == expected
    assert [rdtype for _, rdtype in dns.asked] == asked


def test_bad_families_rejected() -> None:
    with pytest.raises(ValueError):
        Locator(req("example.net"), rng=random.Random(), families=(4, 5))


def test_duplicates_and_foreign_records_are_dropped() -> None:
    table: Table = {
        ("example.net", "NAPTR"): [
            naptr(1, 1, "SIP+D2U", "_sip._udp.example.net"),
            naptr(2, 1, "SIP+D2U", "_sip._udp.example.net"),
        ],
        ("_sip._udp.example.net", "SRV"): [
            srv(0, 0, 5060, "pbx.example.net"),
            srv(1, 0, 5060, "198.51.100.77"),  # not a name, but usable as is
        ],
        ("pbx.example.net", "A"): [a("198.51.100.5"), a("2001:db8::1"), a("not-an-ip")],
    }
    assert hops(run(req("example.net"), FakeDns(table))) == [
        ("udp", "198.51.100.5", 5060),
        ("udp", "198.51.100.77", 5060),
    ]


# --- the Locator as a sans-IO state machine ----------------------------------------------------


def test_locator_hands_out_each_phase_as_one_batch() -> None:
    locator = Locator(req("example.com"), rng=random.Random(1))
    dns = FakeDns(EXAMPLE)
    batches = []
    while not locator.done:
        batch = locator.pending()
        batches.append({(q.name, str(q.rdtype)) for q in batch})
        for query in batch:
            locator.feed(query, dns(query))
    assert batches == [
        {("example.com", "NAPTR")},
        {
            ("_sip._udp.example.com", "SRV"),
            ("_sip._tcp.example.com", "SRV"),
            ("_sips._tcp.example.com", "SRV"),
        },
        {(f"server{i}.example.com", rdtype) for i in (1, 2, 3) for rdtype in ("A", "AAAA")},
    ]
    assert len(locator.result()) == 4


def test_locator_rejects_answers_out_of_turn() -> None:
    locator = Locator(req("example.com"), rng=random.Random(1))
    with pytest.raises(LocatorStateError):
        locator.result()
    with pytest.raises(LocatorStateError):
        locator.feed(DnsQuery("example.com", RdType.SRV), NXDOMAIN)
    (query,) = locator.pending()
    locator.feed(query, DnsAnswer())
    with pytest.raises(LocatorStateError):
        locator.feed(query, DnsAnswer())


# --- §4.3 failover -----------------------------------------------------------------------------

T1 = Target("udp", "192.0.2.1", 5060, "one.example.com")
T2 = Target("tcp", "192.0.2.2", 5060, "two.example.com")
T3 = Target("tls", "192.0.2.3", 5061, "three.example.com")


def test_target_list_hands_out_in_order_until_exhausted() -> None:
    targets = TargetList([T1, T2, T3])
    assert len(targets) == 3
    assert [targets.next(), targets.next(), targets.next(), targets.next()] == [T1, T2, T3, None]


def test_mark_failed_drops_later_copies_of_the_same_destination() -> None:
    again = Target("udp", "192.0.2.1", 5060, "alias.example.com")
    targets = TargetList([T1, T2, again, T3])
    first = targets.next()
    assert first == T1
    targets.mark_failed(first, now=0.0)
    assert targets.remaining == (T2, T3)


def test_failed_targets_go_to_the_back_until_their_hold_ends() -> None:
    failed = FailedTargets(hold=32.0)
    first = TargetList([T1, T2, T3], failed=failed, now=100.0)
    target = first.next()
    assert target is not None
    first.mark_failed(target, now=100.0)  # say a timeout, RFC 3263 §4.3
    assert TargetList([T1, T2, T3], failed=failed, now=110.0).remaining == (T2, T3, T1)
    assert TargetList([T1, T2, T3], failed=failed, now=132.0).remaining == (T1, T2, T3)


def test_retry_after_of_a_503_sets_the_hold() -> None:
    failed = FailedTargets(hold=32.0)
    failed.mark(T2, 0.0, retry_after=120.0)
    assert failed.is_failed(T2, 100.0)
    assert not failed.is_failed(T2, 120.0)
    failed.mark(T3, 0.0)
    failed.clear(T3)
    assert not failed.is_failed(T3, 1.0)


def test_all_targets_failed_still_leaves_them_as_last_resort() -> None:
    failed = FailedTargets()
    for target in (T1, T2):
        failed.mark(target, 0.0)
    assert TargetList([T1, T2], failed=failed, now=1.0).remaining == (T1, T2)


# --- DNS cache with a fake clock ---------------------------------------------------------------


def test_cache_answers_until_the_ttl_runs_out() -> None:
    table: Table = {
        ("_sip._udp.example.net", "SRV"): [srv(0, 0, 5060, "pbx.example.net", ttl=3600)],
        ("pbx.example.net", "A"): [a("198.51.100.5", ttl=60)],
    }
    cache = DnsCache(negative_ttl=30.0)
    first = FakeDns(table)
    expected = [("udp", "198.51.100.5", 5060)]
    assert hops(run(req("example.net"), first, cache=cache, now=1000.0)) == expected
    assert len(first.asked) == 6  # NAPTR, 3 SRV, then A and AAAA
    again = FakeDns(table)
    assert hops(run(req("example.net"), again, cache=cache, now=1029.0)) == expected
    assert again.asked == []
    # Negative answers (NAPTR, AAAA, two SRV) expired at 30 s, the A record at 60 s.
    later = FakeDns(table)
    assert hops(run(req("example.net"), later, cache=cache, now=1060.0)) == expected
    assert sorted(later.asked) == [
        ("_sip._tcp.example.net", "SRV"),
        ("_sips._tcp.example.net", "SRV"),
        ("example.net", "NAPTR"),
        ("pbx.example.net", "A"),
        ("pbx.example.net", "AAAA"),
    ]


def test_cache_skips_zero_ttl_and_caps_size() -> None:
    cache = DnsCache(max_entries=2)
    query = DnsQuery("pbx.example.net", RdType.A)
    cache.put(query, DnsAnswer((a("198.51.100.5", ttl=0),)), now=0.0)
    assert cache.get(query, 0.0) is None
    for i in range(3):
        cache.put(DnsQuery(f"h{i}.example.net", RdType.A), DnsAnswer((a("198.51.100.5"),)), 0.0)
    assert len(cache) == 2
    assert cache.get(DnsQuery("h0.example.net", RdType.A), 1.0) is None
    assert cache.get(DnsQuery("h2.example.net", RdType.A), 1.0) is not None


# --- §5 and RFC 3581: where responses go -------------------------------------------------------


def test_response_over_reliable_transport_reuses_the_connection() -> None:
    route = response_route(
        transport="TCP", sent_by_host="pc.example.com", sent_by_port=5070, received="192.0.2.4"
    )
    assert route.reuse_connection
    assert route.target == Target("tcp", "192.0.2.4", 5070, "192.0.2.4")


def test_response_over_tls_without_port_uses_5061() -> None:
    route = response_route(transport="TLS", sent_by_host="192.0.2.4")
    assert route.target == Target("tls", "192.0.2.4", 5061, "192.0.2.4")


def test_response_over_udp_goes_to_received_and_rport() -> None:
    route = response_route(
        transport="UDP",
        sent_by_host="10.0.0.5",
        sent_by_port=5060,
        received="192.0.2.4",
        rport=40123,
    )
    assert not route.reuse_connection
    assert route.target == Target("udp", "192.0.2.4", 40123, "192.0.2.4")


def test_response_over_udp_to_received_and_sent_by_port_without_rport() -> None:
    route = response_route(
        transport="UDP", sent_by_host="pc.example.com", sent_by_port=5070, received="192.0.2.4"
    )
    assert route.target == Target("udp", "192.0.2.4", 5070, "192.0.2.4")


def test_response_to_multicast_maddr_uses_the_ttl() -> None:
    route = response_route(
        transport="UDP", sent_by_host="192.0.2.4", received="192.0.2.9", maddr="239.255.255.1"
    )
    assert route.target == Target("udp", "239.255.255.1", 5060, "239.255.255.1")
    assert route.multicast_ttl == 1
    route = response_route(transport="UDP", sent_by_host="h", maddr="239.255.255.1", ttl=16)
    assert route.multicast_ttl == 16
    route = response_route(transport="UDP", sent_by_host="h", maddr="192.0.2.8")
    assert route.multicast_ttl is None


def test_response_to_ipv6_sent_by() -> None:
    route = response_route(transport="UDP", sent_by_host="[2001:db8::4]", sent_by_port=5062)
    assert route.target == Target("udp", "2001:db8::4", 5062, "2001:db8::4")


def test_response_to_named_sent_by_is_located_with_srv_not_naptr() -> None:
    route = response_route(transport="TLS", sent_by_host="proxy.example.com")
    assert route.target is None
    assert route.locate == LocateRequest("proxy.example.com", None, "tls", secure=True)
    dns = FakeDns(
        {
            ("_sips._tcp.proxy.example.com", "SRV"): [
                srv(0, 0, 5061, "p1.example.com"),
                srv(1, 0, 5061, "p2.example.com"),
            ],
            ("p1.example.com", "A"): [a("192.0.2.21")],
            ("p2.example.com", "A"): [a("192.0.2.22")],
        }
    )
    assert hops(run(route.locate, dns)) == [
        ("tls", "192.0.2.21", 5061),
        ("tls", "192.0.2.22", 5061),
    ]
    assert ("proxy.example.com", "NAPTR") not in dns.asked


def test_response_over_unknown_transport_is_an_error() -> None:
    with pytest.raises(UnsupportedTransportError):
        response_route(transport="DTLS-UDP", sent_by_host="192.0.2.4")
