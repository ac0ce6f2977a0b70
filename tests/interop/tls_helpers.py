"""Helpers for the TLS interop tests (tests/interop/test_tls.py): a throw-away PKI, free ports,
real peer programs started and stopped by PID, and a client for baresip's ``ctrl_tcp`` module.

How each peer is driven headlessly (worked out against the Debian builds: sipsak 0.9.8.1 built
with ``TLS_SUPPORT(GNUTLS)``, baresip 1.0.0 with libre/OpenSSL):

sipsak (OPTIONS over TLS)::

    sipsak -vvv -s sip:127.0.0.1 -p 127.0.0.1:PORT --transport=tls --tls-ca-cert=ca.pem

* Exit code 0 and ``SIP/2.0 200`` in the output mean the 200 came back; 3 is a timeout or a
  TLS/certificate failure, 2 a local error.
* The certificate is only checked at ``-vvv`` (sipsak checks it inside ``if (verbose > 2)``);
  with fewer ``-v`` the CA file is loaded and never used.
* The host name checked against the certificate is the host part of ``-s`` *including* its
  port, so ``-s sip:127.0.0.1:35061`` always fails the check ("does not match hostname
  '127.0.0.1:3506'": the URI port is also truncated to four digits). Hence ``-s`` without a
  port and the real address in ``-p`` (outbound proxy), which only sets where to connect.
* ``;transport=tls`` in ``-s`` is not understood ("string is not a number"); use
  ``--transport=tls``.
* With a TLS 1.3 server that sends session tickets (OpenSSL's default: two), sipsak's
  ``gnutls_record_recv`` returns the ticket as a non-data record and sipsak exits 2 with
  "nothing received, select returned error" although the 200 was sent. Our server context
  therefore sets ``num_tickets = 0`` (:func:`server_context`); SIP over TLS gains nothing from
  resumption tickets anyway.

baresip (a softphone, headless)::

    baresip -f CONFIG_DIR -s -t SECONDS

* ``config`` (see :func:`write_baresip_config`): ``sip_listen 127.0.0.1:P`` (or ``[::1]:P``
  with ``-6``) opens UDP and TCP
  on P and TLS on P+1; ``sip_cafile`` adds our CA; ``sip_certificate`` (cert and key in one PEM)
  lets it accept TLS connections; ``net_interface 127.0.0.1`` keeps SIP and SDP on loopback
  (``lo`` by name fails: "could not get network address"); ``audio_source ausine,440`` needs
  ``ausrc_srate 48000`` and ``ausrc_channels 2`` (it refuses anything else and the call is
  closed with "Operation not supported"); ``audio_player aubridge,NAME`` is a sink that needs
  no sound card; no ``stdio`` module (stdin is not a terminal); ``ctrl_tcp`` for control.
* ``accounts``: ``<sip:alice@127.0.0.1;transport=tls>;regint=0;audio_codecs=pcmu,pcma``. The
  account's transport is appended to every dialled URI, so dial ``sip:bob@127.0.0.1:PORT``
  without ``;transport=`` (with it the URI ends up with the parameter twice).
* ``ctrl_tcp`` speaks netstrings of JSON: commands ``{"command": "dial", "params": URI,
  "token": T}``, ``hangup``, ``quit``; it sends ``{"response": true, "ok": ..., "token": T}`` and
  events ``{"event": true, "type": "CALL_RINGING" | "CALL_ESTABLISHED" | "CALL_CLOSED", ...}``.
* ``-s`` prints every SIP message sent and received after a line ``TLS a:p -> b:p``; the tests
  read it (:func:`parse_sip_trace`) to see what baresip got (e.g. the 200 to its BYE, which no
  event reports).
* baresip 1.0.0 does not verify the server certificate (libre's verify callback accepts every
  chain): a call to a server whose certificate is signed by an unknown CA still succeeds. The
  baresip tests therefore show TLS and SIP interop, not certificate checking; sipsak and our
  own client check certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# --- binaries ---------------------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_binary(name: str, package: str) -> str:
    """The path of ``name``; a missing binary fails the test in CI and skips it elsewhere."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not found on PATH (install the Debian package {package})"
        if in_ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


# --- PKI --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pki:
    """A CA and one server/client certificate for 127.0.0.1, ::1 and ``localhost``."""

    ca: Path
    cert: Path
    key: Path
    #: certificate and key in one file, as baresip's ``sip_certificate`` wants them
    combined: Path


