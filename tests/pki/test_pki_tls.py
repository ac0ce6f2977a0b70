"""Site certificates in real TLS over loopback with Python's ``ssl``: mutual verification
between two roles succeeds, a certificate from a foreign CA is refused on either side, a
gateway with its own imported root is accepted, and a renewed certificate is used by new
handshakes while a connection made before goes on.

The contexts are built the way the TLS adapter will build them: the credential's one PEM file
(key, certificate, chain) and the trust store's bundle. Certificates are issued at the real
current time because OpenSSL checks validity against the system clock.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from hybridvoice.pki import PkiStore, create_ca, issue_server

SERVER_NAME = "med.contoso.local"
WAIT = 10.0  # bounds a broken test, asserts nothing


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def server_context(cert_file: Path, cadata: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file)
    ctx.load_verify_locations(cadata=cadata.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(cert_file: Path, cadata: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file)
    ctx.load_verify_locations(cadata=cadata.decode())
    return ctx


@dataclass
class Served:
    """What the server side of one connection saw."""

    peer: dict | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def tls_server(ctx: ssl.SSLContext) -> Iterator[tuple[int, list[Served]]]:
    """A loopback TLS server that echoes each connection's data until it closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    served: list[Served] = []

    def one(conn: socket.socket, record: Served) -> None:
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                record.peer = tls.getpeercert()
                record.done.set()
                while data := tls.recv(1024):
                    tls.sendall(data)
        except (ssl.SSLError, OSError) as exc:
            record.error = exc
        finally:
            record.done.set()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(WAIT)
            served.append(Served())
            threading.Thread(target=one, args=(conn, served[-1]), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], served
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(WAIT)


def connect(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return ctx.wrap_socket(sock, server_hostname=SERVER_NAME)


def echo(tls: ssl.SSLSocket, data: bytes) -> bytes:
    tls.sendall(data)
    return tls.recv(1024)


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "pki")
    ca = store.ensure_ca("Amsterdam", now())
    store.ensure_server(ca, "mediation", now(), dns_names=[SERVER_NAME], ips=["127.0.0.1"])
    store.ensure_server(ca, "edge", now(), dns_names=["edge.contoso.local"])
    return store


def test_two_roles_verify_each_other(site: PkiStore) -> None:
    cadata = site.trust_store().bundle_pem()
    server = server_context(site.credential_path("mediation"), cadata)
    client = client_context(site.credential_path("edge"), cadata)
    with tls_server(server) as (port, served), connect(port, client) as tls:
        assert echo(tls, b"OPTIONS") == b"OPTIONS"
        assert tls.version() == "TLSv1.3"
        assert dict(x[0] for x in tls.getpeercert()["subject"]) == {"commonName": SERVER_NAME}
        assert served[0].done.wait(WAIT) and served[0].error is None
        peer = served[0].peer
        assert peer is not None
        assert dict(x[0] for x in peer["subject"]) == {"commonName": "edge.contoso.local"}


def test_a_client_certificate_from_a_foreign_ca_is_refused(site: PkiStore, tmp_path) -> None:
    cadata = site.trust_store().bundle_pem()
    foreign = create_ca("Elsewhere", now())
    intruder = issue_server(foreign, "edge", now(), dns_names=["edge.contoso.local"])
    (tmp_path / "intruder.pem").write_bytes(intruder.bundle_pem)
    server = server_context(site.credential_path("mediation"), cadata)
    # the intruder trusts our root, so only the server's check can stop it
    client = client_context(tmp_path / "intruder.pem", cadata)
    with tls_server(server) as (port, served):
        with pytest.raises((ssl.SSLError, ConnectionError)), connect(port, client) as tls:
            echo(tls, b"OPTIONS")  # TLS 1.3: the refusal arrives after the client's handshake
        assert served[0].done.wait(WAIT)
        assert isinstance(served[0].error, ssl.SSLError)
        assert "certificate verify failed" in str(served[0].error)
        assert served[0].peer is None


def test_a_server_certificate_from_a_foreign_ca_is_refused(site: PkiStore, tmp_path) -> None:
    foreign = create_ca("Elsewhere", now())
    impostor = issue_server(foreign, "mediation", now(), dns_names=[SERVER_NAME])
    (tmp_path / "impostor.pem").write_bytes(impostor.bundle_pem)
    server = server_context(tmp_path / "impostor.pem", foreign.cert_pem)
    client = client_context(site.credential_path("edge"), site.trust_store().bundle_pem())
    with tls_server(server) as (port, _), pytest.raises(ssl.SSLCertVerificationError) as caught:
        connect(port, client)
    # the impostor sends its chain up to its own root, which the client does not trust
    assert caught.value.verify_message == "self-signed certificate in certificate chain"


def test_a_gateway_with_its_own_chain_is_trusted_once_its_root_is_imported(
    site: PkiStore, tmp_path: Path
) -> None:
    vendor = create_ca("gateway vendor", now())
    gateway = issue_server(vendor, "gw1", now(), dns_names=["gw1.contoso.local"])
    (tmp_path / "gw1.pem").write_bytes(gateway.bundle_pem)
    client = client_context(tmp_path / "gw1.pem", site.root_pem())
    before = server_context(site.credential_path("mediation"), site.trust_store().bundle_pem())
    with tls_server(before) as (port, served):
        with pytest.raises((ssl.SSLError, ConnectionError)), connect(port, client) as tls:
            echo(tls, b"x")
        assert served[0].done.wait(WAIT) and served[0].error is not None
    trust = site.import_root("gw1", vendor.cert_pem, now())
    after = server_context(site.credential_path("mediation"), trust.bundle_pem())
    with tls_server(after) as (port, served), connect(port, client) as tls:
        assert echo(tls, b"x") == b"x"


def test_new_handshakes_use_the_renewed_certificate_old_connections_go_on(
    site: PkiStore,
) -> None:
    cadata = site.trust_store().bundle_pem()
    client = client_context(site.credential_path("edge"), cadata)
    path = site.credential_path("mediation")
    first = site.load_credential("mediation")
    # the adapter keeps one context per generation: the old for the old connections
    contexts = {first.generation: server_context(path, cadata)}
    with tls_server(contexts[1]) as (old_port, _), connect(old_port, client) as call:
        assert echo(call, b"INVITE") == b"INVITE"
        renewed = site.renew("mediation", now())
        assert renewed.generation == 2
        contexts[renewed.generation] = server_context(path, cadata)
        with tls_server(contexts[2]) as (new_port, _), connect(new_port, client) as fresh:
            seen = x509.load_der_x509_certificate(fresh.getpeercert(binary_form=True))
            assert seen == renewed.certificate != first.certificate
            assert echo(fresh, b"OPTIONS") == b"OPTIONS"
        # the call made before the renewal still runs on the old certificate
        before = x509.load_der_x509_certificate(call.getpeercert(binary_form=True))
        assert before == first.certificate
        assert echo(call, b"BYE") == b"BYE"
