"""The mediation role over TLS on both sides (RFC 3261 §26.2, RFC 5630 §3, RFC 5922 §7.1):
gateways are hybridvoice UserAgents listening on TLS with a certificate made by the test
(:func:`tls_helpers.make_pki`); the role trusts that CA only, checks the gateway's certificate
for its address, and listens on its own TLS port (``[MediationServer] TLSPort``, a free port
here) for gateways' calls. The edge side runs over TLS too. A gateway whose certificate comes
from a CA the role does not trust never gets the INVITE: the handshake fails, the call fails
over to the next gateway, or the caller hears 503 with a Reason naming the TLS failure."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ports import free_port
from tls_helpers import Pki, client_context, make_pki, server_context
from ua_harness import FAST, QUICK, WAIT, Phone

from hybridvoice.cms.settings import parse_settings
from hybridvoice.mediation.records import FailoverAttempt
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net import loop as hv_loop
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import Destination, Transport
from hybridvoice.net.ua import Call, UserAgent
from hybridvoice.sip.session import Answered, Confirmed, Disconnected
from hybridvoice.sip.uri import SipUri

pytestmark = pytest.mark.interop

CALLEE = "+31201234567"
OFFER = (
    b"v=0\r\no=hv 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
ANSWER = OFFER.replace(b"6000", b"7000")


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await main()

    hv_loop.run(bounded())


@dataclass
class TlsPeer:
    """A cloud user or a gateway: a UA on its own TLS listener."""

    ua: UserAgent
    phone: Phone
    endpoint: Endpoint
    transport: Transport

    @property
    def port(self) -> int:
        return self.transport.local[1]

    async def next_call(self) -> Call:
        return await asyncio.wait_for(self.phone.incoming.get(), WAIT)

    async def close(self) -> None:
        self.ua.close()
        await self.endpoint.close()


async def tls_peer(pki: Pki, trusts: Path) -> TlsPeer:
    endpoint = Endpoint(timers=FAST)
    phone = Phone()
    ua = UserAgent(endpoint, phone, config=QUICK, rng=random.Random())
    transport = await endpoint.listen(
        "TLS", "127.0.0.1", 0, server_ssl=server_context(pki), client_ssl=client_context(trusts)
    )
    return TlsPeer(ua, phone, endpoint, transport)


@dataclass
class TlsLab:
    role: MediationRole
    cloud: TlsPeer
    gateways: list[TlsPeer]

    @property
    def edge(self) -> int:
        assert self.role.edge_transport is not None
        return self.role.edge_transport.local[1]

    @property
    def tls_port(self) -> int:
        return self.role.gateway_transports["TLS"].local[1]

    def call_out(self) -> Call:
        return self.cloud.ua.invite(
            f"sip:{CALLEE}@127.0.0.1:{self.edge};transport=tls",
            from_="<sip:+31209876543@contoso.com>", sdp=OFFER,
            destination=Destination("TLS", "127.0.0.1", self.edge),
        )  # fmt: skip

    def call_in(self, gateway: TlsPeer) -> Call:
        return gateway.ua.invite(
            f"sip:0201234567@127.0.0.1:{self.tls_port};transport=tls",
            from_="<sip:0612345678@gw.example>", sdp=OFFER,
            destination=Destination("TLS", "127.0.0.1", self.tls_port),
        )  # fmt: skip


@contextlib.asynccontextmanager
async def tls_lab(tmp_path: Path, gateway_pkis: list[Pki], *, pki: Pki) -> AsyncIterator[TlsLab]:
    """The role (trusting ``pki``'s CA only, serving ``pki``'s certificate) between a TLS
    cloud peer and one TLS gateway per entry of ``gateway_pkis`` (its certificate's PKI)."""
    cloud = await tls_peer(pki, pki.ca)
    gateways = [await tls_peer(each, pki.ca) for each in gateway_pkis]
    tls_port = free_port()
    raw: dict[str, Any] = {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "TLS lab"},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": None, "UDPPort": None, "TLSPort": tls_port,
            "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "TrunkConfiguration": {"OptionsIntervalSeconds": 60},
    }  # fmt: skip
    for n, gw in enumerate(gateways, 1):
        raw[f"Gateway{n}"] = {
            "IP": "127.0.0.1", "Port": gw.port, "Protocol": "TLS", "VoiceRoutes": "All",
            "SendSipOptions": False, "FailoverTimeSeconds": 5,
            "InboundCalleeRules": [["^0(\\d{9})$", "+31$1"]],
        }  # fmt: skip
    options = RoleOptions(
        edge=Destination("TLS", "127.0.0.1", 0),
        edge_target=Destination("TLS", "127.0.0.1", cloud.port),
        server_ssl=server_context(pki), client_ssl=client_context(pki.ca),
        relay=False, records=tmp_path / "calls.db", session=QUICK, timers=FAST, seed=1,
    )  # fmt: skip
    role = MediationRole(parse_settings(raw), options)
    await role.start()
    try:
        assert role.gateway_transports["TLS"].local[1] == tls_port
        yield TlsLab(role, cloud, gateways)
    finally:
        await role.stop()
        for peer in (cloud, *gateways):
            await peer.close()


