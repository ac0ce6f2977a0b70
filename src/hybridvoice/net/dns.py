"""RFC 3263 server location over real DNS: drives :class:`hybridvoice.sip.locate.Locator`.

The sans-IO locator decides what to ask (RFC 3263 §4.1-4.2: NAPTR, SRV, A, AAAA); this module
asks it with dnspython's asyncio resolver, all queries of a phase at once. NXDOMAIN and NODATA
(RFC 2308 §1) are empty answers the locator knows how to handle; a timeout, SERVFAIL or
REFUSED is a :class:`DnsLookupError`, since "no answer" must not be taken for "no record".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

from hybridvoice.sip.locate import (
    DEFAULT_FAMILIES,
    DEFAULT_TRANSPORTS,
    NXDOMAIN,
    AddressRecord,
    DnsAnswer,
    DnsCache,
    DnsQuery,
    LocateError,
    LocateRequest,
    Locator,
    Naptr,
    Record,
    Srv,
    Target,
)

__all__ = ["DnsLookupError", "LocateError", "locate", "make_resolver"]


class DnsLookupError(LocateError):
    """A DNS query got no usable answer: timeout, SERVFAIL, REFUSED (RFC 3263 §4)."""

    def __init__(self, query: DnsQuery, reason: str) -> None:
        super().__init__(f"{query.rdtype} {query.name}: {reason}")
        self.query = query


def make_resolver(
    nameservers: Sequence[str], *, port: int = 53, timeout: float = 2.0, lifetime: float = 5.0
) -> dns.asyncresolver.Resolver:
    """A resolver asking exactly ``nameservers`` on ``port`` (no /etc/resolv.conf, no cache)."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = list(nameservers)
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = lifetime
    return resolver


async def locate(
    request: LocateRequest,
    resolver: dns.asyncresolver.Resolver,
    *,
    rng: random.Random,
    supported: Iterable[str] = DEFAULT_TRANSPORTS,
    families: Iterable[int] = DEFAULT_FAMILIES,
    cache: DnsCache | None = None,
    now: float | None = None,
) -> list[Target]:
    """The targets for ``request`` in the order to try them (RFC 3263 §4), via real DNS.

    ``now`` (monotonic seconds, default :func:`time.monotonic`) is for ``cache``. Raises
    :class:`DnsLookupError` when a query times out or fails, and
    :class:`~hybridvoice.sip.locate.UnsupportedTransportError` for an unusable transport.
    """
    locator = Locator(
        request,
        rng=rng,
        supported=supported,
        families=families,
        cache=cache,
        now=time.monotonic() if now is None else now,
    )
    while not locator.done:
        queries = locator.pending()
        tasks = [asyncio.ensure_future(_ask(resolver, q)) for q in queries]
        try:
            answers = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        for query, answer in zip(queries, answers, strict=True):
            locator.feed(query, answer)
    return locator.result()


async def _ask(resolver: dns.asyncresolver.Resolver, query: DnsQuery) -> DnsAnswer:
    """One DNS query, as a :class:`DnsAnswer`."""
    try:
        answer = await resolver.resolve(
            dns.name.from_text(query.name), str(query.rdtype), raise_on_no_answer=False
        )
    except dns.resolver.NXDOMAIN:
        return NXDOMAIN
    except dns.exception.Timeout as exc:
        raise DnsLookupError(query, "timed out") from exc
    except dns.exception.DNSException as exc:
        raise DnsLookupError(query, str(exc) or type(exc).__name__) from exc
    if answer.rrset is None:
        return DnsAnswer()
    ttl = answer.rrset.ttl
    return DnsAnswer(tuple(r for r in (_record(rd, ttl) for rd in answer.rrset) if r))


def _record(rdata: dns.rdata.Rdata, ttl: int) -> Record | None:
    """Convert one dnspython rdata of the types RFC 3263 asks for; None for others (CNAME)."""
    if isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR):
        return Naptr(
            order=rdata.order,
            preference=rdata.preference,
            flags=rdata.flags.decode("ascii", "replace"),
            service=rdata.service.decode("ascii", "replace"),
            regexp=rdata.regexp.decode("utf-8", "replace"),
            replacement=rdata.replacement.to_text(),
            ttl=ttl,
        )
    if isinstance(rdata, dns.rdtypes.IN.SRV.SRV):
        return Srv(rdata.priority, rdata.weight, rdata.port, rdata.target.to_text(), ttl)
    if isinstance(rdata, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
        return AddressRecord(rdata.address, ttl)
    return None
