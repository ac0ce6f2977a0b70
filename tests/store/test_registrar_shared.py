"""Registrations as keys with leases (hybridvoice.online.registrar_shared): the core's writes
and readings, then two registrars of one tenant on both backends: a user registered through
one instance is found through the other, an un-REGISTER through either removes it, and a
binding outlives the instance that wrote it until its lease ends."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable

from store_backends import Backend
from test_tenant_store_kv import eventually, two_instances

from hybridvoice.online.models import User
from hybridvoice.online.registrar import Binding, Registrar
from hybridvoice.online.registrar_shared import (
    BindingWrite,
    BindingWriter,
    SharedBindings,
    contact_id,
    share_registrations,
)
from hybridvoice.sip.auth import Challenge, authorize, choose_challenge
from hybridvoice.sip.headers import parse_address
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.parser import parse_message
from hybridvoice.store.keys import tenant_key, tenant_prefix
from hybridvoice.store.kv import Event, EventKind

REALM = "contoso.com"
ALICE = f"sip:alice@{REALM}"
CONTACT = "<sip:alice@127.0.0.1:5070>"


def register(
    registrar: Registrar, now: float, *, expires: int, cseq: int, source: str = "UDP"
) -> Response:
    text = "\r\n".join(
        [
            f"REGISTER sip:{REALM} SIP/2.0",
            f"Via: SIP/2.0/{source} 127.0.0.1:5070;branch=z9hG4bK{cseq}x",
            "Max-Forwards: 70",
            f"To: <{ALICE}>",
            f"From: <{ALICE}>;tag=f{cseq}",
            "Call-ID: reg-1@127.0.0.1",
            f"CSeq: {cseq} REGISTER",
            f"Contact: {CONTACT}",
            f"Expires: {expires}",
            "Content-Length: 0",
        ]
    )
    request = parse_message((text + "\r\n\r\n").encode())
    assert isinstance(request, Request)
    where = (source, "127.0.0.1", 5070)
    challenge = registrar.handle(request, now, where)
    assert challenge.status == 401, challenge
    challenges = [Challenge.parse(v) for v in challenge.headers.get_all("WWW-Authenticate")]
    answered = request.copy()
    credentials = authorize(
        choose_challenge(challenges), method="REGISTER", uri=str(request.uri),
        username="alice", password="wonderland", cnonce="0a4f113b", nc=1,
    )  # fmt: skip
    answered.headers.add("Authorization", str(credentials))
    return registrar.handle(answered, now, where)


def binding(source: tuple[str, str, int] | None, expires_at: float) -> Binding:
    return Binding(ALICE, parse_address(CONTACT), expires_at, "c", 1, 1.0, source)


def test_the_core_writes_a_lease_per_binding_and_reads_the_others() -> None:
    wall = [1_000_000.0]
    a = SharedBindings("t", "a", grace=10, wall=lambda: wall[0])
    b = SharedBindings("t", "b", grace=10, wall=lambda: wall[0])
    one = binding(("UDP", "127.0.0.1", 5070), expires_at=100.0 + 60)
    [put] = a.changed(ALICE, [], [one], now=100.0)
    assert put.key == tenant_key("t", "reg", f"{ALICE}/{contact_id(one)}")
    assert put.ttl == 60 + 10 and put.value is not None
    assert json.loads(put.value)["expires"] == 1_000_060.0
    assert a.changed(ALICE, [one], [one], now=101.0) == []  # nothing changed
    event = Event(EventKind.PUT, put.key, put.value, 7)
    assert a.received(event, now=5.0) is None  # its own write
    # another instance, whose monotonic clock reads 5.0 at the same wall time
    got = b.received(event, now=5.0)
    assert got is not None
    aor, same, learnt = got
    assert aor == ALICE and learnt is not None and same(one)
    assert learnt.expires_at == 65.0 and learnt.source == ("UDP", "127.0.0.1", 5070)
    assert b.received(Event(EventKind.PUT, put.key, put.value, 6), now=5.0) is None  # older
    [put_tcp] = a.changed(ALICE, [], [binding(("TCP", "127.0.0.1", 5070), 160.0)], now=100.0)
    assert put_tcp.value is not None
    got = b.received(Event(EventKind.PUT, put.key, put_tcp.value, 8), now=5.0)
    assert got is not None and got[2] is not None and got[2].source is None  # A's connection
    [gone] = a.changed(ALICE, [one], [], now=110.0)
    assert gone.key == put.key and gone.value is None
    got = b.received(Event(EventKind.DELETE, put.key, b"", 9), now=5.0)
    assert got is not None and got[2] is None and got[1](one)
    bad = Event(EventKind.PUT, put.key, b"not json", 10)
    assert b.received(bad, now=5.0) is None


def _registrar(store: object) -> Registrar:
    return Registrar(store, REALM, rng=random.Random(7), min_expires=1)  # type: ignore[arg-type]


def run(body: Callable[[], object]) -> None:
    async def main() -> None:
        await asyncio.wait_for(body(), 240)  # type: ignore[arg-type]

    asyncio.run(main())


def test_two_registrars_share_bindings_through_the_store(kv: Backend) -> None:
    async def body() -> None:
        async with two_instances(kv, kv.prefix.rstrip("/")) as (a, b):
            a.add_domain(REALM)
            user = User(sip_uri=ALICE, enterprise_voice_enabled=True)
            a.set_user(user.with_password("wonderland", REALM))
            await eventually(lambda: b.get_user(ALICE) is not None)
            ra, rb = _registrar(a), _registrar(b)
            share_registrations(ra, a, instance="a", grace=1)
            share_registrations(rb, b, instance="b", grace=1)
            now = time.monotonic()
            assert register(ra, now, expires=3600, cseq=1).status == 200
            await eventually(lambda: len(rb.lookup(ALICE, time.monotonic())) == 1)
            [found] = rb.lookup(ALICE, time.monotonic())
            assert found.source == ("UDP", "127.0.0.1", 5070)
            assert 3590 < found.expires_at - time.monotonic() <= 3600
            # un-REGISTER through B: gone from A too, and from the store
            assert register(rb, time.monotonic(), expires=0, cseq=2).status == 200
            await eventually(lambda: ra.lookup(ALICE, time.monotonic()) == [])
            prefix = tenant_prefix(a.tenant, "reg")
            kvs = a.bridge.kv

            async def keys() -> int:
                return len((await asyncio.wrap_future(a.bridge.submit(
                    lambda: kvs.range(prefix)))).kvs)  # fmt: skip

            await kv.eventually(lambda: _none(keys))
            # registered through A for 4 s: the key ends with its lease (4 s + 1 s of grace)
            # even though A never revokes it
            assert register(ra, time.monotonic(), expires=4, cseq=3).status == 200
            await eventually(lambda: len(rb.lookup(ALICE, time.monotonic())) == 1)
            assert await keys() == 1
            await kv.advance(6)
            await kv.eventually(lambda: _none(keys))

    run(body)


async def _none(count: Callable[[], object]) -> bool:
    return await count() == 0  # type: ignore[misc]


class _GatedStore:
    """A store whose puts wait for the test to open the gate (a slow etcd)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.puts: list[bytes] = []
        self.leases = 0

    async def grant(self, ttl: int) -> int:
        self.leases += 1
        return self.leases

    async def keep_alive(self, lease: int) -> None:
        return None

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        await self.gate.wait()
        self.puts.append(value)
        return len(self.puts)


def test_writes_waiting_for_a_slow_store_are_coalesced_to_the_last() -> None:
    async def main() -> None:
        store = _GatedStore()
        writer = BindingWriter(store)  # type: ignore[arg-type]
        offers = [
            asyncio.ensure_future(writer.offer(BindingWrite("k", f"v{i}".encode(), 70)))
            for i in range(5)
        ]
        await asyncio.sleep(0.05)  # v0 in flight, v1..v4 offered meanwhile
        store.gate.set()
        await asyncio.gather(*offers)
        assert store.puts == [b"v0", b"v4"] and writer.writes == 2
        assert store.leases == 1  # the second write kept the first one's lease alive

    asyncio.run(main())
