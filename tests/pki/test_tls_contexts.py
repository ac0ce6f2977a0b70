"""`hybridvoice.net.tls` over loopback with asyncio: the contexts built from the site store
verify each other, a client from a foreign CA is refused, and after a renewal the next
handshake shows the new certificate while the connection made before goes on.

Certificates are issued at the real current time: OpenSSL checks validity against the system
clock."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from hybridvoice.net.tls import MtlsContexts, TlsMaterial, client_context, watch
from hybridvoice.pki import PkiStore

WAIT = 10.0  # bounds a broken test, asserts nothing


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def loader(store: PkiStore, name: str) -> Callable[[], TlsMaterial]:
    def load() -> TlsMaterial:
        credential = store.load_credential(name)
        return TlsMaterial(
            store.credential_path(name), store.trust_store().bundle_pem(), credential.generation
        )

    return load


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "pki")
    ca = store.ensure_ca("Amsterdam", now())
    store.ensure_server(ca, "mediation", now(), ips=["127.0.0.1"])
    store.ensure_server(ca, "edge", now(), dns_names=["edge.contoso.local"], ips=["127.0.0.1"])
    return store


@asynccontextmanager
async def echo_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def connect(port: int, context: ssl.SSLContext) -> tuple[Any, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), WAIT)


async def echoed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), WAIT)


def peer_serial(writer: asyncio.StreamWriter) -> int:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_roles_verify_each_other_and_a_foreign_client_is_refused(
    site: PkiStore, tmp_path: Path
) -> None:
    asyncio.run(_verify_and_refuse(site, tmp_path))


async def _verify_and_refuse(site: PkiStore, tmp_path: Path) -> None:
    server = MtlsContexts(loader(site, "mediation"))
    edge = MtlsContexts(loader(site, "edge"))
    assert server.server.minimum_version == ssl.TLSVersion.TLSv1_2
    async with echo_server(server.server) as port:
        reader, writer = await connect(port, edge.client)
        assert await echoed(reader, writer, b"OPTIONS") == b"OPTIONS"
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        assert peer_serial(writer) == site.load_credential("mediation").certificate.serial_number
        writer.close()

        foreign = PkiStore(tmp_path / "foreign")
        other_ca = foreign.ensure_ca("Elsewhere", now())
        foreign.ensure_server(other_ca, "intruder", now(), ips=["127.0.0.1"])
        # the intruder trusts our root (it may have it: the root is public), we do not trust it
        material = TlsMaterial(
            foreign.credential_path("intruder"), site.trust_store().bundle_pem(), 1
        )
        reader, writer = await connect(port, client_context(material))
        with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
            await echoed(reader, writer, b"OPTIONS")  # TLS 1.3: refused after the handshake
        writer.close()


def test_a_renewal_reaches_new_handshakes_and_open_connections_go_on(site: PkiStore) -> None:
    asyncio.run(_renewal(site))


async def _renewal(site: PkiStore) -> None:
    mediation = MtlsContexts(loader(site, "mediation"))
    edge = MtlsContexts(loader(site, "edge"))
    assert mediation.reload() is False  # nothing new
    async with echo_server(mediation.server) as port:
        reader, writer = await connect(port, edge.client)
        old = peer_serial(writer)
        site.renew("mediation", now())
        site.renew("edge", now())
        assert mediation.reload() is True and edge.reload() is True
        assert mediation.material.generation == 2 and mediation.reloads == 1
        assert await echoed(reader, writer, b"still up") == b"still up"

        reader2, writer2 = await connect(port, edge.client)
        new = peer_serial(writer2)
        assert new != old
        assert new == site.load_credential("mediation").certificate.serial_number
        assert await echoed(reader2, writer2, b"new") == b"new"
        writer.close()
        writer2.close()


def test_watch_takes_a_new_generation_and_survives_a_broken_read(
    site: PkiStore, caplog: pytest.LogCaptureFixture
) -> None:
    load = loader(site, "mediation")
    answers: list[Callable[[], TlsMaterial]] = []
    contexts = MtlsContexts(lambda: answers.pop(0)() if answers else load())

    def broken() -> TlsMaterial:
        raise OSError("the file is being replaced")

    async def main() -> None:
        answers.append(broken)
        task = asyncio.create_task(watch(contexts, 0))
        try:
            while answers:  # the broken read happened
                await asyncio.sleep(0)
            assert contexts.reloads == 0
            site.renew("mediation", now())
            async with asyncio.timeout(WAIT):
                while contexts.reloads == 0:
                    await asyncio.sleep(0)
        finally:
            task.cancel()
        assert contexts.material.generation == 2
        assert contexts.current_server is not contexts.server

    asyncio.run(main())
    assert "cannot reload: the file is being replaced" in caplog.text
