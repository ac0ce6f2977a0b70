"""TLS peers refused with a reason, in both directions (RFC 5630 §3, RFC 5922 §7): a TLS
listener counts the clients it refuses (no certificate where MTLS is required, an untrusted
chain, TLS 1.1), a transport counts the servers it refuses (untrusted chain, a name the
certificate does not hold); TLS 1.3 is negotiated when both sides can; connections keep the
peer's identity; ``peer_ssl`` picks a client context per peer name. On both event loops."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.identity import PeerIdentity, refusal_reason
from hybridvoice.net.loop import loop_factory, uvloop_available
from hybridvoice.net.metrics import transport_metrics
from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.tls import MtlsContexts, TlsMaterial, client_context
from hybridvoice.net.transport import Source
from hybridvoice.pki import PkiStore
from hybridvoice.sip import Request, Response

WAIT = 10.0  # bounds a broken test, asserts nothing

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    not uvloop_available(), reason="uvloop not installed"))]  # fmt: skip


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[None]], None]:
    factory = loop_factory(request.param == "uvloop")

    def runner(coro: Awaitable[None]) -> None:
        async def main() -> None:
            await asyncio.wait_for(coro, 30)

        with asyncio.Runner(loop_factory=factory) as r:
            r.run(main())

    return runner


def material(store: PkiStore, name: str, cadata: bytes | None = None) -> TlsMaterial:
    credential = store.load_credential(name)
    trust = store.trust_store().bundle_pem() if cadata is None else cadata
    return TlsMaterial(store.credential_path(name), trust, credential.generation)


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "site")
    ca = store.ensure_ca("Amsterdam", now())
    store.ensure_server(ca, "mediation", now(), dns_names=["ms.contoso.local"], ips=["127.0.0.1"])
    store.ensure_server(ca, "gateway", now(), dns_names=["sbc1.contoso.com"], ips=["127.0.0.1"])
    return store


@pytest.fixture
def foreign(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "foreign")
    ca = store.ensure_ca("Elsewhere", now())
    store.ensure_server(ca, "intruder", now(), dns_names=["sbc1.contoso.com"], ips=["127.0.0.1"])
    return store


class Transports:
    """What the metrics read of an endpoint: its transports."""

    def __init__(self, *transports: StreamTransport) -> None:
        self.transports = transports


class Sink:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Request | Response, Source]] = asyncio.Queue()

    def on_request(self, request: Request, source: Source) -> None:
        self.queue.put_nowait((request, source))

    def on_response(self, response: Response, source: Source) -> None:
        self.queue.put_nowait((response, source))


def options(via: str) -> bytes:
    return (
        "OPTIONS sip:ms.contoso.local SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {via};branch=z9hG4bK1;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:gw@sbc1.contoso.com>;tag=1\r\n"
        "To: <sip:ms.contoso.local>\r\nCall-ID: tls-refusal-1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.01)


async def raw_handshake(port: int, context: ssl.SSLContext) -> str:
    """A bare client: the TLS version negotiated once a keep-alive ping got its pong (TLS 1.3
    sends the server's verdict on the client certificate after the client's handshake);
    ``refused`` when the server closed instead."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
    except (ssl.SSLError, ConnectionError):
        return "refused"
    try:
        version = str(writer.get_extra_info("ssl_object").version())
        writer.write(b"\r\n\r\n")
        pong = await asyncio.wait_for(reader.read(2), WAIT)
        return version if pong == b"\r\n" else "refused"
    except (ssl.SSLError, ConnectionError):
        return "refused"
    finally:
        writer.close()


def test_the_listener_refuses_and_counts_bad_clients(
    run: Callable[[Awaitable[None]], None], site: PkiStore, foreign: PkiStore
) -> None:
    async def main() -> None:
        contexts = MtlsContexts(lambda: material(site, "mediation"))
        listener = await StreamTransport.listen(
            "127.0.0.1", 0, Sink(), kind="TLS", server_ssl=contexts.server
        )
        port = listener.local[1]
        refused = listener.counters.tls_refused
        try:
            # a good client: TLS 1.3 negotiated, its identity kept by the connection
            good = client_context(material(site, "gateway"))
            assert await raw_handshake(port, good) == "TLSv1.3"
            assert refused == {}

            # no client certificate where MTLS is required
            bare = ssl.create_default_context(cadata=site.root_pem().decode())
            assert await raw_handshake(port, bare) == "refused"
            await until(lambda: ("127.0.0.1", "no-certificate") in refused)

            # a chain from a CA we do not trust (the client trusts our root: it is public)
            intruder = client_context(material(foreign, "intruder", site.root_pem()))
            assert await raw_handshake(port, intruder) == "refused"
            await until(lambda: ("127.0.0.1", "untrusted-chain") in refused)

            # TLS 1.1: refused by the listener (TLS 1.2 minimum)
            old = client_context(material(site, "gateway"))
            with warnings.catch_warnings():  # deprecated: what this client is for
                warnings.simplefilter("ignore", DeprecationWarning)
                old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer 1.1 at all
            assert await raw_handshake(port, old) == "refused"
            await until(lambda: ("127.0.0.1", "protocol-version") in refused)
            assert listener.connections == 0
            families = transport_metrics([("gateway-side", cast(Endpoint, Transports(listener)))])
            family = next(f for f in families if f.name == "hybridvoice_tls_refused")
            assert {(x.labels["peer"], x.labels["reason"]): x.value for x in family.samples} == {
                ("127.0.0.1", "no-certificate"): 1,
                ("127.0.0.1", "untrusted-chain"): 1,
                ("127.0.0.1", "protocol-version"): 1,
            }
        finally:
            listener.close()

    run(main())


