"""The online proxy's routing decisions (OnlinePolicy), request by request: real digest
credentials, a real tenant store and registrar; no sockets (the proxy core is tested in
tests/net/test_proxy.py, the whole chain in tests/online/test_lab.py)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pytest

from hybridvoice.net.proxy import Forward
from hybridvoice.net.transport import Source
from hybridvoice.online.models import Appliance, DialPlanRule, HybridConfig, Site, User
from hybridvoice.online.policy import OnlinePolicy
from hybridvoice.online.registrar import Registrar
from hybridvoice.online.store import TenantStore
from hybridvoice.sip.auth import Challenge, authorize, choose_challenge
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import parse_message
from hybridvoice.sip.uri import SipUri

REALM = "contoso.com"
NOW = 1000.0


@dataclass
class FakeTransport:  # only what OnlinePolicy reads from a Source's transport
    kind: str = "UDP"


def source(host: str = "192.0.2.10", port: int = 5060) -> Source:
    return Source(FakeTransport(), host, port)  # type: ignore[arg-type]


@pytest.fixture
def store() -> TenantStore:
    s = TenantStore()
    s.add_domain(REALM)
    s.new_site(Site(name="Stockholm", edge_fqdn="edge.sthlm.contoso.com", country_code="46"))
    for user, number, intl in (("alice", "+46812345678", True), ("bob", "+46812345679", False)):
        s.set_user(
            User(sip_uri=f"sip:{user}@{REALM}", enterprise_voice_enabled=True,
                 line_uri=f"tel:{number}", hybrid_pstn_site="Stockholm",
                 international_calls_allowed=intl).with_password("secret", REALM)
        )  # fmt: skip
    s.set_user(User(sip_uri=f"sip:nosite@{REALM}", enterprise_voice_enabled=True)
               .with_password("secret", REALM))  # fmt: skip
    s.set_dialplan_rule(DialPlanRule(name="local", pattern=r"0(\d{8})", translation="+468$1"))
    for i, status in enumerate(("online", "online", "offline", "maintenance")):
        s.register_appliance(
            Appliance(name=f"cce{i}", site="Stockholm", mediation_fqdn=f"med{i}.contoso.com",
                      edge_fqdn="edge.sthlm.contoso.com", edge_sip_host=f"198.51.100.{i + 1}",
                      edge_sip_port=5061, edge_sip_transport="TLS"),
            NOW,
        )  # fmt: skip
        if status != "online":
            s.heartbeat(f"cce{i}", status, NOW)
    return s


@pytest.fixture
def policy(store: TenantStore) -> OnlinePolicy:
    registrar = Registrar(store, REALM, rng=random.Random(1))
    return OnlinePolicy(store, registrar, rng=random.Random(2), clock=lambda: NOW)


def request_of(text: str) -> Request:
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def invite(target: str, caller: str = "alice", via: str = "192.0.2.10:5060") -> Request:
    text = (
        f"INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{caller}1\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{caller}@{REALM}>;tag=1\r\nTo: <{target}>\r\n"
        f"Call-ID: c1@{caller}\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@192.0.2.10>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return request_of(text)


def routed(policy: OnlinePolicy, request: Request, caller: str = "alice") -> Forward | Response:
    """Route ``request`` as an authenticated user: the 407, then the digest answer."""
    first = policy.route(request.copy(), source())
    assert isinstance(first, Response) and first.status == 407
    challenges = [Challenge.parse(v) for v in first.headers.get_all("Proxy-Authenticate")]
    credentials = authorize(choose_challenge(challenges), method="INVITE",
                            uri=str(request.uri), username=caller, password="secret",
                            cnonce="c0ffee", nc=1)  # fmt: skip
    request.headers.add("Proxy-Authorization", str(credentials))
    decision = policy.route(request, source())
    assert isinstance(decision, Forward | Response)
    return decision


def test_pstn_call_goes_to_the_online_appliances_of_the_site_in_random_order(
    policy: OnlinePolicy,
) -> None:
    request = invite(f"sip:+14155550100@{REALM};user=phone")
    decision = routed(policy, request)
    assert isinstance(decision, Forward)
    hosts = {group[0].uri.host for group in decision.groups}  # type: ignore[union-attr]
    assert hosts == {"198.51.100.1", "198.51.100.2"}  # not offline cce2, not draining cce3
    assert all(len(group) == 1 for group in decision.groups)  # one after another
    assert decision.failover == frozenset({408, 503, 504}) and decision.exhausted == 503
    target = decision.groups[0][0]
    assert isinstance(target.uri, SipUri) and target.uri.user == "+14155550100"
    assert ("user", "phone") in target.uri.params and target.destination is not None
    assert target.destination.transport == "TLS" and target.destination.port == 5061
    identities = [v for n, v in decision.headers if n == "P-Asserted-Identity"]
    assert identities == [f"<sip:alice@{REALM}>", "<tel:+46812345678>"]
    assert request.headers.get("Proxy-Authorization") is None  # ours: not passed on


def test_appliance_order_varies(store: TenantStore) -> None:
    firsts = set()
    for seed in range(20):
        policy = OnlinePolicy(store, Registrar(store, REALM), rng=random.Random(seed),
                              clock=lambda: NOW)  # fmt: skip
        decision = routed(policy, invite(f"sip:+14155550100@{REALM};user=phone"))
        assert isinstance(decision, Forward)
        firsts.add(decision.groups[0][0].uri.host)  # type: ignore[union-attr]
    assert len(firsts) == 2


def test_dial_plan_and_reverse_number_lookup(policy: OnlinePolicy) -> None:
    # 012345679 -> +46812345679 (the local rule): bob's line, so a call to bob's devices
    decision = routed(policy, invite(f"sip:012345679@{REALM};user=phone"))
    assert isinstance(decision, Response) and decision.status == 480  # bob has no device
    assert "no registered device" in (decision.headers.get("Warning") or "")


@pytest.mark.parametrize(
    ("caller", "target", "status", "why"),
    [
        ("bob", "sip:+14155550100@contoso.com;user=phone", 403, "international"),
        ("nosite", "sip:+46812345000@contoso.com;user=phone", 403, "PeerDestination"),
        ("alice", "sip:12@contoso.com", 484, "cannot normalise"),
        ("alice", "sip:zed@contoso.com", 404, "no user zed"),
    ],
)
def test_refusals_say_why(
    policy: OnlinePolicy, caller: str, target: str, status: int, why: str
) -> None:
    decision = routed(policy, invite(target, caller), caller)
    assert isinstance(decision, Response) and decision.status == status
    assert why in (decision.headers.get("Warning") or "")


def test_no_site_falls_back_to_the_peer_destination(
    store: TenantStore, policy: OnlinePolicy
) -> None:
    store.set_hybrid_config(HybridConfig(peer_destination="pool.contoso.com:5061"))
    decision = routed(policy, invite(f"sip:+46812345000@{REALM};user=phone", "nosite"), "nosite")
    assert isinstance(decision, Forward)
    target = decision.groups[0][0]
    assert isinstance(target.uri, SipUri) and target.uri.host == "pool.contoso.com"


def test_no_online_appliance_is_a_clear_503(store: TenantStore, policy: OnlinePolicy) -> None:
    for name in ("cce0", "cce1"):
        store.heartbeat(name, "offline", NOW)
    decision = routed(policy, invite(f"sip:+14155550100@{REALM};user=phone"))
    assert isinstance(decision, Response) and decision.status == 503
    assert "no appliance of site Stockholm is online" in (decision.headers.get("Warning") or "")


def test_inbound_from_an_appliance_edge_needs_no_credentials(policy: OnlinePolicy) -> None:
    request = invite(f"sip:+46812345678@{REALM};user=phone", via="198.51.100.1:5061")
    decision = policy.route(request, source("198.51.100.1", 40000))
    assert isinstance(decision, Response) and decision.status == 480  # alice: no device
    spoofed = invite(f"sip:+46812345678@{REALM};user=phone", via="198.51.100.1:5061")
    decision = policy.route(spoofed, source("203.0.113.9", 40000))  # Via says edge, IP not
    assert isinstance(decision, Response) and decision.status == 407


def test_trusted_peers_are_not_challenged_and_others_still_are(store: TenantStore) -> None:
    peers = ("203.0.113.0/24", "2001:db8::1")
    policy = OnlinePolicy(
        store, Registrar(store, REALM), rng=random.Random(2), clock=lambda: NOW, trusted_peers=peers
    )
    target = f"sip:+14155550100@{REALM};user=phone"
    for host in ("203.0.113.7", "2001:db8::1"):  # an SBC that authenticated alice itself
        decision = policy.route(invite(target), source(host))
        assert isinstance(decision, Forward), decision
    # the caller must still be a tenant user, and everyone else is challenged as before
    stranger = policy.route(invite(target, caller="mallory"), source("203.0.113.7"))
    assert isinstance(stranger, Response) and stranger.status == 403
    for host in ("192.0.2.10", "203.0.114.1", "not-an-address"):
        outside = policy.route(invite(target), source(host))
        assert isinstance(outside, Response) and outside.status == 407
        # ... the unknown caller too: only trusted peers see the 403 that says who exists
        outside = policy.route(invite(target, caller="mallory"), source(host))
        assert isinstance(outside, Response) and outside.status == 407
    # REGISTER is the registrar's: challenged for everyone, trusted peers included
    register = out_of_dialog("REGISTER", "mallory", REALM, "r1")
    trusted_register = policy.route(register, source("203.0.113.7"))
    assert isinstance(trusted_register, Response) and trusted_register.status == 401


def test_trusted_peers_come_from_the_settings() -> None:
    from hybridvoice.cms.settings import SettingsError, parse_settings  # noqa: PLC0415

    common = {"SIPDomains": REALM, "SiteName": "Stockholm"}
    settings = parse_settings(
        {"Common": common, "Online": {"TrustedPeers": "10.1.0.0/16 192.0.2.5"}}
    )
    assert [str(n) for n in settings.online.trusted_peers] == ["10.1.0.0/16", "192.0.2.5/32"]
    with pytest.raises(SettingsError, match="TrustedPeers"):
        parse_settings({"Common": common, "Online": {"TrustedPeers": "not-a-network"}})


# --- no user enumeration: unknown users are answered exactly as known ones ------------------

#: every method a client may send the online service out of dialog
METHODS = ("REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE", "MESSAGE", "NOTIFY", "INFO", "PUBLISH")
#: (From/To user, domain, Digest username): a real user with a wrong password first, then
#: every kind of address that is not a usable account
KNOWN = ("alice", REALM, "alice")
NOT_USERS = (
    ("nobody", REALM, "nobody"),  # no such user
    ("alice", "fabrikam.com", "alice"),  # a domain not served
    ("carol", REALM, "carol"),  # a user without enterprise voice
    ("dave", REALM, "dave"),  # a user without a password
)
#: the Authorization username of another (real / unknown) user than the From/To user
MISMATCHED = (("alice", REALM, "nobody"), ("nobody", REALM, "alice"))


def out_of_dialog(method: str, user: str, domain: str, call_id: str) -> Request:
    """``method`` from ``user@domain``: a REGISTER of that address (To = From), anything
    else to bob (OPTIONS to a user's address is challenged; to the server it is not)."""
    aor = f"sip:{user}@{domain}"
    uri, to = (
        ("sip:" + domain, aor) if method == "REGISTER" else (f"sip:bob@{REALM}", f"sip:bob@{REALM}")
    )
    text = (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{call_id}\r\n"
        f"Max-Forwards: 70\r\nFrom: <{aor}>;tag=1\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\nContact: <sip:{user}@192.0.2.10>\r\nEvent: presence\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return request_of(text)


def comparable(response: Response, account: tuple[str, str, str]) -> list[tuple[str, str]]:
    """The whole response without what legitimately differs: tags, the Via branch and the
    Call-ID (the request's), the nonce (fresh per challenge) and the address of record the
    request named (and the Digest username, which a Warning may quote)."""
    user, domain, username = account
    lines = [("status", f"{response.status} {response.reason}")]
    for name, value in response.headers:
        text = re.sub(r";(tag|branch)=[^;>\s]+", r";\1=X", value)
        text = re.sub(r'nonce="[^"]*"', 'nonce="N"', text)
        text = text.replace(f"{user}@{domain}", "AOR").replace(f"'{username}'", "'USERNAME'")
        lines.append((name, "CALL-ID" if name.lower() == "call-id" else text))
    return lines


def attempt(
    policy: OnlinePolicy, method: str, account: tuple[str, str, str], step: int
) -> list[list[tuple[str, str]]]:
    """The answers to ``method`` from ``account``: no credentials, then a wrong password."""
    user, domain, username = account
    request = out_of_dialog(method, user, domain, f"{method}-{user}-{domain}-{username}-{step}")
    first = policy.route(request.copy(), source())
    assert isinstance(first, Response)
    header = "Proxy" if first.status == 407 else "WWW"
    challenges = [Challenge.parse(v) for v in first.headers.get_all(f"{header}-Authenticate")]
    credentials = authorize(choose_challenge(challenges), method=method, uri=str(request.uri),
                            username=username, password="guess", cnonce="c0ffee", nc=1)  # fmt: skip
    request.headers.add("Proxy-Authorization" if header == "Proxy" else "Authorization",
                        str(credentials))  # fmt: skip
    second = policy.route(request, source())
    assert isinstance(second, Response)
    return [comparable(r, account) for r in (first, second)]


@pytest.mark.parametrize("method", METHODS)
def test_unknown_users_are_answered_exactly_as_a_wrong_password(
    store: TenantStore, policy: OnlinePolicy, method: str
) -> None:
    """Asterisk's alwaysauthreject: challenge, then the same 403, for every method and every
    way an address can fail to be a user (From, To, Authorization username, domain)."""
    store.set_user(User(sip_uri=f"sip:carol@{REALM}").with_password("secret", REALM))
    store.set_user(User(sip_uri=f"sip:dave@{REALM}", enterprise_voice_enabled=True))
    known = attempt(policy, method, KNOWN, 0)
    assert [lines[0][1][:3] for lines in known] == (
        ["401", "403"] if method == "REGISTER" else ["407", "403"]
    )
    for step, account in enumerate(NOT_USERS, 1):
        assert attempt(policy, method, account, step) == known, account
    mismatched = [attempt(policy, method, account, 9) for account in MISMATCHED]
    assert mismatched[0] == mismatched[1]
    assert mismatched[0][0] == known[0] and mismatched[0][1][0] == known[1][0]  # 401/407, 403


# --- in-dialog requests: only for dialogs this proxy routed (no open relay) -------------------


def in_dialog(method: str, call_id: str, target: str = "sip:victim@198.51.100.99:5060") -> Request:
    """``method`` inside a dialog (To tag) straight to ``target``: what anyone can forge."""
    text = (
        f"{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{method}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:nobody@evil.example>;tag=a\r\n"
        f"To: <sip:victim@{REALM}>;tag=b\r\nCall-ID: {call_id}\r\nCSeq: 2 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return request_of(text)


def test_in_dialog_requests_pass_only_for_dialogs_the_proxy_routed(
    store: TenantStore, policy: OnlinePolicy
) -> None:
    """A forged in-dialog request (a To tag, or a Route not ours) would otherwise be relayed
    unauthenticated to any address: an open relay around the digest challenge."""
    for method in ("INVITE", "BYE", "MESSAGE", "NOTIFY", "ACK"):
        refused = policy.admit(in_dialog(method, "forged-1"), source())
        assert isinstance(refused, Response) and refused.status == 481, method
    call = invite(f"sip:+14155550100@{REALM};user=phone")
    assert isinstance(routed(policy, call), Forward)  # alice's authenticated call
    for method in ("ACK", "BYE", "INVITE", "INFO"):  # its dialog, from either side
        assert policy.admit(in_dialog(method, "c1@alice"), source("198.51.100.1")) is None
    # an appliance's edge and a trusted peer are let through (they route their own dialogs)
    edge = in_dialog("BYE", "edge-call", target=f"sip:alice@{REALM}")
    edge.headers.set("Via", "SIP/2.0/TLS 198.51.100.1:5061;branch=z9hG4bKedge")
    assert policy.admit(edge, source("198.51.100.1")) is None
    trusted = OnlinePolicy(store, policy.registrar, clock=lambda: NOW,
                           trusted_peers=("203.0.113.0/24",))  # fmt: skip
    assert trusted.admit(in_dialog("BYE", "peer-call"), source("203.0.113.7")) is None


def test_remembered_dialogs_are_bounded(store: TenantStore) -> None:
    policy = OnlinePolicy(store, Registrar(store, REALM), clock=lambda: NOW,
                          trusted_peers=("192.0.2.0/24",), max_dialogs=10)  # fmt: skip
    for i in range(50):
        request = invite(f"sip:+1415555{i:04d}@{REALM};user=phone")
        request.headers.set("Call-ID", f"call-{i}")
        assert isinstance(policy.route(request, source()), Forward)
    assert isinstance(policy.admit(in_dialog("BYE", "call-0"), source("198.51.100.99")), Response)
    assert policy.admit(in_dialog("BYE", "call-49"), source("198.51.100.99")) is None
