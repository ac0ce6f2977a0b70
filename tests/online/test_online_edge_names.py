"""The online proxy and an edge that names itself by its pool FQDN over TLS (RFC 5922 §7):
its requests are still known as the appliance's (Via sent-by the FQDN, the packet from the
registered address), and in-dialog requests routed by its Record-Route reach it."""

from __future__ import annotations

import random

from test_online_policy import NOW, REALM, invite, source, store  # noqa: F401 (fixture)

from hybridvoice.net.names import named_destination
from hybridvoice.online.policy import OnlinePolicy
from hybridvoice.online.registrar import Registrar
from hybridvoice.online.store import TenantStore
from hybridvoice.sip.message import Response
from hybridvoice.sip.uri import SipUri, parse_uri


def _policy(tenant: TenantStore) -> OnlinePolicy:
    registrar = Registrar(tenant, REALM, rng=random.Random(1))
    return OnlinePolicy(tenant, registrar, rng=random.Random(2), clock=lambda: NOW)


def test_an_edge_naming_itself_by_fqdn_is_still_the_appliance(store: TenantStore) -> None:  # noqa: F811
    policy = _policy(store)
    named = invite(f"sip:+46812345678@{REALM};user=phone", via="EDGE.sthlm.contoso.com:5061")
    decision = policy.route(named, source("198.51.100.1", 40000))
    assert isinstance(decision, Response) and decision.status == 480  # no challenge: inbound
    spoofed = invite(f"sip:+46812345678@{REALM};user=phone", via="edge.sthlm.contoso.com:5061")
    decision = policy.route(spoofed, source("203.0.113.9", 40000))  # the name, not the IP
    assert isinstance(decision, Response) and decision.status == 407
    wrong_port = invite(f"sip:+46812345678@{REALM};user=phone", via="edge.sthlm.contoso.com:5099")
    decision = policy.route(wrong_port, source("198.51.100.1", 40000))
    assert isinstance(decision, Response) and decision.status == 407


def test_the_edge_pool_fqdn_maps_to_an_online_appliance(store: TenantStore) -> None:  # noqa: F811
    policy = _policy(store)

    def address(uri: str) -> str | None:
        parsed = parse_uri(uri)
        assert isinstance(parsed, SipUri)
        return policy.edge_address(parsed)

    assert address("sip:edge.sthlm.contoso.com") == "198.51.100.1"
    assert address("sip:elsewhere.example") is None
    route = parse_uri("sip:edge.sthlm.contoso.com:5061;transport=tls;lr")
    destination = named_destination(route, policy.edge_address)
    assert destination is not None
    where = (destination.transport, destination.host, destination.port)
    assert where == ("TLS", "198.51.100.1", 5061)
    assert destination.server_name == "edge.sthlm.contoso.com"  # the certificate is checked
    store.heartbeat("cce0", "offline", NOW)
    assert address("sip:EDGE.sthlm.contoso.com") == "198.51.100.2"


def test_the_record_routes_appliance_picks_the_appliance_of_the_pool(
    store: TenantStore,  # noqa: F811
) -> None:
    """Appliances of a site share the pool FQDN; the edge's Record-Route names its own."""
    policy = _policy(store)
    for n in range(4):
        route = parse_uri(f"sip:cce{n}@edge.sthlm.contoso.com:5061;transport=tls;lr")
        destination = named_destination(route, policy.edge_address)
        assert destination is not None and destination.host == f"198.51.100.{n + 1}"
    unknown = parse_uri("sip:cce9@edge.sthlm.contoso.com:5061;transport=tls;lr")
    assert named_destination(unknown, policy.edge_address) is not None  # the pool's first
