"""Registrar (RFC 3261 §10.3) and proxy authentication (§22.3), driven by real Digest
answers computed with the client side of hybridvoice.sip.auth."""

from __future__ import annotations

import random

import pytest

from hybridvoice.online.models import User
from hybridvoice.online.registrar import Registrar
from hybridvoice.online.store import TenantStore
from hybridvoice.sip.auth import Challenge, authorize, choose_challenge
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import parse_message

REALM = "contoso.com"
ALICE = "sip:alice@contoso.com"


@pytest.fixture
def store() -> TenantStore:
    s = TenantStore()
    s.add_domain("contoso.com")
    s.set_user(
        User(
            sip_uri=ALICE, enterprise_voice_enabled=True, line_uri="tel:+46812345678"
        ).with_password("wonderland", REALM)
    )
    s.set_user(
        User(sip_uri="sip:bob@contoso.com", enterprise_voice_enabled=True).with_password(
            "builder", REALM
        )
    )
    s.set_user(User(sip_uri="sip:carol@contoso.com").with_password("x", REALM))  # no EV
    return s


@pytest.fixture
def registrar(store: TenantStore) -> Registrar:
    return Registrar(store, REALM, rng=random.Random(7))


def _request(
    method: str = "REGISTER",
    *,
    uri: str = "sip:contoso.com",
    to: str = ALICE,
    from_: str | None = None,
    contacts: tuple[str, ...] = ("<sip:alice@192.0.2.1:5060;transport=tcp>",),
    cseq: int = 1,
    call_id: str = "reg-1@192.0.2.1",
    expires: int | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{cseq}{call_id[:3]}",
        "Max-Forwards: 70",
        f"To: <{to}>",
        f"From: <{from_ or to}>;tag=f{cseq}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines += [f"{n}: {v}" for n, v in extra]
    lines.append("Content-Length: 0")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def _answer(
    challenge_response: Response,
    request: Request,
    password: str,
    *,
    username: str = "alice",
    proxy: bool = False,
    nc: int = 1,
) -> Request:
    """`request` again with credentials answering the strongest challenge."""
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    challenges = [Challenge.parse(v) for v in challenge_response.headers.get_all(name)]
    credentials = authorize(
        choose_challenge(challenges),
        method=request.method,
        uri=str(request.uri),
        username=username,
        password=password,
        cnonce="0a4f113b",
        nc=nc,
    )
    out = request.copy()
    out.headers.add("Proxy-Authorization" if proxy else "Authorization", str(credentials))
    return out


def _register(
    registrar: Registrar, request: Request, now: float, password: str = "wonderland", **kw: object
) -> Response:
    """The REGISTER twice: challenged, then answered."""
    challenge = registrar.handle(request, now)
    assert challenge.status == 401, challenge
    return registrar.handle(_answer(challenge, request, password), now, **kw)  # type: ignore[arg-type]


def _contact_expires(response: Response) -> dict[str, str | None]:
    return {str(c.uri): c.param("expires") for c in response.contact}


def test_challenge_offers_sha256_then_md5(registrar: Registrar) -> None:
    response = registrar.handle(_request(), now=100.0)
    assert response.status == 401
    challenges = [Challenge.parse(v) for v in response.headers.get_all("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert {c.realm for c in challenges} == {REALM}
    assert challenges[0].qop == ("auth",)
    assert response.to is not None and response.to.tag is not None
    assert registrar.bindings == 0


def test_register_with_md5_only_client(registrar: Registrar) -> None:
    request = _request()
    challenge = registrar.handle(request, 100.0)
    md5 = next(
        Challenge.parse(v) for v in challenge.headers.get_all("WWW-Authenticate") if "MD5" in v
    )
    credentials = authorize(
        md5,
        method="REGISTER",
        uri="sip:contoso.com",
        username="alice",
        password="wonderland",
        cnonce="c",
        nc=1,
    )
    answered = request.copy()
    answered.headers.add("Authorization", str(credentials))
    assert registrar.handle(answered, 100.0).status == 200


def test_register_two_contacts_refresh_and_lookup(registrar: Registrar) -> None:
    request = _request(
        contacts=("<sip:alice@192.0.2.1:5060>;q=0.5", "<sip:alice@198.51.100.7:5061>;expires=120"),
        expires=600,
    )
    ok = registrar.handle(
        _answer(registrar.handle(request, 100.0), request, "wonderland"),
        100.0,
        ("TCP", "192.0.2.1", 40000),
    )
    assert ok.status == 200
    assert _contact_expires(ok) == {
        "sip:alice@192.0.2.1:5060": "600",
        "sip:alice@198.51.100.7:5061": "120",
    }
    bindings = registrar.lookup("sip:alice@CONTOSO.com;transport=tls", 150.0)
    assert [str(b.contact.uri) for b in bindings] == [
        "sip:alice@198.51.100.7:5061",  # q 1.0 (default) before q 0.5
        "sip:alice@192.0.2.1:5060",
    ]
    assert bindings[1].q == 0.5 and bindings[1].source == ("TCP", "192.0.2.1", 40000)
    assert bindings[0].contact.param("expires") is None
    assert bindings[0].expires_in(150.0) == 70
    assert registrar.bindings == 2
    # refresh one contact with the same Call-ID and a higher CSeq (a new nonce-count)
    refresh = _request(contacts=("<sip:alice@192.0.2.1:5060>;q=0.5",), cseq=2, expires=3600)
    challenge = registrar.handle(refresh, 200.0)
    ok = registrar.handle(_answer(challenge, refresh, "wonderland"), 200.0)
    assert ok.status == 200
    assert _contact_expires(ok)["sip:alice@192.0.2.1:5060"] == "3600"
    # a query (no Contact) lists the bindings
    query = _request(contacts=(), cseq=3)
    ok = registrar.handle(_answer(registrar.handle(query, 210.0), query, "wonderland"), 210.0)
    assert set(_contact_expires(ok)) == {"sip:alice@192.0.2.1:5060", "sip:alice@198.51.100.7:5061"}
    # expiry by now
    assert [str(b.contact.uri) for b in registrar.lookup(ALICE, 221.0)] == [
        "sip:alice@192.0.2.1:5060"
    ]
    assert registrar.expire(221.0) == 1
    assert registrar.bindings == 1
    assert registrar.lookup(ALICE, 200.0 + 3600) == []
    assert registrar.expire(200.0 + 3600) == 1
    assert registrar.bindings == 0


def test_expires_capped_at_max(store: TenantStore) -> None:
    registrar = Registrar(store, REALM, max_expires=1800, rng=random.Random(1))
    ok = _register(registrar, _request(expires=86400), 0.0)
    assert ok.status == 200
    assert list(_contact_expires(ok).values()) == ["1800"]
    default = _register(registrar, _request(contacts=("<sip:alice@192.0.2.9>",), cseq=2), 0.0)
    assert _contact_expires(default)["sip:alice@192.0.2.9"] == "1800"  # default 3600, capped


def test_unregister_with_expires_zero_and_star(registrar: Registrar) -> None:
    two = ("<sip:alice@192.0.2.1:5060>", "<sip:alice@192.0.2.2:5060>")
    assert _register(registrar, _request(contacts=two), 0.0).status == 200
    one = _register(
        registrar, _request(contacts=("<sip:alice@192.0.2.1:5060>;expires=0",), cseq=2), 1.0
    )
    assert one.status == 200
    assert list(_contact_expires(one)) == ["sip:alice@192.0.2.2:5060"]
    bad_star = _register(registrar, _request(contacts=("*",), cseq=3), 2.0)
    assert bad_star.status == 400
    assert "Expires: 0" in (bad_star.headers.get("Warning") or "")
    star = _register(registrar, _request(contacts=("*",), cseq=4, expires=0), 2.0)
    assert star.status == 200
    assert star.contact == () and registrar.bindings == 0


def test_interval_too_brief(registrar: Registrar) -> None:
    request = _request(expires=30)
    response = _register(registrar, request, 0.0)
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"
    assert registrar.bindings == 0
    # one brief contact fails the whole request
    mixed = _request(contacts=("<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.2>;expires=10"), cseq=2)
    assert _register(registrar, mixed, 0.0).status == 423
    assert registrar.bindings == 0


def test_out_of_order_cseq_is_refused(registrar: Registrar) -> None:
    assert _register(registrar, _request(cseq=5), 0.0).status == 200
    stale = _register(registrar, _request(cseq=5), 1.0)
    assert stale.status == 500
    older_star = _register(registrar, _request(contacts=("*",), cseq=4, expires=0), 1.0)
    assert older_star.status == 500
    assert registrar.bindings == 1
    # another Call-ID replaces the binding whatever its CSeq
    other = _register(registrar, _request(cseq=1, call_id="other@192.0.2.1"), 2.0)
    assert other.status == 200
    assert registrar.lookup(ALICE, 2.0)[0].call_id == "other@192.0.2.1"


def test_wrong_password_and_wrong_username(registrar: Registrar) -> None:
    assert _register(registrar, _request(), 0.0, password="guess").status == 403
    request = _request()
    challenge = registrar.handle(request, 0.0)
    as_bob = registrar.handle(_answer(challenge, request, "builder", username="bob"), 0.0)
    assert as_bob.status == 403
    assert "cannot act for" in (as_bob.headers.get("Warning") or "")
    assert registrar.bindings == 0


def test_replayed_and_foreign_nonces_are_rechallenged(
    store: TenantStore, registrar: Registrar
) -> None:
    request = _request()
    answered = _answer(registrar.handle(request, 0.0), request, "wonderland")
    assert registrar.handle(answered, 0.0).status == 200
    replay = registrar.handle(answered, 1.0)
    assert replay.status == 401  # same nc again: a fresh challenge, not a binding
    restarted = Registrar(store, REALM, rng=random.Random(99))  # another nonce secret
    assert restarted.handle(answered, 1.0).status == 401
    late = registrar.handle(_answer(registrar.handle(request, 0.0), request, "wonderland"), 1000.0)
    assert late.status == 401
    assert "stale=true" in (late.headers.get("WWW-Authenticate") or "")


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"to": "sip:nobody@contoso.com"}, 401),  # challenged like a user (then 403)
        ({"to": "sip:carol@contoso.com"}, 401),  # not enabled for enterprise voice: the same
        ({"to": "sip:alice@fabrikam.com"}, 401),  # a domain not served: the same
        ({"to": ALICE, "from_": "sip:bob@contoso.com"}, 403),  # third-party registration
        ({"to": "sip:nobody@contoso.com", "from_": "sip:bob@contoso.com"}, 403),  # the same
        ({"extra": (("Require", "gruu"),)}, 420),
        ({"uri": "tel:+4681234"}, 416),
        ({"contacts": ("<sip:alice@192.0.2.1>;q=2",)}, None),  # 400 once authenticated
    ],
)
def test_refusals(registrar: Registrar, fields: dict[str, object], status: int | None) -> None:
    response = registrar.handle(_request(**fields), 0.0)  # type: ignore[arg-type]
    if status is None:
        assert _register(registrar, _request(**fields), 0.0).status == 400  # type: ignore[arg-type]
        return
    assert response.status == status
    if status in (404, 403):
        assert response.headers.get("Warning", "").startswith("399 ")  # type: ignore[union-attr]
    if status == 420:
        assert response.headers.get("Unsupported") == "gruu"


