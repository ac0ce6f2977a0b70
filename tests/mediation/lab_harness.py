"""Shared helpers for tests that run the mediation role on loopback between real UAs: peers
for the cloud and the gateways, the "lab" (a started role with its peers), and settling.

The loopback UA helpers themselves live in ``tests/net/ua_harness.py``; pytest puts that folder
on the import path (``pythonpath`` in pyproject.toml) so both test folders share one copy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ua_harness import (
    ANSWER,
    FAST,
    OFFER,
    QUICK,
    WAIT,
    Phone,
    open_side,
    run,
    sdp,
)

from hybridvoice.cms.settings import parse_settings
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import Destination, Transport
from hybridvoice.net.ua import Call, UserAgent
from hybridvoice.sip.session import Answered, Cause, Confirmed, Ringing

__all__ = [
    "ANSWER",
    "CALLEE",
    "FAST",
    "NO_ANSWER",
    "OFFER",
    "QUICK",
    "WAIT",
    "Lab",
    "Peer",
    "Phone",
    "RoleLab",
    "connect",
    "lab",
    "peer",
    "run",
    "running_role",
    "sdp",
    "settings",
    "settle",
]

CALLEE = "+31201234567"

#: The gateways' no-answer timer (FailoverTimeSeconds). The product's default: a test that
#: answers at once must not be failed over because a loaded CI machine took longer than a
#: short timer to carry the answer. Tests of the timer itself ask for a short one.
NO_ANSWER = 10.0


@dataclass
class Peer:
    ua: UserAgent
    phone: Phone
    endpoint: Endpoint
    transport: Transport

    @property
    def port(self) -> int:
        return self.transport.local[1]

    async def next_call(self) -> Call:
        return await asyncio.wait_for(self.phone.incoming.get(), WAIT)


async def peer(host: str = "127.0.0.1", kind: str = "UDP") -> Peer:
    return Peer(*await open_side(kind, host))


@dataclass
class RoleLab:
    role: MediationRole
    cloud: Peer

    @property
    def edge(self) -> int:
        assert self.role.edge_transport is not None
        return self.role.edge_transport.local[1]


@contextlib.asynccontextmanager
async def running_role(
    tmp_path: Path, raw: dict[str, Any], cloud: Peer, gateways: list[Peer], *, relay: bool
) -> AsyncIterator[MediationRole]:
    """The mediation role started with ``raw`` settings between ``cloud`` and ``gateways``;
    on the way out the role is stopped and every peer closed."""
    options = RoleOptions(
        edge=Destination("UDP", "127.0.0.1", 0),
        edge_target=Destination("UDP", "127.0.0.1", cloud.port),
        relay=relay, records=tmp_path / "calls.db", session=QUICK, timers=FAST, seed=1,
    )  # fmt: skip
    role = MediationRole(parse_settings(raw), options)
    await role.start()
    try:
        yield role
    finally:
        await role.stop()
        for p in (cloud, *gateways):
            p.ua.close()
            await p.endpoint.close()


@dataclass
class Lab(RoleLab):
    gateways: list[Peer]

    @property
    def gateway_side(self) -> int:
        return self.role.gateway_transports["UDP"].local[1]

    def call_out(
        self, number: str = CALLEE, offer: bytes | None = OFFER,
        headers: tuple[tuple[str, object], ...] = (),
    ) -> Call:  # fmt: skip
        """The cloud side calls ``number`` through the mediation role."""
        return self.cloud.ua.invite(
            f"sip:{number}@127.0.0.1:{self.edge}", from_="<sip:+31209876543@contoso.com>",
            sdp=offer, destination=Destination("UDP", "127.0.0.1", self.edge), headers=headers,
        )  # fmt: skip

    async def first_gateway_leg(self) -> tuple[Call, str, Peer]:
        """The gateway leg of a call just placed, on whichever of two gateways the router
        chose: the leg, that gateway's name, and the other gateway."""
        first, second = self.gateways
        got = await asyncio.wait(
            [asyncio.ensure_future(g.next_call()) for g in (first, second)],
            return_when=asyncio.FIRST_COMPLETED,
        )
        leg = next(iter(got[0])).result()
        for task in got[1]:
            task.cancel()
        if leg._ua is first.ua:
            return leg, "Gateway1", second
        return leg, "Gateway2", first

    async def moved_on(self, a: Call, left: Call, dead: str, other: Peer) -> None:
        """``a``'s attempt on gateway ``dead`` (leg ``left``) was given up (CANCEL) and the
        call placed on ``other``, which answers; then ``a`` hangs up and all is released."""
        assert (await left.ended(WAIT)).cause is Cause.CANCELLED
        b2 = await other.next_call()
        b2.answer(ANSWER)
        assert await a.answered(WAIT) == Answered(ANSWER)
        trunks = self.role.trunks
        assert self.role.b2bua.stats.failovers == 1
        assert trunks is not None and trunks[dead].active_calls == 0
        a.bye()
        await b2.ended(WAIT)
        await settle(self)

    def call_in(self, gateway: Peer, number: str = "0201234567") -> Call:
        """``gateway`` calls ``number`` through the mediation role."""
        port = self.gateway_side
        return gateway.ua.invite(
            f"sip:{number}@127.0.0.1:{port}", from_="<sip:0612345678@gw.example>",
            sdp=OFFER, destination=Destination("UDP", "127.0.0.1", port),
        )  # fmt: skip


