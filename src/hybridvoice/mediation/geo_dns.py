"""Geo-DNS for the media bypass service name: the policy and the answer to one query (sans-IO).

Clients find the bypass web service (:mod:`.bypass_service`) by one name shared by every
site (``hybridvoice.adatum.biz``); each client must reach the mediation roles of its own
site. :class:`GeoPolicy` holds the sites (client subnets, mediation addresses) and
:class:`GeoDns` answers one DNS message, bytes in, bytes out, for the UDP/TCP adapter
(:mod:`hybridvoice.net.dns_server`), as an authoritative server of the zone:

- RFC 1035 §4.1 messages (parsed and written with ``dnslib``); §4.2.1 UDP answers of at most
  512 bytes, or the EDNS payload size the query advertises (RFC 6891 §6.2.3/§6.2.5, at most
  :data:`MAX_UDP_PAYLOAD`), else TC=1 with no records (RFC 2181 §9) so the client retries
  over TCP (§4.2.2, where 65535 bytes fit).
- The service name: A / AAAA of the client's site, only addresses not marked down
  (:meth:`GeoDns.set_down`); ANY answered with one RRset, RFC 8482 §4.2; other types: NODATA
  with the SOA (RFC 2308 §2.2). The zone apex: SOA and NS. Other names in the zone: NXDOMAIN
  with the SOA (RFC 2308 §2.1). Names outside the zone: REFUSED. Names compare without regard
  to ASCII case (RFC 4343 §3), the question is echoed as written.
- The client's site: from the EDNS Client Subnet option when present (RFC 7871 §7.1.1, its
  address checked: FORMERR when the prefix and address disagree; echoed with a SCOPE
  PREFIX-LENGTH, §7.2.1), else from the source address of the query.
- Clients of no site get, by setting, REFUSED, NXDOMAIN or the addresses of every site.
- Malformed messages: FORMERR when the 12-byte header parses (RFC 1035 §4.1.1), dropped
  otherwise; neither ever raises. EDNS versions other than 0: BADVERS (RFC 6891 §6.1.3).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from dnslib import (
    AAAA,
    EDNS0,
    NS,
    OPCODE,
    QTYPE,
    RCODE,
    RR,
    SOA,
    A,
    DNSError,
    DNSHeader,
    DNSRecord,
    EDNSOption,
)
from dnslib.buffer import Buffer

from hybridvoice.cms.settings_geo_dns import GeoDnsSettings

__all__ = [
    "MAX_UDP_PAYLOAD",
    "UNMATCHED_VALUES",
    "GeoDns",
    "GeoPolicy",
    "GeoSite",
    "Unmatched",
    "policy_from_settings",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Unmatched = Literal["refuse", "nxdomain", "all"]
UNMATCHED_VALUES: Final = ("refuse", "nxdomain", "all")

#: the largest UDP answer we send, whatever the query advertises (the DNS flag day 2020 value)
MAX_UDP_PAYLOAD: Final = 1232
_CLASSIC_UDP: Final = 512  # RFC 1035 §2.3.4; an EDNS size below it counts as 512 (RFC 6891)
_TCP_MAX: Final = 65535
_ECS: Final = 8  # the EDNS Client Subnet option code (RFC 7871 §6)
_CLASS_IN: Final = 1
_CLASS_ANY: Final = 255
_HEADER: Final = 12
_CACHE_SIZE: Final = 4096  # answers kept; emptied when full
_CACHED: Final = frozenset({"answer", "nodata", "nxdomain", "refused", "truncated"})
_BADVERS_EXT: Final = 1  # extended RCODE 16 = (1 << 4) | 0 (RFC 6891 §6.1.3)


@dataclass(frozen=True, slots=True)
class GeoSite:
    """One site: its client subnets and the mediation addresses of its appliances."""

    name: str
    subnets: tuple[IPNetwork, ...]
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class GeoPolicy:
    """The whole policy: the service name, its zone, the sites and what unmatched clients get."""

    name: str  # the bypass service name, lower case, no trailing dot
    zone: str  # the zone it lives in (the name's parent by default)
    sites: tuple[GeoSite, ...]
    unmatched: Unmatched = "all"
    ttl: int = 60
    nameserver: str = ""  # the zone's NS (default ns1.<zone>)
    nameserver_addresses: tuple[IPAddress, ...] = ()  # its A/AAAA when it is inside the zone
    hostmaster: str = ""  # the SOA RNAME (default hostmaster.<zone>)
    serial: int = 1

    @property
    def ns_name(self) -> str:
        return self.nameserver or f"ns1.{self.zone}"

    @property
    def soa_rname(self) -> str:
        return self.hostmaster or f"hostmaster.{self.zone}"

    def site_of(self, address: IPAddress) -> GeoSite | None:
        """The site whose client subnets hold ``address`` (subnets never overlap)."""
        for site in self.sites:
            for net in site.subnets:
                if address.version == net.version and address in net:
                    return site
        return None

    def all_addresses(self) -> tuple[IPAddress, ...]:
        return tuple(a for site in self.sites for a in site.addresses)

    def to_json(self) -> dict[str, object]:
        """The policy as ``dns show --json`` and ``plan checklist`` give it."""
        return {
            "name": self.name,
            "zone": self.zone,
            "ttl": self.ttl,
            "unmatched": self.unmatched,
            "sites": [
                {
                    "name": s.name,
                    "client_subnets": [str(n) for n in s.subnets],
                    "mediation_ips": [str(a) for a in s.addresses],
                }
                for s in self.sites
            ],
        }


def policy_from_settings(settings: GeoDnsSettings) -> GeoPolicy:
    """The policy a validated ``[GeoDns]`` section describes (:mod:`..cms.settings_geo_dns`)."""
    sites = tuple(
        GeoSite(
            name=name,
            subnets=tuple(site.client_subnets),
            addresses=tuple(ipaddress.ip_address(a) for a in site.mediation_ips),
        )
        for name, site in settings.sites.items()
    )
    return GeoPolicy(
        name=settings.service_name,
        zone=settings.zone_name,
        sites=sites,
        unmatched=settings.unmatched,
        ttl=settings.ttl,
        nameserver=settings.name_server or "",
        nameserver_addresses=tuple(ipaddress.ip_address(a) for a in settings.name_server_ips),
        hostmaster=settings.hostmaster or "",
        serial=settings.serial,
    )


@dataclass(frozen=True, slots=True)
class _Client:
    """Who asks: the address that picks the site, and the ECS option to echo (if any)."""

    address: IPAddress | None
    ecs: tuple[int, int, bytes] | None = None  # family, source prefix, address bytes
    ecs_net: IPNetwork | None = None


class _FormatError(ValueError):
    """The query is well framed but wrong (bad ECS, several questions): answer FORMERR."""


@dataclass(slots=True)
class GeoDns:
    """The responder's core: :meth:`answer` turns one query into one response (or ``None``).

    ``stats`` counts queries by (site, result): site is a site name, ``"unmatched"`` or
    ``"-"`` (no site involved: the apex, refused names, malformed queries); result is
    ``answer``, ``nodata``, ``nxdomain``, ``refused``, ``formerr``, ``notimp``, ``badvers``,
    ``dropped``; truncated UDP answers are counted under ``truncated`` too.
    """

    policy: GeoPolicy
    down: frozenset[IPAddress] = frozenset()
    stats: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: answers by (query bytes after the ID, source, tcp), valid for one policy and down set
    _cache: dict[tuple[bytes, str, bool], tuple[bytes, tuple[tuple[str, str], ...]]] = field(
        default_factory=dict
    )
    _cached_for: tuple[object, object] = (None, None)
    _counted: list[tuple[str, str]] = field(default_factory=list)

    def set_down(self, addresses: Iterable[str | IPAddress]) -> None:
        """The mediation addresses not to hand out (the fleet's health view); replaces the set."""
        self.down = frozenset(ipaddress.ip_address(a) for a in addresses)

    def stats_table(self) -> Mapping[str, Mapping[str, int]]:
        """``{site: {result: count}}``, for metrics and ``STATS`` lines."""
        table: dict[str, dict[str, int]] = {}
        for (site, result), count in sorted(self.stats.items()):
            table.setdefault(site, {})[result] = count
        return table

    def site_addresses(self, site: GeoSite | None) -> tuple[IPAddress, ...]:
        """What a client of ``site`` gets: its healthy addresses; when the site has none, every
        healthy address of the other sites; when none is healthy, all (better than silence)."""
        wanted = site.addresses if site is not None else self.policy.all_addresses()
        healthy = tuple(a for a in wanted if a not in self.down)
        if healthy:
            return healthy
        everywhere = tuple(a for a in self.policy.all_addresses() if a not in self.down)
        return everywhere or wanted

    # --- one query ----------------------------------------------------------------------------

    def answer(self, data: bytes, source: str, tcp: bool = False) -> bytes | None:
        """The response to the query ``data`` received from ``source`` (an IP address), or
        ``None`` when nothing is to be sent (no header, or a response rather than a query).

        The same query again (all but its ID, from the same source over the same transport)
        is answered from a cache of well-formed answers, counted as the first one was; a new
        policy or down set empties it."""
        if self._cached_for[0] is not self.policy or self._cached_for[1] is not self.down:
            self._cache.clear()
            self._cached_for = (self.policy, self.down)
        key = (data[2:], source, tcp)
        hit = self._cache.get(key)
        if hit is not None:
            reply, counted = hit
            for item in counted:
                self.stats[item] += 1
            return data[:2] + reply[2:]
        self._counted = []
        fresh = self._answer(data, source, tcp)
        counted = tuple(self._counted)
        if fresh is not None and all(result in _CACHED for _, result in counted):
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (fresh, counted)
        return fresh

    def _bump(self, label: str, result: str) -> None:
        self.stats[label, result] += 1
        self._counted.append((label, result))

    def _answer(self, data: bytes, source: str, tcp: bool) -> bytes | None:
        if len(data) < _HEADER:
            self._bump("-", "dropped")
            return None
        try:
            header = DNSHeader.parse(Buffer(data))
        except (DNSError, ValueError, IndexError, TypeError):  # pragma: no cover - 12 bytes parse
            self._bump("-", "dropped")
            return None
        if header.qr:  # a response sent to us: never answer it (no loops between servers)
            self._bump("-", "dropped")
            return None
        try:
            request = DNSRecord.parse(data)
            if header.opcode != OPCODE.QUERY:
                self._bump("-", "notimp")
                return self._bare(header, RCODE.NOTIMP)
            if len(request.questions) != 1:
                raise _FormatError("one question per query (RFC 9619)")
            edns = _edns_of(request)
            client = _client_of(source, edns)
        except _FormatError:
            self._bump("-", "formerr")
            return self._bare(header, RCODE.FORMERR)
        except Exception:  # dnslib raises many kinds on bad wire data
            self._bump("-", "formerr")
            return self._bare(header, RCODE.FORMERR)
        reply = self._reply(request, edns, client)
        return self._fit(reply, edns, tcp=tcp)

    def _bare(self, header: DNSHeader, rcode: int) -> bytes:
        out = DNSHeader(id=header.id, qr=1, opcode=header.opcode, rd=header.rd, rcode=rcode)
        return bytes(DNSRecord(out).pack())

    def _reply(self, request: DNSRecord, edns: RR | None, client: _Client) -> DNSRecord:
        header = DNSHeader(id=request.header.id, qr=1, aa=1, rd=request.header.rd)
        reply = DNSRecord(header, q=request.q)
        if edns is not None:
            opts = []
            if client.ecs is not None:
                asked = str(request.q.qname).rstrip(".").lower()
                tailored = asked == self.policy.name  # only its answer depends on the subnet
                opts.append(EDNSOption(_ECS, _ecs_echo(client, self.policy, tailored=tailored)))
            reply.add_ar(EDNS0(udp_len=MAX_UDP_PAYLOAD, opts=opts))
            if (edns.ttl >> 16) & 0xFF != 0:  # VERSION (RFC 6891 §6.1.3)
                reply.ar[-1].ttl = _BADVERS_EXT << 24
                self._bump("-", "badvers")
                return reply
        question = request.q
        qname = str(question.qname).rstrip(".").lower()
        qtype = int(question.qtype)
        policy = self.policy
        if question.qclass not in (_CLASS_IN, _CLASS_ANY):
            return self._rcode(reply, RCODE.REFUSED, "-", "refused")
        if qname != policy.zone and not qname.endswith("." + policy.zone):
            return self._rcode(reply, RCODE.REFUSED, "-", "refused")
        if qname == policy.name:
            return self._service(reply, qtype, client)
        if qname == policy.zone:
            return self._apex(reply, qtype)
        if qname == policy.ns_name.lower() and policy.nameserver_addresses:
            records = _address_records(question.qname, qtype, policy.nameserver_addresses, policy)
            return self._records(reply, records, "-")
        self._add_soa(reply, authority=True)
        return self._rcode(reply, RCODE.NXDOMAIN, "-", "nxdomain")

    def _service(self, reply: DNSRecord, qtype: int, client: _Client) -> DNSRecord:
        policy = self.policy
        site = policy.site_of(client.address) if client.address is not None else None
        label = site.name if site is not None else "unmatched"
        if site is None and policy.unmatched == "refuse":
            return self._rcode(reply, RCODE.REFUSED, label, "refused")
        if site is None and policy.unmatched == "nxdomain":
            self._add_soa(reply, authority=True)
            return self._rcode(reply, RCODE.NXDOMAIN, label, "nxdomain")
        addresses = self.site_addresses(site)
        records = _address_records(reply.q.qname, qtype, addresses, policy)
        return self._records(reply, records, label)

    def _apex(self, reply: DNSRecord, qtype: int) -> DNSRecord:
        if qtype in (QTYPE.SOA, QTYPE.ANY):  # ANY: the SOA alone (RFC 8482 §4.2)
            self._add_soa(reply, authority=False)
        elif qtype == QTYPE.NS:
            ns = RR(reply.q.qname, QTYPE.NS, ttl=self.policy.ttl, rdata=NS(self.policy.ns_name))
            reply.add_answer(ns)
        return self._records(reply, [], "-") if not reply.rr else self._count(reply, "-", "answer")

    def _records(self, reply: DNSRecord, records: list[RR], label: str) -> DNSRecord:
        if records:
            for rr in records:
                reply.add_answer(rr)
            return self._count(reply, label, "answer")
        self._add_soa(reply, authority=True)  # NODATA: NOERROR, no answer, the SOA (RFC 2308)
        return self._count(reply, label, "nodata")

    def _add_soa(self, reply: DNSRecord, *, authority: bool) -> None:
        p = self.policy
        times = (p.serial, 3600, 600, 86400, p.ttl)  # refresh, retry, expire, negative TTL
        soa = RR(p.zone + ".", QTYPE.SOA, ttl=p.ttl, rdata=SOA(p.ns_name, p.soa_rname, times))
        if authority:
            reply.add_auth(soa)
        else:
            reply.add_answer(soa)

    def _rcode(self, reply: DNSRecord, rcode: int, label: str, result: str) -> DNSRecord:
        reply.header.rcode = rcode
        return self._count(reply, label, result)

    def _count(self, reply: DNSRecord, label: str, result: str) -> DNSRecord:
        self._bump(label, result)
        return reply

    def _fit(self, reply: DNSRecord, edns: RR | None, *, tcp: bool) -> bytes:
        packed = bytes(reply.pack())
        limit = _TCP_MAX if tcp else _udp_limit(edns)
        if len(packed) <= limit:
            return packed
        reply.rr, reply.auth = [], []  # RFC 2181 §9: TC=1 and no partial RRset; retry over TCP
        reply.header.tc = 1
        self._bump("-", "truncated")
        return bytes(reply.pack())


def _udp_limit(edns: RR | None) -> int:
    if edns is None:
        return _CLASSIC_UDP
    return max(_CLASSIC_UDP, min(int(edns.rclass), MAX_UDP_PAYLOAD))


def _edns_of(request: DNSRecord) -> RR | None:
    found = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
    if len(found) > 1:
        raise _FormatError("more than one OPT record (RFC 6891 §6.1.1)")
    return found[0] if found else None


def _client_of(source: str, edns: RR | None) -> _Client:
    """The address that picks the site: the ECS subnet when given (and not /0), else the source."""
    address: IPAddress | None
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    options = [o for o in (edns.rdata if edns is not None else []) if o.code == _ECS]
    if not options:
        return _Client(address)
    if len(options) > 1:
        raise _FormatError("more than one Client Subnet option (RFC 7871 §7.1.1)")
    family, source_len, net = _parse_ecs(bytes(options[0].data))
    ecs = (family, source_len, bytes(options[0].data[4:]))
    if source_len == 0:  # the client asks not to be located by subnet (RFC 7871 §7.1.2)
        return _Client(address, ecs, net)
    return _Client(net.network_address, ecs, net)


def _parse_ecs(data: bytes) -> tuple[int, int, IPNetwork]:
    """FAMILY, SOURCE PREFIX-LENGTH and the subnet of an ECS option (RFC 7871 §6, §7.1.1)."""
    if len(data) < 4:
        raise _FormatError("Client Subnet option shorter than 4 bytes")
    family, source_len = int.from_bytes(data[:2], "big"), data[2]
    width = {1: 32, 2: 128}.get(family)
    if width is None or source_len > width:
        raise _FormatError(f"Client Subnet family {family} / prefix {source_len} unsupported")
    raw = data[4:]
    if len(raw) != (source_len + 7) // 8:
        raise _FormatError("Client Subnet address length does not match its prefix length")
    padded = int.from_bytes(raw.ljust(width // 8, b"\0"), "big")
    if padded & ((1 << (width - source_len)) - 1):
        raise _FormatError("Client Subnet address has bits set beyond its prefix length")
    if family == 1:
        return family, source_len, ipaddress.IPv4Network((padded, source_len))
    return family, source_len, ipaddress.IPv6Network((padded, source_len))


def _ecs_echo(client: _Client, policy: GeoPolicy, *, tailored: bool) -> bytes:
    """The option sent back: the query's, with the SCOPE PREFIX-LENGTH the answer holds for
    (0 for an answer that is the same for every client, RFC 7871 §7.2.1)."""
    assert client.ecs is not None and client.ecs_net is not None
    family, source_len, raw = client.ecs
    net = client.ecs_net
    scope = source_len
    if source_len and tailored:
        for site in policy.sites:
            for sub in site.subnets:
                if sub.version != net.version:
                    continue
                if net.subnet_of(sub):  # type: ignore[arg-type]
                    scope = sub.prefixlen  # the whole site subnet gets the same answer
                elif sub.subnet_of(net):  # type: ignore[arg-type]
                    scope = max(scope, sub.prefixlen)  # the answer depends on longer prefixes
    else:
        scope = 0
    return family.to_bytes(2, "big") + bytes((source_len, scope)) + raw


def _address_records(
    qname: object, qtype: int, addresses: Iterable[IPAddress], policy: GeoPolicy
) -> list[RR]:
    """A / AAAA records of ``addresses`` for ``qtype``; ANY gets one RRset (RFC 8482 §4.2)."""
    v4 = [a for a in addresses if a.version == 4]
    v6 = [a for a in addresses if a.version == 6]
    if qtype == QTYPE.ANY:
        qtype = QTYPE.A if v4 else QTYPE.AAAA
    if qtype == QTYPE.A:
        return [RR(qname, QTYPE.A, ttl=policy.ttl, rdata=A(str(a))) for a in v4]
    if qtype == QTYPE.AAAA:
        return [RR(qname, QTYPE.AAAA, ttl=policy.ttl, rdata=AAAA(str(a))) for a in v6]
    return []