def test_lookup_drops_removed_users(store: TenantStore, registrar: Registrar) -> None:
    assert _register(registrar, _request(), 0.0).status == 200
    assert len(registrar.lookup(ALICE, 1.0)) == 1
    store.set_user(store.get_user(ALICE).model_copy(update={"enterprise_voice_enabled": False}))  # type: ignore[union-attr]
    assert registrar.lookup(ALICE, 1.0) == []
    assert registrar.bindings == 0
    assert registrar.lookup("not a uri", 1.0) == []


def test_proxy_authentication_flow(registrar: Registrar) -> None:
    invite = _request(
        "INVITE",
        uri="sip:+4412345678@contoso.com;user=phone",
        to="sip:+4412345678@contoso.com",
        from_=ALICE,
        contacts=("<sip:alice@192.0.2.1>",),
    )
    challenge = registrar.authenticate(invite, 0.0)
    assert challenge is not None and challenge.status == 407
    assert len(challenge.headers.get_all("Proxy-Authenticate")) == 2
    answered = _answer(challenge, invite, "wonderland", proxy=True)
    assert registrar.authenticate(answered, 0.0) is None
    wrong = _answer(challenge, invite, "guess", proxy=True, nc=2)
    refused = registrar.authenticate(wrong, 0.0)
    assert refused is not None and refused.status == 403
    www = invite.copy()  # credentials in the wrong header do not count for a proxy
    www.headers.add("Authorization", answered.headers.get("Proxy-Authorization") or "")
    again = registrar.authenticate(www, 0.0)
    assert again is not None and again.status == 407
    stranger = _request("INVITE", from_="sip:mallory@evil.example", to=ALICE)
    refused = registrar.authenticate(stranger, 0.0)
    assert refused is not None and refused.status == 407  # challenged like a user...
    answered = _answer(refused, stranger, "guess", username="mallory", proxy=True)
    refused = registrar.authenticate(answered, 0.0)
    assert refused is not None and refused.status == 403  # ...and refused like a bad password
    assert registrar.authenticate(_request("CANCEL", from_="sip:x@y.com"), 0.0) is None