def settings(
    gateways: list[Peer], *, no_answer: float = NO_ANSWER, **common: Any
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Lab", **common},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": 0, "UDPPort": 0, "TLSPort": 0,
            "MediaPortStart": 40000, "MediaPortEnd": 40400,
            "InternalSubnets": ["127.0.0.0/8"], "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "TrunkConfiguration": {"OptionsIntervalSeconds": 60},
    }  # fmt: skip
    for n, gw in enumerate(gateways, 1):
        raw[f"Gateway{n}"] = {
            "IP": "127.0.0.1", "Port": gw.port, "Protocol": gw.transport.kind,
            "VoiceRoutes": "All",
            "SendSipOptions": False, "FailoverTimeSeconds": no_answer,
            "InboundCalleeRules": [["^0(\\d{9})$", "+31$1"]], "ForwardPAI": True,
        }  # fmt: skip
    return raw


@contextlib.asynccontextmanager
async def lab(
    tmp_path: Path, n_gateways: int = 1, *, relay: bool = False, kind: str = "UDP",
    no_answer: float = NO_ANSWER, **common: Any,
) -> AsyncIterator[Lab]:  # fmt: skip
    cloud = await peer()
    gateways = [await peer(kind=kind) for _ in range(n_gateways)]
    raw = settings(gateways, no_answer=no_answer, **common)
    async with running_role(tmp_path, raw, cloud, gateways, relay=relay) as role:
        yield Lab(role, cloud, gateways)


async def settle(lab_: RoleLab) -> None:
    """Wait until the role has no bridge left and its records are written."""
    b2bua = lab_.role.b2bua
    for _ in range(200):
        if not b2bua.bridges and lab_.role.admission.active == 0:
            break
        await asyncio.sleep(0.01)
    assert not b2bua.bridges and lab_.role.admission.active == 0


async def connect(lab_: Lab, *, anchored: bool = False) -> tuple[Call, Call]:
    a = lab_.call_out()
    b = await lab_.gateways[0].next_call()
    b.ring()
    assert await a.wait_for(Ringing, WAIT) == Ringing(None)
    b.answer(ANSWER)
    answered = await a.answered(WAIT)
    assert isinstance(answered, Answered) and (anchored or answered.sdp == ANSWER)
    assert await b.answered(WAIT) == Confirmed(None)
    return a, b
