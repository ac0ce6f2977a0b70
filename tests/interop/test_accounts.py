"""Interop: the online service's accounts against the tools an attacker uses.

* sipvicious ``svwar`` (the extension enumerator) scans a live lab with REGISTER and INVITE
  and a dictionary holding the lab's real users among made-up ones: it must find no user
  (unknown users are challenged and refused exactly as known ones, Asterisk's
  ``alwaysauthreject``). svwar takes the answer for a random numeric extension as "no such
  user" and reports every name answered differently; it stops scanning at the first answer
  it cannot classify, so besides the whole dictionary each name is also scanned on its own.

The lab runs on free loopback ports; svwar binds a free loopback port too.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from chain_harness import DOMAIN, lab, settings_on_free_ports
from conftest import free_port
from ua_harness import run

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