def test_constructor_checks_limits(store: TenantStore) -> None:
    with pytest.raises(ValueError, match="min_expires"):
        Registrar(store, REALM, min_expires=3600, max_expires=60)


def test_challenge_uses_the_realm_of_the_users_ha1s(store: TenantStore) -> None:
    """A registrar built before the tenant had its domain still authenticates its users."""
    registrar = Registrar(store, "hybridvoice", rng=random.Random(3))
    request = _request()
    challenge = registrar.handle(request, 0.0)
    realms = {Challenge.parse(v).realm for v in challenge.headers.get_all("WWW-Authenticate")}
    assert realms == {REALM}
    assert registrar.handle(_answer(challenge, request, "wonderland"), 0.0).status == 200
    # an unknown user (or one without a password) is challenged in the same realm: the realm
    # of the passwords the tenant makes (its first domain), not the registrar's own
    for nobody in ("sip:nobody@contoso.com", "sip:dave@fabrikam.com"):
        stranger = registrar.handle(_request(to=nobody), 0.0)
        headers = stranger.headers.get_all("WWW-Authenticate")
        assert {Challenge.parse(v).realm for v in headers} == {REALM}


def test_a_user_without_enterprise_voice_learns_it_only_once_authenticated(
    registrar: Registrar,
) -> None:
    carol = "sip:carol@contoso.com"
    request = _request(to=carol, contacts=("<sip:carol@192.0.2.1>",))
    challenge = registrar.handle(request, 0.0)
    assert challenge.status == 401
    wrong = registrar.handle(_answer(challenge, request, "guess", username="carol"), 0.0)
    assert wrong.status == 403 and "authentication failed" in (wrong.headers.get("Warning") or "")
    right = registrar.handle(_answer(challenge, request, "x", username="carol", nc=2), 0.0)
    assert right.status == 403
    assert "not enabled for enterprise voice" in (right.headers.get("Warning") or "")
    assert registrar.bindings == 0


