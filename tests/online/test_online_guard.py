"""Authentication failure limits (AuthGuard) on a fake clock, and the registrar using them:
real Digest answers, no sockets."""

from __future__ import annotations

import random

import pytest

from hybridvoice.online.guard import AuthGuard, BlockReason, GuardLimits, source_key
from hybridvoice.online.models import User
from hybridvoice.online.registrar import Registrar
from hybridvoice.online.store import TenantStore
from hybridvoice.sip.auth import Challenge, authorize, choose_challenge
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import parse_message

LIMITS = GuardLimits(failure_limit=5, window=10.0, block=60.0, max_block=600.0, max_entries=100)
ALICE = "sip:alice@contoso.com"
ATTACKER = "203.0.113.66"
PHONE = "192.0.2.10"


def fail(guard: AuthGuard, times: int, source: str | None, user: str, now: float) -> list[str]:
    started = []
    for _ in range(times):
        started += [b.reason.value for b in guard.failed(source, user, now)]
    return started


# --- the limiter -----------------------------------------------------------------------------


def test_a_source_is_blocked_after_the_limit_within_the_window() -> None:
    guard = AuthGuard(LIMITS)
    assert fail(guard, 4, ATTACKER, "sip:u1@contoso.com", 0.0) == []
    assert guard.check(ATTACKER, "sip:u2@contoso.com", 1.0) is None
    # the fifth failure, for another user: the source's limit, not the users'
    assert fail(guard, 1, ATTACKER, "sip:u2@contoso.com", 1.0) == ["source"]
    assert guard.check(ATTACKER, "sip:anyone@contoso.com", 2.0) is BlockReason.SOURCE
    assert guard.check("198.51.100.1", "sip:u1@contoso.com", 2.0) is None  # others may try
    assert guard.check(ATTACKER, "sip:anyone@contoso.com", 61.0) is None  # the block ends
    assert guard.counters.blocks[BlockReason.SOURCE] == 1
    assert guard.counters.refused[BlockReason.SOURCE] == 1
    assert guard.counters.failures == 5


def test_failures_spread_wider_than_the_window_do_not_block() -> None:
    guard = AuthGuard(LIMITS)
    for i in range(20):
        assert guard.failed(ATTACKER, ALICE, i * 3.0) == []  # 4 within any 10 s
    assert guard.check(ATTACKER, ALICE, 61.0) is None


def test_repeat_offences_block_twice_as_long_up_to_the_maximum() -> None:
    guard = AuthGuard(LIMITS)
    now, lengths = 0.0, []
    for _ in range(6):
        blocks = guard.failed(ATTACKER, f"sip:u{now}@x.com", now)
        while not blocks:
            blocks = guard.failed(ATTACKER, f"sip:u{now}@x.com", now)
        lengths.append(blocks[0].seconds)
        assert guard.check(ATTACKER, ALICE, now + blocks[0].seconds - 0.5) is BlockReason.SOURCE
        now += blocks[0].seconds  # right after the block: a repeat offence
    assert lengths == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
    # quiet for max_block: the next offence starts afresh
    quiet = now + LIMITS.max_block + 1
    assert fail(guard, 5, ATTACKER, "sip:late@x.com", quiet)[0] == "source"
    assert guard.check(ATTACKER, ALICE, quiet + 59) is BlockReason.SOURCE
    assert guard.check(ATTACKER, ALICE, quiet + 61) is None


def test_a_user_attacked_from_many_sources_is_blocked_but_not_on_its_own_phone() -> None:
    """The per-user block spares sources that have authenticated as that user: an attacker
    cannot lock the real user out of their usual phone."""
    guard = AuthGuard(LIMITS)
    guard.succeeded(PHONE, ALICE)
    started = []
    for i in range(5):  # five attackers, one failure each: no source reaches the limit
        started += [b.reason for b in guard.failed(f"203.0.113.{i}", ALICE, 0.0)]
    assert started == [BlockReason.USER]
    assert guard.check("203.0.113.99", ALICE, 1.0) is BlockReason.USER
    assert guard.check(PHONE, ALICE, 1.0) is None  # the real user's phone still may try
    assert guard.check(PHONE, "sip:bob@contoso.com", 1.0) is None
    assert guard.counters.refused[BlockReason.USER] == 1


def test_unknown_users_are_limited_exactly_like_known_ones() -> None:
    """The guard knows nothing of the tenant: any address of record counts the same."""
    outcomes = []
    for user in (ALICE, "sip:nobody@contoso.com", "sip:x@not-a-tenant.example"):
        guard = AuthGuard(LIMITS)
        outcomes.append((fail(guard, 5, None, user, 0.0), guard.check("192.0.2.1", user, 1.0)))
    assert outcomes == [(["user"], BlockReason.USER)] * 3


def test_memory_is_bounded_against_rotating_sources_and_users() -> None:
    guard = AuthGuard(LIMITS)
    for i in range(5000):
        guard.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"sip:u{i}@x.com", 0.0)
        guard.succeeded(f"10.0.{i // 256 % 256}.{i % 256}", f"sip:u{i}@x.com")
    assert guard.entries <= 3 * LIMITS.max_entries
    for i in range(5000):  # IPv6: one /64 is one source, whatever the interface id
        guard.failed(f"2001:db8::{i:x}", "sip:v@x.com", 0.0)
    assert guard.check("2001:db8::ffff:1", ALICE, 1.0) is BlockReason.SOURCE


def test_source_keys() -> None:
    assert source_key("192.0.2.1") == "192.0.2.1"
    assert source_key("2001:db8::1") == source_key("[2001:db8::2]") == "2001:db8::/64"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key("host.example") == "host.example"