async def settle(lab_: TlsLab) -> None:
    for _ in range(300):
        if not lab_.role.b2bua.bridges and lab_.role.admission.active == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("calls still up")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def stranger(tmp_path: Path) -> Pki:
    """A certificate for the same addresses, from a CA the role does not trust."""
    return make_pki(tmp_path / "other-pki", ca_name="some other CA")


def test_outbound_and_inbound_calls_over_tls_on_both_sides(tmp_path: Path, pki: Pki) -> None:
    async def main() -> None:
        async with tls_lab(tmp_path, [pki], pki=pki) as lab_:
            (gateway,) = lab_.gateways
            # outbound: cloud -TLS-> role -TLS-> gateway (its certificate checked)
            a = lab_.call_out()
            b = await gateway.next_call()
            assert b.invite.top_via is not None and b.invite.top_via.transport == "TLS"
            assert isinstance(b.invite.uri, SipUri) and b.invite.uri.param("transport") == "tls"
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            assert await b.answered(WAIT) == Confirmed(None)
            a.bye()
            assert (await b.ended(WAIT)).side == "remote"
            await settle(lab_)

            # inbound: gateway -TLS-> the role's TLS port -TLS-> cloud
            a = lab_.call_in(gateway)
            b = await lab_.cloud.next_call()
            assert b.invite.top_via is not None and b.invite.top_via.transport == "TLS"
            assert isinstance(b.invite.uri, SipUri) and b.invite.uri.user == CALLEE
            b.answer(ANSWER)
            assert await a.answered(WAIT) == Answered(ANSWER)
            await b.answered(WAIT)
            b.bye()
            assert (await a.ended(WAIT)).side == "remote"
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            recent = records.recent()
            assert [r.gateway for r in recent] == ["Gateway1", "Gateway1"]
            assert all(r.answer_utc is not None for r in recent)

    run(main)


def test_a_gateway_with_an_unknown_ca_fails_over_with_a_clear_cause(
    tmp_path: Path, pki: Pki, stranger: Pki
) -> None:
    async def main() -> None:
        async with tls_lab(tmp_path, [stranger, pki], pki=pki) as lab_:
            untrusted, trusted = lab_.gateways
            trunks = lab_.role.trunks
            assert trunks is not None
            trunks.call_started("Gateway2")  # one call up: the router tries Gateway1 first
            try:
                a = lab_.call_out()
                b = await trusted.next_call()
                b.answer(ANSWER)
                assert await a.answered(WAIT) == Answered(ANSWER)
                assert untrusted.phone.incoming.empty()  # the handshake failed: no INVITE
                a.bye()
                await b.ended(WAIT)
                await settle(lab_)
            finally:
                trunks.call_ended("Gateway2", failed=False)
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            (record,) = records.recent()
            assert record.gateway == "Gateway2"
            (attempt,) = record.attempts
            assert attempt.gateway == "Gateway1"
            assert_tls_cause(attempt)

    run(main)


def test_only_an_untrusted_gateway_gives_503_naming_the_tls_failure(
    tmp_path: Path, pki: Pki, stranger: Pki
) -> None:
    async def main() -> None:
        async with tls_lab(tmp_path, [stranger], pki=pki) as lab_:
            (untrusted,) = lab_.gateways
            a = lab_.call_out()
            ended = await a.ended(WAIT)
            assert isinstance(ended, Disconnected) and ended.status == 503
            final = a.history[-1]
            assert isinstance(final, Disconnected)
            assert untrusted.phone.incoming.empty()
            await settle(lab_)
            records = lab_.role.records
            assert records is not None
            await records.aflush()
            (record,) = records.recent()
            assert record.sip_status == 503 and record.cause is not None
            assert "Gateway1" in record.cause and "TLS" in record.cause
            (attempt,) = record.attempts
            assert_tls_cause(attempt)

    run(main)


def assert_tls_cause(attempt: FailoverAttempt) -> None:
    """The attempt's outcome names the failed TLS handshake and why (certificate check)."""
    assert attempt.outcome.startswith("408 (TLS certificate of 127.0.0.1:"), attempt.outcome
    assert "unable to get local issuer certificate" in attempt.outcome  # OpenSSL's words


def test_the_client_context_verifies(pki: Pki) -> None:
    """The context the role gets checks certificates and host names (no silent downgrade)."""
    ctx = client_context(pki.ca)
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
