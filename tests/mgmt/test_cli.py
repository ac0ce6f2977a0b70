"""The command line, run as a user runs it: `hybridvoice sip serve` in one process,
`hybridvoice sip options` from another, on loopback with free ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

from hybridvoice.app import ListenSpec, parse_listen
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.ua import CallFailedError, UserAgent
from hybridvoice.sip.sdp import SessionDescription
from hybridvoice.sip.session import Answered, Cause, Disconnected, Ringing

pytestmark = pytest.mark.live  # `hybridvoice sip serve` and friends as processes

HV = [sys.executable, "-m", "hybridvoice"]


def _run(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HV, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@contextlib.contextmanager
def running(argv: list[str], port: int) -> Iterator[None]:
    """``python -m`` ``argv`` in the background until it accepts TCP on ``port``; stopped
    by its PID."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60  # a Python start on a loaded machine: seconds
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"{argv} exited: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail(f"{argv} did not accept TCP on {port} in 60 s")
        yield
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def _serving(*extra: str) -> Iterator[int]:
    """``hybridvoice sip serve`` on UDP and TCP at a free port."""
    port = free_port()
    listen = ["--listen", f"udp:127.0.0.1:{port}", "--listen", f"tcp:127.0.0.1:{port}"]
    with running(["hybridvoice", "sip", "serve", *listen, *extra], port):
        yield port


@pytest.fixture
def responder() -> Iterator[int]:
    with _serving() as port:
        yield port


def test_help_explains_the_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "sip" in result.stdout
    sip = _run("sip", "--help")
    assert "options" in sip.stdout and "serve" in sip.stdout


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_options_against_the_responder_json(responder: int, transport: str) -> None:
    result = _run("sip", "options", f"sip:127.0.0.1:{responder};transport={transport}", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == 200
    assert answer["rtt_ms"] > 0
    names = [name for name, _ in answer["headers"]]
    assert "Allow" in names
    via = dict(answer["headers"])["Via"]
    assert f"SIP/2.0/{transport.upper()}" in via
    # RFC 3581 on UDP: the responder filled in our source port; streams need no rport
    assert ("rport=" in via) is (transport == "udp")


def test_options_table_output(responder: int) -> None:
    result = _run("sip", "options", f"sip:127.0.0.1:{responder}")
    assert result.returncode == 0
    assert "200 OK" in result.stdout and "round trip" in result.stdout


def test_options_to_nobody_exits_2_with_advice() -> None:
    port = free_port()
    result = _run("sip", "options", f"sip:127.0.0.1:{port}", "--timeout", "0.5")
    assert result.returncode == 2
    assert "no answer" in result.stderr and "transport" in result.stderr


def test_options_bad_uri_is_refused_with_the_reason() -> None:
    result = _run("sip", "options", "mailto:someone")
    assert result.returncode == 2
    assert "bad URI" in result.stderr


OFFER = (
    b"v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


async def _place_call(port: int, transport: str, *, hang_up: bool) -> Disconnected | Answered:
    """A call from the UA core to ``sip serve`` on loopback; hang up once answered."""
    endpoint = Endpoint()
    ua = UserAgent(endpoint)
    await endpoint.listen(transport, "127.0.0.1", 0)
    try:
        call = ua.invite(
            f"sip:lab@127.0.0.1:{port};transport={transport.lower()}",
            from_="<sip:tester@example.com>",
            sdp=OFFER,
        )
        try:
            answered = await call.answered(10)
        except CallFailedError as exc:
            return exc.disconnected
        assert isinstance(answered, Answered)
        assert await call.wait_for(Ringing, 1) == Ringing(None)
        assert answered.sdp is not None
        answer = SessionDescription.parse(answered.sdp)
        codecs = [c.encoding.upper() for c in answer.media[0].codecs()]
        assert codecs[0] == "PCMA" and "TELEPHONE-EVENT" in codecs  # the offerer's order
        assert answer.media[0].port > 0
        if hang_up:
            call.bye()
            assert await call.ended(10) == Disconnected(Cause.NORMAL, None, "local")
        return answered
    finally:
        ua.close()
        await endpoint.close()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_serve_answer_takes_a_call_until_bye(transport: str) -> None:
    with _serving("--answer") as port:
        outcome = asyncio.run(_place_call(port, transport, hang_up=True))
        assert isinstance(outcome, Answered)


def test_serve_without_answer_refuses_calls_480(responder: int) -> None:
    outcome = asyncio.run(_place_call(responder, "UDP", hang_up=True))
    assert outcome == Disconnected(Cause.REJECTED, 480, "remote")


def test_serve_help_says_media_is_echoed() -> None:
    result = subprocess.run(
        [*HV, "sip", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env={**os.environ, "COLUMNS": "250"},  # rich wraps the help at the terminal width
    )
    assert "--answer" in result.stdout and "every RTP packet sent there comes back" in result.stdout


def test_serve_refuses_a_bad_listen_setting() -> None:
    result = _run("sip", "serve", "--listen", "sctp:127.0.0.1:5060")
    assert result.returncode == 2
    assert "listen" in result.stderr and "udp:, tcp: or tls:" in result.stderr


def test_serve_tls_without_certificate_is_refused() -> None:
    result = _run("sip", "serve", "--listen", "tls:127.0.0.1:0")
    assert result.returncode == 2
    assert "--tls-cert" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:5060", ListenSpec("UDP", "127.0.0.1", 5060)),
        ("tcp:127.0.0.1", ListenSpec("TCP", "127.0.0.1", 5060)),
        ("tls:[::1]:5061", ListenSpec("TLS", "::1", 5061)),
        ("TLS:[::1]", ListenSpec("TLS", "::1", 5061)),
    ],
)
def test_parse_listen(text: str, expected: ListenSpec) -> None:
    assert parse_listen(text) == expected
    assert parse_listen(str(expected)) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:5060", "udp:", "udp:127.0.0.1:99999", "udp:h:x"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="listen"):
        parse_listen(text)


def test_readme_starts_with_the_two_commands() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text().splitlines()
    commands = [line for line in readme[:4] if line.startswith("bash ")]
    assert [c.split()[1] for c in commands] == ["scripts/up.sh", "scripts/test.sh"]
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
