"""``net.names``: names a site's assembly maps to addresses (no DNS in a loopback lab), the
name kept as the TLS server name; the system resolver for the rest."""

from __future__ import annotations

import asyncio

import pytest

from hybridvoice.net.names import NameResolver, named_destination
from hybridvoice.net.transport import Destination, TransportError
from hybridvoice.sip.uri import SipUri, parse_uri


def uri(text: str) -> SipUri:
    parsed = parse_uri(text)
    assert isinstance(parsed, SipUri)
    return parsed


def test_mapped_names_keep_the_name_for_tls_and_the_uris_port_and_transport() -> None:
    resolver = NameResolver({"Edge-Int.Contoso.Example": "10.0.0.5"}, system=False)

    async def main() -> None:
        found = await resolver(uri("sip:edge-int.contoso.example:5071;transport=tls;lr"))
        assert found == Destination("TLS", "10.0.0.5", 5071, "edge-int.contoso.example")
        assert (await resolver(uri("sips:EDGE-INT.contoso.example"))).port == 5061
        with pytest.raises(TransportError, match="not a name this role knows"):
            await resolver(uri("sip:other.contoso.example"))

    asyncio.run(main())


def test_the_system_resolver_answers_other_names() -> None:
    async def main() -> None:
        found = await NameResolver({})(uri("sip:localhost:5099;transport=tcp"))
        assert (found.transport, found.port, found.server_name) == ("TCP", 5099, "localhost")
        assert found.host in ("127.0.0.1", "::1")

    asyncio.run(main())


def test_a_proxy_lookup_sees_the_whole_uri() -> None:
    seen: list[SipUri] = []

    def lookup(u: SipUri) -> str | None:
        seen.append(u)
        return "192.0.2.7" if u.user == "appliance2" else None

    hit = named_destination(uri("sip:appliance2@pool.example:5061;transport=tls"), lookup)
    assert hit == Destination("TLS", "192.0.2.7", 5061, "pool.example")
    assert named_destination(uri("sip:pool.example"), lookup) is None
    assert named_destination(uri("sip:pool.example"), None) is None
    assert [u.user for u in seen] == ["appliance2", None]
