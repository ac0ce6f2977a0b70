"""Interop: the online service's accounts against the tools an attacker uses.

* sipvicious ``svwar`` (the extension enumerator) scans a live lab with REGISTER and INVITE
  and a dictionary holding the lab's real users among made-up ones: it must find no user
  (unknown users are challenged and refused exactly as known ones, Asterisk's
  ``alwaysauthreject``). svwar takes the answer for a random numeric extension as "no such
  user" and reports every name answered differently; it stops scanning at the first answer
  it cannot classify, so besides the whole dictionary each name is also scanned on its own.

* A scripted password guesser (real SIP over UDP from 127.0.0.2) sends a burst of wrong
  passwords for alice: after ``AuthFailureLimit`` failures its address and alice are blocked,
  every further attempt (even the right password) is refused without the digest work and
  counted in ``/metrics``; alice's own phone (127.0.0.1, which registered before) keeps
  registering; once the block ends the right password works from the guesser's address.

* A forged in-dialog request (a To tag, no credentials) addressed to any host is answered
  481 and not relayed: the proxy is no open relay around its digest challenge.

The lab runs on free loopback ports; svwar and the guesser bind free loopback ports too.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from chain_harness import DOMAIN, lab, settings_on_free_ports
from interop_programs import free_port
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD
from hybridvoice.sip.auth import Challenge, authorize, choose_challenge
from hybridvoice.sip.message import Response
from hybridvoice.sip.parser import parse_message

pytestmark = pytest.mark.interop

#: the lab's users (alice, bob) among names that are not users
DICTIONARY = ("alice", "carol", "mallory", "bob", "1000", "admin", "trent")
REAL_USERS = ("alice", "bob")


def svwar() -> str:
    """The svwar executable the dev extra installed (sipvicious >= 0.3.4 names it
    ``sipvicious_svwar``; older releases ``svwar``)."""
    bin_dir = Path(sys.executable).parent
    for name in ("sipvicious_svwar", "svwar"):
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    pytest.fail("sipvicious is not installed: pip install -e '.[dev]'", pytrace=False)


async def scan(port: int, method: str, words: Path) -> str:
    """One svwar run (``--force``: scan even though unknown names are challenged)."""
    args = [
        svwar(), "-m", method, "-d", str(words), "--domain", DOMAIN, "--force", "-v",
        "-b", "127.0.0.1", "-P", str(free_port()), "-t", "0.05", "--maximumtime", "5",
        f"udp://127.0.0.1:{port}",
    ]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60)
    return f"{words.read_text()!r}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_svwar_finds_no_user(tmp_path: Path, method: str) -> None:
    dictionaries = [tmp_path / "all.txt"]
    dictionaries[0].write_text("\n".join(DICTIONARY) + "\n")
    for name in DICTIONARY:
        dictionaries.append(tmp_path / f"{name}.txt")
        dictionaries[-1].write_text(name + "\n")
    outputs: list[str] = []

    async def main() -> None:
        async with lab(tmp_path, settings_on_free_ports()) as up:
            for words in dictionaries:
                outputs.append(await scan(up.settings.online.sip_port, method, words))

    run(main(), timeout=240)
    for output in outputs:
        assert "Ok SIP device found" in output, output  # svwar reached the lab and scanned
        for user in REAL_USERS:
            assert f"'{user}' exists" not in output and f"| {user} " not in output, output
        assert "found nothing" in output, output


# --- password guessing ---------------------------------------------------------------------


class Guesser:
    """A SIP client in a few lines: REGISTER alice from ``host``, answer the challenge with a
    password, return the final status. Blocking UDP (run it in a thread)."""

    def __init__(self, host: str, server: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, free_port()))
        self.sock.settimeout(5.0)
        self.host, self.port = self.sock.getsockname()
        self.server = server
        self.sent = 0

    def close(self) -> None:
        self.sock.close()

    def _exchange(self, call_id: str, cseq: int, authorization: str | None) -> Response:
        self.sent += 1
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch=z9hG4bK{call_id}.{cseq}",
            "Max-Forwards: 70",
            f"From: <sip:alice@{DOMAIN}>;tag={call_id}",
            f"To: <sip:alice@{DOMAIN}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:alice@{self.host}:{self.port}>",
            "Expires: 60",
        ]
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        self.sock.sendto(("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode(), self.server)
        while True:
            message = parse_message(self.sock.recv(65535))
            if isinstance(message, Response) and message.status >= 200:
                return message

    def register(self, password: str) -> int:
        call_id = f"guess-{self.sent}-{self.host}"
        challenge = self._exchange(call_id, 1, None)
        assert challenge.status == 401, challenge
        offered = [Challenge.parse(v) for v in challenge.headers.get_all("WWW-Authenticate")]
        credentials = authorize(choose_challenge(offered), method="REGISTER",
                                uri=f"sip:{DOMAIN}", username="alice", password=password,
                                cnonce="c0ffee")  # fmt: skip
        return self._exchange(call_id, 2, str(credentials)).status


def metric(text: str, name: str, reason: str | None = None) -> float:
    label = "" if reason is None else f'{{reason="{reason}"}}'
    found = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name}{label} not in /metrics"
    return float(found.group(1))


GUESSES = 200
LIMIT = 5
BLOCK = 1.0


def test_a_password_guesser_is_blocked_counted_and_the_real_user_unaffected(
    tmp_path: Path,
) -> None:
    limits = {"AuthFailureLimit": LIMIT, "AuthFailureWindowSeconds": 60,
              "AuthBlockSeconds": BLOCK, "AuthBlockMaxSeconds": 4 * BLOCK}  # fmt: skip
    settings = settings_on_free_ports(Online=limits)

    async def main() -> None:
        async with lab(tmp_path, settings) as up:
            assert up.online is not None and up.online.api is not None
            server = ("127.0.0.1", up.settings.online.sip_port)
            phone, attacker = Guesser("127.0.0.1", server), Guesser("127.0.0.2", server)
            try:
                assert await asyncio.to_thread(phone.register, LAB_PASSWORD) == 200
                statuses = await asyncio.to_thread(
                    lambda: [attacker.register(f"guess{i}") for i in range(GUESSES)]
                )
                assert statuses == [403] * GUESSES
                # blocked: the right password is refused from the guesser's address...
                assert await asyncio.to_thread(attacker.register, LAB_PASSWORD) == 403
                # ...not from alice's own phone, although alice is under attack
                assert await asyncio.to_thread(phone.register, LAB_PASSWORD) == 200
                read = {"Authorization": f"Bearer {up.admin_token}"}  # the API needs a token
                async with httpx.AsyncClient(base_url=up.online.api.url, headers=read) as client:
                    text = (await client.get("/metrics")).text
                assert metric(text, "hybridvoice_online_auth_failures_total") == LIMIT
                assert metric(text, "hybridvoice_online_auth_blocks_total", "source") == 1
                assert metric(text, "hybridvoice_online_auth_blocks_total", "user") == 1
                refused = metric(text, "hybridvoice_online_auth_refused_total", "source")
                assert refused == GUESSES - LIMIT + 1  # checked no further: no digest work
                started = time.monotonic()
                await asyncio.sleep(BLOCK * 1.5)  # the block ends (the server's clock)
                assert time.monotonic() - started >= BLOCK
                assert await asyncio.to_thread(attacker.register, LAB_PASSWORD) == 200
            finally:
                phone.close()
                attacker.close()

    run(main(), timeout=120)


def test_a_forged_in_dialog_request_is_not_relayed(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, settings_on_free_ports()) as up:
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sink.bind(("127.0.0.1", free_port()))
                sender.bind(("127.0.0.1", free_port()))
                sink.settimeout(1.0)
                sender.settimeout(5.0)
                text = (
                    f"MESSAGE sip:victim@127.0.0.1:{sink.getsockname()[1]} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{sender.getsockname()[1]};branch=z9hG4bKf1\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:nobody@evil.example>;tag=a\r\n"
                    "To: <sip:victim@127.0.0.1>;tag=b\r\nCall-ID: forged-1\r\n"
                    "CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
                )
                sender.sendto(text.encode(), ("127.0.0.1", up.settings.online.sip_port))
                answer = parse_message(await asyncio.to_thread(sender.recv, 65535))
                assert isinstance(answer, Response) and answer.status == 481
                with pytest.raises(TimeoutError):
                    await asyncio.to_thread(sink.recv, 65535)  # nothing was relayed
            finally:
                sink.close()
                sender.close()

    run(main(), timeout=60)