def make_pki(directory: Path, *, ca_name: str = "hybridvoice interop test CA") -> Pki:
    """Write a fresh CA and a certificate it signed (SAN: localhost, 127.0.0.1, ::1)."""
    from cryptography import x509  # noqa: PLC0415 (only the TLS tests need it)
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_to = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    cert_pem = cert.public_bytes(pem)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pki = Pki(
        ca=directory / "ca.pem",
        cert=directory / "cert.pem",
        key=directory / "key.pem",
        combined=directory / "combined.pem",
    )
    pki.ca.write_bytes(ca_cert.public_bytes(pem))
    pki.cert.write_bytes(cert_pem)
    pki.key.write_bytes(key_pem)
    pki.combined.write_bytes(cert_pem + key_pem)
    for secret in (pki.key, pki.combined):
        secret.chmod(0o600)
    return pki


def server_context(pki: Pki) -> Any:
    """The server side of our TLS listener: our certificate, no client certificate asked.

    ``num_tickets = 0``: sipsak 0.9.8.1 (GnuTLS) fails on TLS 1.3 session tickets (module doc).
    """
    import ssl  # noqa: PLC0415

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.cert, pki.key)
    ctx.num_tickets = 0
    return ctx


def client_context(ca: Path) -> Any:
    """A client context that trusts only ``ca`` and checks the host name (or IP)."""
    import ssl  # noqa: PLC0415

    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))


# --- processes --------------------------------------------------------------------------------


@dataclass(slots=True)
class Program:
    """A peer program started by a test: its process and where its output goes."""

    process: asyncio.subprocess.Process
    output: Path
    argv: Sequence[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        """Its output so far, ANSI colours removed."""
        return strip_ansi(self.output.read_text(errors="replace"))

    async def wait(self, timeout: float) -> int | None:
        """The exit status, or None when it is still running after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM by PID, then SIGKILL by PID after ``grace`` seconds; always reaps."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await process.wait()


@contextlib.asynccontextmanager
async def running(
    argv: Sequence[str], output: Path, *, grace: float = 3.0
) -> AsyncIterator[Program]:
    """Start ``argv`` with stdout+stderr to ``output``; stop it by PID on the way out."""
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    try:
        yield Program(process, output, argv)
    finally:
        await _stop(process, grace)


@dataclass(frozen=True, slots=True)
class Completed:
    argv: Sequence[str]
    returncode: int
    output: str


async def run_program(argv: Sequence[str], *, timeout: float) -> Completed:
    """Run ``argv`` to completion within ``timeout`` seconds (killed by PID after that)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        await _stop(process, 1.0)
        raise AssertionError(f"{argv[0]} did not finish within {timeout} s: {argv}") from None
    finally:
        await _stop(process, 1.0)
    assert process.returncode is not None
    return Completed(argv, process.returncode, out.decode(errors="replace"))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# --- sipsak -----------------------------------------------------------------------------------


async def sipsak_has_tls(sipsak: str) -> bool:
    """Whether this sipsak build speaks TLS (``TLS_SUPPORT`` in ``sipsak --version``)."""
    result = await run_program([sipsak, "--version"], timeout=10)
    return "TLS_SUPPORT" in result.output


def sipsak_options_argv(sipsak: str, host: str, port: int, *, ca: Path, name: str) -> list[str]:
    """OPTIONS over TLS to ``host:port``, checking the certificate against ``ca`` and ``name``
    (``-vvv`` makes sipsak check it at all; ``-p`` carries the port, see the module doc)."""
    return [
        sipsak,
        "-vvv",
        "-s",
        f"sip:{name}",
        "-p",
        f"{bracketed(host)}:{port}",
        "--transport=tls",
        f"--tls-ca-cert={ca}",
    ]


# --- baresip ----------------------------------------------------------------------------------


def bracketed(host: str) -> str:
    """An IP literal as written in a SIP URI or ``host:port``: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class BaresipPorts:
    host: str  # an IP literal, no brackets
    sip: int  # UDP and TCP; TLS is sip + 1
    ctrl: int  # on 127.0.0.1

    @property
    def tls(self) -> int:
        return self.sip + 1


def write_baresip_config(
    directory: Path,
    ports: BaresipPorts,
    *,
    pki: Pki | None,
    transport: str,
    user: str = "alice",
) -> Path:
    """A headless baresip config dir (module doc): G.711 only, a 440 Hz sine as microphone,
    a sink as speaker, ctrl_tcp on loopback, one account without registration."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "poll_method epoll",
        f"sip_listen {bracketed(ports.host)}:{ports.sip}",
        f"net_interface {ports.host}",
        "call_local_timeout 20",
        "call_max_calls 4",
        "audio_source ausine,440",
        "ausrc_srate 48000",
        "ausrc_channels 2",
        "audio_player aubridge,hvsink",
        "audio_alert aubridge,hvsink",
        "rtp_ports 20000-60000",
        "module_path /usr/lib/baresip/modules",
        "module g711.so",
        "module ausine.so",
        "module aubridge.so",
        "module_tmp account.so",
        "module_app menu.so",
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen 127.0.0.1:{ports.ctrl}",
    ]
    if pki is not None:
        lines += [f"sip_cafile {pki.ca}", f"sip_certificate {pki.combined}"]
    (directory / "config").write_text("\n".join(lines) + "\n")
    account = (
        f"<sip:{user}@{bracketed(ports.host)};transport={transport.lower()}>"
        ";regint=0;audio_codecs=pcmu,pcma;answermode=manual"
    )
    (directory / "accounts").write_text(account + "\n")
    (directory / "contacts").write_text("")
    return directory


