"""Client registration on loopback (RFC 3261 §10.2, §10.3, §22.2; RFC 7616 §3.4 nonce-count):
a tiny registrar built on a UserAgent application with a real DigestServer, UDP and TCP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from ua_harness import FAST, QUICK, WAIT, run

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import (
    DigestCredentials,
    Registration,
    RegistrationError,
    RegistrationState,
)
from hybridvoice.net.transport import Destination, Transport
from hybridvoice.net.ua import DEFAULT_POLICY, Call, UserAgent
from hybridvoice.sip import Request, Response
from hybridvoice.sip.auth import Credentials, DigestServer, Password, VerifyResult
from hybridvoice.sip.message import make_response
from hybridvoice.sip.transaction import ServerTransaction

KINDS = pytest.mark.parametrize("kind", ["UDP", "TCP"])
AOR = "sip:alice@hv.test"
GOOD = DigestCredentials("alice", "s3cret")
#: the registrar takes REGISTER (§10.3): the UA's §8.2 checks would refuse it 405
POLICY = dataclasses.replace(
    DEFAULT_POLICY, allowed_methods=(*DEFAULT_POLICY.allowed_methods, "REGISTER")
)


def lookup(username: str, realm: str, algorithm: str) -> Password | None:
    return {"alice": Password("s3cret"), "mallory": Password("m")}.get(username)


class Registrar:
    """§10.3 in a few lines: authenticate (401), refuse ``forbidden`` users (403), 423 below
    ``min_expires``, grant at most ``max_expires``, answer with every binding of the AOR."""

    def __init__(
        self, min_expires: int = 60, max_expires: int = 3600, nonce_lifetime: float = 300.0
    ) -> None:
        self.ua: UserAgent | None = None
        self.server = DigestServer(
            "hv.test", b"registrar-secret-0123456789", nonce_lifetime=nonce_lifetime
        )
        self.min_expires, self.max_expires = min_expires, max_expires
        self.forbidden = {"mallory"}
        self.bindings: dict[str, dict[str, int]] = {}  # AOR -> contact URI -> expires
        self.requests: list[Request] = []
        self.arrived: asyncio.Queue[Request] = asyncio.Queue()
        self.verdicts: list[VerifyResult] = []

    def on_incoming_call(self, call: Call) -> None:
        call.reject(480)

    def on_request(self, transaction: ServerTransaction, request: Request) -> bool:
        if request.method != "REGISTER":
            return False
        assert self.ua is not None
        self.requests.append(request)
        self.arrived.put_nowait(request)
        self.ua.respond(transaction, self.answer(request))
        return True

    def answer(self, request: Request) -> Response:
        assert self.ua is not None
        now = self.ua.now()
        value = request.headers.get("Authorization")
        result = None
        if value is not None:
            result = self.server.verify(
                Credentials.parse(value), method="REGISTER", now=now, lookup=lookup,
                uri=str(request.uri),
            )  # fmt: skip
            self.verdicts.append(result)
        if result is not VerifyResult.OK:
            stale = result is VerifyResult.STALE
            challenges = [("WWW-Authenticate", c) for c in self.server.challenges(now, stale=stale)]
            return make_response(request, 401, to_tag="reg", headers=challenges)
        assert value is not None
        if Credentials.parse(value).username in self.forbidden:
            return make_response(request, 403, to_tag="reg")
        assert request.to is not None
        aor = str(request.to.uri)
        expires = int(request.headers.get("Expires") or 3600)
        if 0 < expires < self.min_expires:
            return make_response(
                request, 423, to_tag="reg", headers=[("Min-Expires", self.min_expires)]
            )
        bound = self.bindings.setdefault(aor, {})
        for contact in request.contact:
            if expires == 0:
                bound.pop(str(contact.uri), None)
            else:
                bound[str(contact.uri)] = min(expires, self.max_expires)
        contacts = [("Contact", f"<{uri}>;expires={e}") for uri, e in bound.items()]
        return make_response(request, 200, to_tag="reg", headers=contacts)


@dataclass
class Rig:
    registrar: Registrar
    client: UserAgent
    destination: Destination
    client_transport: Transport


@contextlib.asynccontextmanager
async def rig(kind: str, registrar: Registrar | None = None) -> AsyncIterator[Rig]:
    registrar = registrar or Registrar()
    server_ep, client_ep = Endpoint(timers=FAST), Endpoint(timers=FAST)
    server = UserAgent(server_ep, registrar, config=QUICK, policy=POLICY, rng=random.Random())
    registrar.ua = server
    client = UserAgent(client_ep, config=QUICK, rng=random.Random(), user="alice")
    host, port = (await server_ep.listen(kind, "127.0.0.1")).local
    transport = await client_ep.listen(kind, "127.0.0.1")
    try:
        yield Rig(registrar, client, Destination(kind, host, port), transport)
    finally:
        for ua in (server, client):
            ua.close()
            await ua.endpoint.close()


def state(reg: Registration) -> RegistrationState:
    """(Not ``reg.state is ...``: mypy would narrow the attribute across awaits.)"""
    return reg.state


def cseq(request: Request) -> int:
    assert request.cseq is not None and request.cseq.method == "REGISTER"
    return request.cseq.seq


@KINDS
def test_register_with_challenge_then_unregister(kind: str) -> None:
    async def main() -> None:
        async with rig(kind) as r:
            reg = Registration(r.client, AOR, r.destination, credentials=GOOD, expires=600)
            assert state(reg) is RegistrationState.IDLE
            assert await reg.register() == 600
            assert state(reg) is RegistrationState.REGISTERED and reg.last_error is None
            assert (reg.expires_at or 0.0) > r.client.now()
            first, second = r.registrar.requests
            assert "Authorization" not in first.headers and "Authorization" in second.headers
            assert first.call_id == second.call_id == reg.call_id
            assert (cseq(first), cseq(second)) == (1, 2)
            assert str(first.uri) == "sip:hv.test"
            ours = str(r.client.contact(r.client_transport, "alice").uri)
            assert r.registrar.bindings == {AOR: {ours: 600}}
            await reg.stop(unregister=True)
            last = r.registrar.requests[-1]
            assert last.headers.get("Expires") == "0" and last.call_id == reg.call_id
            assert cseq(last) == 3 and "Authorization" in last.headers  # the nonce reused
            assert r.registrar.bindings == {AOR: {}}
            assert state(reg) is RegistrationState.UNREGISTERED
            assert reg.granted == 0 and reg.expires_at is None
            assert r.registrar.verdicts == [VerifyResult.OK, VerifyResult.OK]

    run(main())


@KINDS
def test_refresh_reuses_the_call_id_and_the_nonce(kind: str) -> None:
    async def main() -> None:
        async with rig(kind, Registrar(min_expires=1, max_expires=2)) as r:
            reg = Registration(r.client, AOR, r.destination, credentials=GOOD, expires=600)
            reg.start()
            seen = [await asyncio.wait_for(r.registrar.arrived.get(), WAIT) for _ in range(3)]
            assert reg.granted == 2
            challenged, registered, refresh = seen
            assert len({each.call_id for each in seen}) == 1
            assert cseq(challenged) < cseq(registered) < cseq(refresh)
            # the refresh answered the old challenge again with nc 2: no new 401
            creds = [Credentials.parse(x.headers.get("Authorization") or "") for x in seen[1:]]
            assert creds[0].nonce == creds[1].nonce and (creds[0].nc, creds[1].nc) == (1, 2)
            await reg.stop()
            assert r.registrar.requests[-1].headers.get("Expires") == "0"
            assert all(v is VerifyResult.OK for v in r.registrar.verdicts)
            assert state(reg) is RegistrationState.UNREGISTERED

    run(main())


def test_a_stale_nonce_is_answered_afresh() -> None:
    async def main() -> None:
        registrar = Registrar(min_expires=1, max_expires=2, nonce_lifetime=0.5)
        async with rig("UDP", registrar) as r:
            reg = Registration(r.client, AOR, r.destination, credentials=GOOD)
            reg.start()
            seen = [await asyncio.wait_for(r.registrar.arrived.get(), WAIT) for _ in range(4)]
            # 401; 200; the refresh with the old nonce: 401 stale=true; with the new one: 200
            assert r.registrar.verdicts[:3] == [
                VerifyResult.OK,
                VerifyResult.STALE,
                VerifyResult.OK,
            ]
            assert [cseq(x) for x in seen] == [1, 2, 3, 4]
            await reg.stop()
            assert state(reg) is RegistrationState.UNREGISTERED and reg.last_error is None

    run(main())


@KINDS
def test_423_raises_to_min_expires(kind: str) -> None:
    async def main() -> None:
        async with rig(kind, Registrar(min_expires=900)) as r:
            reg = Registration(r.client, AOR, r.destination, credentials=GOOD, expires=600)
            assert await reg.register() == 900
            assert reg.expires == 900
            asked = [x.headers.get("Expires") for x in r.registrar.requests]
            assert asked == ["600", "600", "900"]  # 401, 423, 200
            assert [cseq(x) for x in r.registrar.requests] == [1, 2, 3]

    run(main())


@KINDS
def test_403_and_wrong_password_raise(kind: str) -> None:
    async def main() -> None:
        async with rig(kind) as r:
            creds = DigestCredentials("mallory", "m")
            mallory = Registration(
                r.client, "sip:mallory@hv.test", r.destination, credentials=creds
            )
            with pytest.raises(RegistrationError) as failed:
                await mallory.register()
            assert (failed.value.status, failed.value.reason) == (403, "Forbidden")
            assert state(mallory) is RegistrationState.FAILED and mallory.last_error is failed.value
            wrong = DigestCredentials("alice", "nope")
            alice = Registration(r.client, AOR, r.destination, credentials=wrong)
            with pytest.raises(RegistrationError) as failed:
                await alice.register()
            assert failed.value.status == 401
            assert len([x for x in r.registrar.requests if x.call_id == alice.call_id]) == 2
            anonymous = Registration(r.client, AOR, r.destination)
            with pytest.raises(RegistrationError) as failed:
                await anonymous.register()
            assert failed.value.status == 401
            assert r.registrar.bindings == {}

    run(main())


@KINDS
def test_two_contacts_for_one_aor(kind: str) -> None:
    async def main() -> None:
        async with rig(kind) as r:
            desk = Registration(r.client, AOR, r.destination, credentials=GOOD, expires=300)
            phone = Registration(
                r.client.endpoint, AOR, r.destination, credentials=GOOD, expires=120,
                contact="<sip:alice@127.0.0.1:5999>",
            )  # fmt: skip
            assert await desk.register() == 300
            assert await phone.register() == 120  # our Contact's expires among the two
            assert desk.call_id != phone.call_id
            assert len(r.registrar.bindings[AOR]) == 2
            await phone.stop()
            assert list(r.registrar.bindings[AOR].values()) == [300]
            assert state(desk) is RegistrationState.REGISTERED

    run(main())


def test_no_answer_is_a_408() -> None:
    async def main() -> None:
        async with rig("UDP") as r:
            quiet = await r.client.endpoint.listen("UDP", "127.0.0.2")
            host, port = quiet.local
            quiet.close()  # a port nobody answers on
            reg = Registration(
                r.client, AOR, Destination("UDP", host, port), credentials=GOOD, timeout=0.3
            )
            with pytest.raises(RegistrationError) as failed:
                await reg.register()
            assert failed.value.status == 408 and state(reg) is RegistrationState.FAILED

    run(main())