def test_a_transport_refuses_a_server_by_chain_and_by_name(
    run: Callable[[Awaitable[None]], None], site: PkiStore, foreign: PkiStore
) -> None:
    async def main() -> None:
        gateway = MtlsContexts(lambda: material(site, "gateway"))
        intruder = MtlsContexts(lambda: material(foreign, "intruder", site.root_pem()))
        mediation = MtlsContexts(lambda: material(site, "mediation"))
        good_sink = Sink()
        good = await StreamTransport.listen(
            "127.0.0.1", 0, good_sink, kind="TLS", server_ssl=gateway.server
        )
        bad = await StreamTransport.listen(
            "127.0.0.1", 0, Sink(), kind="TLS", server_ssl=intruder.server
        )
        client = await StreamTransport.listen(
            "127.0.0.1", 0, Sink(), kind="TLS", server_ssl=mediation.server,
            client_ssl=mediation.client,
        )  # fmt: skip
        errors: list[Exception] = []
        refused = client.counters.tls_refused
        try:
            data = options(client.sent_by)
            client.send(data, *bad.local, server_name="sbc1.contoso.com", on_error=errors.append)
            await until(lambda: len(errors) == 1)
            assert refused == {("sbc1.contoso.com", "untrusted-chain"): 1}
            assert refusal_reason(errors[0]) == "untrusted-chain"

            # the right chain, the wrong name (RFC 5922 §7.2: the gateway's FQDN)
            client.send(data, *good.local, server_name="sbc2.contoso.com", on_error=errors.append)
            await until(lambda: len(errors) == 2)
            assert refused[("sbc2.contoso.com", "name-mismatch")] == 1

            # the right name: delivered; both ends know who the other is
            client.send(data, *good.local, server_name="sbc1.contoso.com", on_error=errors.append)
            _, source = await asyncio.wait_for(good_sink.queue.get(), WAIT)
            conn = source.connection
            assert conn is not None and conn.peer_identity == PeerIdentity.of(
                ["ms.contoso.local"], ["127.0.0.1"]
            )
            ours = client.connection_to(*good.local)
            assert ours is not None and ours.peer_identity is not None
            assert ours.peer_identity.matches("SBC1.contoso.com")
            assert not ours.peer_identity.matches("sbc2.contoso.com")
            assert len(errors) == 2
        finally:
            for transport in (client, good, bad):
                transport.close()

    run(main())


def test_peer_ssl_picks_a_context_per_peer_name(
    run: Callable[[Awaitable[None]], None], site: PkiStore, foreign: PkiStore
) -> None:
    """A gateway with its own chain: trusted through its own roots only, for its name."""

    async def main() -> None:
        intruder = MtlsContexts(lambda: material(foreign, "intruder", site.root_pem()))
        mediation = MtlsContexts(lambda: material(site, "mediation"))
        sink = Sink()
        gw = await StreamTransport.listen(
            "127.0.0.1", 0, sink, kind="TLS", server_ssl=intruder.server
        )
        client = await StreamTransport.listen(
            "127.0.0.1", 0, Sink(), kind="TLS", client_ssl=mediation.client
        )
        own = client_context(material(site, "mediation", foreign.root_pem()))
        client.peer_ssl = {"sbc1.contoso.com": own}.get
        try:
            client.send(options(client.sent_by), *gw.local, server_name="sbc1.contoso.com")
            request, _ = await asyncio.wait_for(sink.queue.get(), WAIT)
            assert isinstance(request, Request) and client.counters.tls_refused == {}
        finally:
            client.close()
            gw.close()

    run(main())


def test_identity_matching_follows_rfc_5922() -> None:
    ident = PeerIdentity.of(["SBC1.Contoso.com.", "*.contoso.com"], ["::1", "127.0.0.1"])
    assert ident.matches("sbc1.contoso.com") and ident.matches("[::1]")
    assert not ident.matches("other.contoso.com")  # no wildcards for SIP (RFC 5922 §7.2)
    assert not ident.matches("10.0.0.1")
    cert = {"subject": ((("commonName", "cn.example.com"),),), "subjectAltName": ()}
    assert PeerIdentity.from_peercert(cert) == PeerIdentity.of(["cn.example.com"])
    assert PeerIdentity.from_peercert({}) is None


def test_refusal_reasons_from_errors() -> None:
    slow = ConnectionAbortedError(
        "SSL handshake is taking longer than 10.0 seconds: aborting the connection"
    )
    assert refusal_reason(slow) == "handshake-timeout"
    assert refusal_reason(TimeoutError()) == "handshake-timeout"
    assert refusal_reason(ConnectionResetError()) == "handshake-failed"
    wrapped = OSError("connect failed")
    wrapped.__cause__ = ssl.SSLError(1, "x")
    assert refusal_reason(wrapped) == "handshake-failed"
