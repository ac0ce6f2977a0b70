"""serve_asgi over HTTPS: the handshake done by the server adapter, the verified client
certificate handed to the app (ASGI TLS extension), refused handshakes reported with a reason."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from hybridvoice.net.http import serve_asgi
from hybridvoice.net.identity import REFUSAL_REASONS, refusal_reason
from hybridvoice.pki import Credential, create_ca, issue_server
from hybridvoice.pki.identity import issue_appliance

HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)
YEAR = datetime.timedelta(days=365)


def save(tmp: Path, credential: Credential, name: str) -> Path:
    path = tmp / f"{name}.pem"
    path.write_bytes(credential.bundle_pem)
    return path


async def echo_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what the TLS extension says: the number of client certificates."""
    tls = scope.get("extensions", {}).get("tls")
    body = (
        b"none"
        if tls is None
        else b"%d %s" % (len(tls["client_cert_chain"]), scope["scheme"].encode())
    )
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca, other = create_ca("Seattle", NOW), create_ca("Paris", NOW)
    old_ca = create_ca("Seattle", NOW - 3 * YEAR)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(save(tmp_path, issue_server(ca, "online", NOW, ips=[HOST]), "srv"))
    server.load_verify_locations(cadata=(ca.cert_pem + old_ca.cert_pem).decode())
    server.verify_mode = ssl.CERT_OPTIONAL

    def client(credential: Credential | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        if credential is not None:
            context.load_cert_chain(save(tmp_path, credential, f"c{id(credential)}"))
        return context

    return {
        "server": server,
        "good": client(issue_appliance(ca, "a1", NOW)),
        "none": client(None),
        "other": client(issue_appliance(other, "a1", NOW)),
        "expired": client(issue_appliance(old_ca, "a1", NOW - 3 * YEAR)),
        "ca_pem": ca.cert_pem.decode(),
    }


def run_on(loop: str, main: Any) -> Any:
    """``main()`` on asyncio's loop or on uvloop's (what ``hybridvoice up`` runs on)."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    return asyncio.run(main())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_https_hands_the_verified_certificate_to_the_app(pki: dict[str, Any], loop: str) -> None:
    refused: list[tuple[str, str, str]] = []

    async def main() -> tuple[str, str, str]:
        server = await serve_asgi(echo_tls, HOST, 0, ssl_context=pki["server"],
                                  on_tls_refused=lambda *r: refused.append(r))  # fmt: skip
        try:
            assert server.url.startswith("https://")
            async with httpx.AsyncClient(verify=pki["good"], timeout=10) as http:
                with_cert = (await http.get(server.url)).text
                again = (await http.get(server.url)).text  # same connection, same identity
            async with httpx.AsyncClient(verify=pki["none"], timeout=10) as http:
                without = (await http.get(server.url)).text
        finally:
            await server.stop()
        return with_cert, again, without

    assert run_on(loop, main) == ("1 https", "1 https", "0 https")
    assert refused == []


def test_plain_http_has_no_tls_extension() -> None:
    async def main() -> str:
        server = await serve_asgi(echo_tls, HOST, 0)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                return (await http.get(server.url)).text
        finally:
            await server.stop()

    assert asyncio.run(main()) == "none"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(
    ("client", "reason"), [("other", "untrusted-chain"), ("expired", "expired")]
)
def test_refused_handshake_is_reported_and_the_client_gets_no_answer(
    pki: dict[str, Any], client: str, reason: str, loop: str
) -> None:
    refused: list[tuple[str, str, str]] = []

    async def main() -> None:
        server = await serve_asgi(echo_tls, HOST, 0, ssl_context=pki["server"],
                                  on_tls_refused=lambda *r: refused.append(r))  # fmt: skip
        try:
            async with httpx.AsyncClient(verify=pki[client], timeout=10) as http:
                with pytest.raises(httpx.TransportError):
                    await http.get(server.url)
            # the server is unharmed: the next good client is served
            async with httpx.AsyncClient(verify=pki["good"], timeout=10) as http:
                assert (await http.get(server.url)).text == "1 https"
        finally:
            await server.stop()

    run_on(loop, main)
    assert [r[0] for r in refused] == [reason]  # the labels of the SIP listeners' refusals
    assert refused[0][0] in REFUSAL_REASONS
    assert refused[0][1].startswith(f"{HOST}:")


def test_plain_http_to_https_is_a_failed_handshake_and_a_probe_is_nothing(
    pki: dict[str, Any],
) -> None:
    refused: list[str] = []

    async def main() -> None:
        server = await serve_asgi(echo_tls, HOST, 0, ssl_context=pki["server"],
                                  on_tls_refused=lambda r, *_: refused.append(r))  # fmt: skip
        try:
            _, writer = await asyncio.open_connection(HOST, server.port)  # a port probe
            writer.close()
            await writer.wait_closed()
            async with httpx.AsyncClient(timeout=10) as http:
                with pytest.raises(httpx.TransportError):
                    await http.get(f"http://{HOST}:{server.port}/")
        finally:
            await server.stop()

    asyncio.run(main())
    assert refused == ["handshake-failed"]


def test_refusal_reasons_by_verify_code() -> None:
    def verify_error(code: int) -> ssl.SSLCertVerificationError:
        exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
        exc.verify_code, exc.verify_message = code, f"code {code}"
        return exc

    assert refusal_reason(verify_error(10)) == "expired"
    assert refusal_reason(verify_error(9)) == "not-yet-valid"
    assert refusal_reason(verify_error(20)) == "untrusted-chain"
    assert refusal_reason(verify_error(19)) == "untrusted-chain"
    assert refusal_reason(verify_error(62)) == "name-mismatch"
    assert refusal_reason(verify_error(26)) == "bad-certificate"  # INVALID_PURPOSE
    assert refusal_reason(verify_error(7)) == "bad-certificate"  # CERT_SIGNATURE_FAILURE
    assert refusal_reason(TimeoutError()) == "handshake-timeout"

    def ssl_error(reason: str) -> ssl.SSLError:
        exc = ssl.SSLError(1, reason)
        exc.reason = reason
        return exc

    assert refusal_reason(ssl_error("PEER_DID_NOT_RETURN_A_CERTIFICATE")) == "no-certificate"
    assert refusal_reason(ssl_error("TLSV1_ALERT_UNKNOWN_CA")) == "refused-by-peer"
    assert refusal_reason(ssl_error("SSLV3_ALERT_UNSUPPORTED_CERTIFICATE")) == "refused-by-peer"
    assert refusal_reason(ssl_error("UNSUPPORTED_PROTOCOL")) == "protocol-version"
    assert refusal_reason(ssl_error("CERTIFICATE_VERIFY_FAILED")) == "bad-certificate"
    assert refusal_reason(ssl_error("HTTP_REQUEST")) == "handshake-failed"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_that_never_finishes_its_handshake_is_cut_off_and_reported(
    pki: dict[str, Any], loop: str
) -> None:
    refused: list[str] = []

    async def main() -> bytes:
        server = await serve_asgi(echo_tls, HOST, 0, ssl_context=pki["server"],
                                  on_tls_refused=lambda r, *_: refused.append(r),
                                  tls_handshake_timeout=2.0)  # fmt: skip
        try:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
            data = await asyncio.wait_for(reader.read(), 60)  # the server closes
            writer.close()
            return data
        finally:
            await server.stop()

    assert run_on(loop, main) == b""
    assert refused == ["handshake-timeout"]


def _early_client(port: int, context: ssl.SSLContext, sent: threading.Event) -> bytes:
    """A TLS client whose ClientHello is on the wire before the server's loop has even
    accepted the connection (``sent`` is set then); returns the HTTP answer."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)

        def flush() -> None:
            if data := outgoing.read():
                sock.sendall(data)

        def pull() -> bool:
            chunk = sock.recv(65536)
            incoming.write(chunk)
            return bool(chunk)

        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        flush()
        sent.set()
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                assert pull(), "closed during the handshake"
        flush()
        tls.write(b"GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        flush()
        answer = b""
        while True:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                if not pull():
                    return answer
            except ssl.SSLZeroReturnError:
                return answer
            else:
                if not chunk:  # the server's close_notify
                    return answer
                answer += chunk


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_hello_read_before_the_handshake_starts_is_not_lost(
    pki: dict[str, Any], loop: str
) -> None:
    """uvloop reads a new connection after connection_made even when it was paused there:
    the first bytes reach the server before its TLS layer does, and must still count."""

    async def main() -> bytes:
        server = await serve_asgi(echo_tls, HOST, 0, ssl_context=pki["server"])
        sent = threading.Event()
        try:
            answer = asyncio.get_running_loop().run_in_executor(
                None, _early_client, server.port, pki["good"], sent
            )
            assert sent.wait(30)  # blocks this loop: the accept and the ClientHello wait
            return await asyncio.wait_for(answer, 60)
        finally:
            await server.stop()

    answer = run_on(loop, main)
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\n1 https\r\n" in answer