# --- the binding limit: the oldest binding makes room (Kamailio usrloc max-contacts overwrite)


def test_a_new_device_at_the_binding_limit_replaces_the_oldest_binding(
    registrar: Registrar, caplog: pytest.LogCaptureFixture
) -> None:
    """16 devices registered one a minute, then went away without unregistering: a 17th
    device registers at once (it used to get 403 until the stale bindings expired)."""
    for device in range(registrar.max_contacts):
        request = _request(contacts=(f"<sip:alice@192.0.2.{device + 1}>",), call_id=f"d{device}")
        assert _register(registrar, request, 60.0 * device).status == 200
    now = 60.0 * registrar.max_contacts
    new = _request(contacts=("<sip:alice@198.51.100.7>",), call_id="new-device")
    with caplog.at_level("INFO", logger="hybridvoice.online.registrar"):
        response = _register(registrar, new, now)
    assert response.status == 200
    contacts = _contact_expires(response)
    assert len(contacts) == registrar.max_contacts
    assert "sip:alice@198.51.100.7" in contacts
    assert "sip:alice@192.0.2.1" not in contacts  # the first registered expires first
    assert "sip:alice@192.0.2.2" in contacts
    assert any(
        "replaced sip:alice@192.0.2.1" in r.getMessage() and "198.51.100.7" in r.getMessage()
        for r in caplog.records
    ), caplog.text


def test_the_binding_replaced_is_the_one_that_expires_first(registrar: Registrar) -> None:
    """A device that refreshed recently is kept even if it registered first."""
    for device in range(registrar.max_contacts):
        request = _request(contacts=(f"<sip:alice@192.0.2.{device + 1}>",), call_id=f"d{device}")
        assert _register(registrar, request, float(device)).status == 200
    refresh = _request(contacts=("<sip:alice@192.0.2.1>",), call_id="d0", cseq=2)
    assert _register(registrar, refresh, 100.0).status == 200
    new = _register(registrar, _request(contacts=("<sip:alice@198.51.100.7>",), call_id="n"), 101.0)
    contacts = _contact_expires(new)
    assert "sip:alice@192.0.2.1" in contacts and "sip:alice@192.0.2.2" not in contacts


def test_one_register_with_more_contacts_than_the_limit_is_refused(registrar: Registrar) -> None:
    many = tuple(f"<sip:alice@192.0.2.{i + 1}>" for i in range(registrar.max_contacts + 1))
    response = _register(registrar, _request(contacts=many), 0.0)
    assert response.status == 403
    assert "at most 16 contacts" in (response.headers.get("Warning") or "")
    assert registrar.bindings == 0