def baresip_argv(baresip: str, config_dir: Path, *, seconds: int, ipv6: bool) -> list[str]:
    """``-s`` prints the SIP trace; ``-t`` makes baresip quit by itself after ``seconds``;
    ``-6`` for IPv6 only (with ``net_interface ::1``)."""
    return [baresip, "-f", str(config_dir), "-s", "-t", str(seconds), *(["-6"] if ipv6 else [])]


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


@dataclass(slots=True)
class BaresipControl:
    """A ``ctrl_tcp`` connection: send commands, collect every event baresip reports."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    _counter: int = 0

    @classmethod
    async def connect(cls, port: int, program: Program, *, timeout: float) -> BaresipControl:
        """Connect once baresip listens (polled); fail at once if it exits first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if program.process.returncode is not None:
                raise AssertionError(
                    f"baresip exited ({program.process.returncode}) before ctrl_tcp was up:\n"
                    + program.text()
                )
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                return cls(reader, writer)
            except OSError:
                if loop.time() > deadline:
                    raise AssertionError(
                        f"baresip ctrl_tcp not listening on {port} after {timeout} s:\n"
                        + program.text()
                    ) from None
                await asyncio.sleep(0.05)

    async def send(self, command: str, params: str = "") -> str:
        self._counter += 1
        token = f"t{self._counter}"
        message = {"command": command, "params": params, "token": token}
        self.writer.write(_netstring(json.dumps(message).encode()))
        await self.writer.drain()
        return token

    async def _read(self) -> dict[str, Any] | None:
        try:
            length = await self.reader.readuntil(b":")
            body = await self.reader.readexactly(int(length[:-1]) + 1)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        message: dict[str, Any] = json.loads(body[:-1])
        (self.events if message.get("event") else self.responses).append(message)
        return message

    async def wait_event(self, *types: str, timeout: float) -> dict[str, Any]:
        """The first event (already received or coming) whose type is one of ``types``."""
        for event in self.events:
            if event.get("type") in types:
                return event
        async with asyncio.timeout(timeout):
            while True:
                message = await self._read()
                if message is None:
                    raise AssertionError(f"ctrl_tcp closed while waiting for {types}")
                if message.get("event") and message.get("type") in types:
                    return message

    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# --- baresip's SIP trace (-s) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TracedMessage:
    """One message of baresip's ``-s`` trace: transport, direction and the first lines."""

    transport: str
    source: str
    destination: str
    start_line: str
    cseq: str

    def received_by(self, address: str) -> bool:
        return self.destination == address


_TRACE_HEAD = re.compile(r"^(UDP|TCP|TLS) (\S+) -> (\S+)$")


def parse_sip_trace(output: str) -> list[TracedMessage]:
    """The messages of a baresip ``-s`` trace (ANSI colours already stripped)."""
    found: list[TracedMessage] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        head = _TRACE_HEAD.match(line.strip())
        if head is None or i + 1 >= len(lines):
            continue
        cseq = ""
        for following in lines[i + 2 : i + 40]:
            if following.lower().startswith("cseq:"):
                cseq = following.split(":", 1)[1].strip()
                break
            if not following.strip():
                break
        found.append(TracedMessage(head[1], head[2], head[3], lines[i + 1].strip(), cseq))
    return found