def test_limit_zero_turns_the_guard_off() -> None:
    guard = AuthGuard(GuardLimits(failure_limit=0))
    assert fail(guard, 100, ATTACKER, ALICE, 0.0) == []
    assert guard.check(ATTACKER, ALICE, 0.0) is None
    assert guard.counters.failures == 100  # still counted


@pytest.mark.parametrize(
    "kw",
    [{"failure_limit": -1}, {"window": 0}, {"block": 0}, {"block": 10, "max_block": 5},
     {"max_entries": 0}, {"window": float("inf")}],
)  # fmt: skip
def test_bad_limits_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        GuardLimits(**kw)  # type: ignore[arg-type]


# --- the registrar with the guard ------------------------------------------------------------


@pytest.fixture
def registrar() -> Registrar:
    store = TenantStore()
    store.add_domain("contoso.com")
    store.set_user(
        User(sip_uri=ALICE, enterprise_voice_enabled=True).with_password(
            "wonderland", "contoso.com"
        )
    )
    return Registrar(store, "contoso.com", rng=random.Random(3), guard=AuthGuard(LIMITS))


def register(user: str = "alice", call_id: str = "c1") -> Request:
    text = (
        f"REGISTER sip:contoso.com SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK{call_id}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{user}@contoso.com>\r\n"
        f"From: <sip:{user}@contoso.com>;tag=1\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{PHONE}>\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def attempt(
    registrar: Registrar, password: str, host: str, now: float, user: str = "alice"
) -> Response:
    request = register(user, f"c{now}{password}{host}")
    challenge = registrar.handle(request, now, ("UDP", host, 5060))
    assert challenge.status == 401
    challenges = [Challenge.parse(v) for v in challenge.headers.get_all("WWW-Authenticate")]
    credentials = authorize(choose_challenge(challenges), method="REGISTER",
                            uri=str(request.uri), username=user, password=password,
                            cnonce="c0ffee")  # fmt: skip
    request.headers.add("Authorization", str(credentials))
    return registrar.handle(request, now, ("UDP", host, 5060))


def test_a_guesser_is_refused_after_the_limit_then_the_right_password_works_again(
    registrar: Registrar, caplog: pytest.LogCaptureFixture
) -> None:
    assert attempt(registrar, "wonderland", PHONE, 0.0).status == 200  # alice's own phone
    with caplog.at_level("INFO"):
        wrong = [attempt(registrar, f"guess{i}", ATTACKER, 1.0).status for i in range(5)]
    assert wrong == [403] * 5
    failures = [r for r in caplog.records if r.name == "hybridvoice.online.registrar"]
    assert [r.getMessage() for r in failures] == [
        f"authentication failed for {ALICE} from {ATTACKER}"
    ] * 5
    blocks = [r for r in caplog.records if r.name == "hybridvoice.online.guard"]
    assert len(blocks) == 2 and all(r.levelname == "WARNING" for r in blocks)  # source, user
    assert all(ATTACKER in r.getMessage() and ALICE in r.getMessage() for r in blocks)
    # blocked: even the right password is refused from the attacker's address...
    blocked = attempt(registrar, "wonderland", ATTACKER, 2.0)
    assert blocked.status == 403
    assert blocked.headers.get("Warning") == wrong_warning(registrar)  # the same refusal
    # ...but alice's own phone, which authenticated before, still registers
    assert attempt(registrar, "wonderland", PHONE, 2.0).status == 200
    assert attempt(registrar, "wonderland", ATTACKER, 62.0).status == 200  # the block ended
    assert registrar.guard is not None
    assert registrar.guard.counters.refused[BlockReason.SOURCE] == 1


def wrong_warning(registrar: Registrar) -> str | None:
    return attempt(registrar, "nope", "198.51.100.200", 3.0).headers.get("Warning")


def test_the_limit_treats_unknown_users_as_known(registrar: Registrar) -> None:
    answers = {}
    for user in ("alice", "nobody"):
        answers[user] = [attempt(registrar, "x", f"198.51.100.{i}", 0.0, user).status
                         for i in range(6)]  # fmt: skip
        answers[user].append(attempt(registrar, "x", "198.51.100.99", 1.0, user).status)
    assert answers["alice"] == answers["nobody"] == [403] * 7
    assert registrar.guard is not None
    assert registrar.guard.counters.blocks[BlockReason.USER] == 2
    assert registrar.guard.counters.refused[BlockReason.USER] == 4  # the 6th and 7th, twice


# --- settings --------------------------------------------------------------------------------


def test_limits_come_from_the_online_section() -> None:
    from hybridvoice.cms.settings import SettingsError, parse_settings  # noqa: PLC0415
    from hybridvoice.online.service import auth_limits  # noqa: PLC0415

    common = {"SIPDomains": "contoso.com", "SiteName": "Stockholm"}
    default = parse_settings({"Common": common}).online
    assert auth_limits(default) == GuardLimits()  # the defaults agree
    online = {"AuthFailureLimit": 3, "AuthFailureWindowSeconds": 5, "AuthBlockSeconds": 2,
              "AuthBlockMaxSeconds": 8}  # fmt: skip
    limits = auth_limits(parse_settings({"Common": common, "Online": online}).online)
    assert limits == GuardLimits(failure_limit=3, window=5.0, block=2.0, max_block=8.0)
    for bad, key in (
        ({"AuthFailureLimit": -1}, "AuthFailureLimit"),
        ({"AuthFailureWindowSeconds": 0}, "AuthFailureWindowSeconds"),
        ({"AuthBlockSeconds": 600, "AuthBlockMaxSeconds": 60}, "AuthBlockMaxSeconds"),
    ):
        with pytest.raises(SettingsError, match=key):
            parse_settings({"Common": common, "Online": bad})
