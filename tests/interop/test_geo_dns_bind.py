"""The BIND export run by a real BIND (``named``, Debian package bind9): the seed's policy
exported by ``hybridvoice dns export --format bind``, named started by the test on a free
127.0.0.1 port and stopped by its PID, queried with dnspython from 127.0.0.2 ("Amsterdam")
and 127.0.0.3 ("Seattle") and from 127.0.0.1 (no site): the same answers as ``dns serve``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from geo_dns_seed import AMSTERDAM, NAME, SEATTLE, SEED_TOML
from interop_programs import free_port, need_binary, running

pytestmark = pytest.mark.interop
TIMEOUT = 10.0


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


@pytest.mark.parametrize("unmatched", ["refuse", "all"])
def test_named_serves_the_export_per_site(tmp_path: Path, unmatched: str) -> None:
    named = need_binary("named", "bind9")
    policy = tmp_path / "geo.toml"
    policy.write_text(SEED_TOML.replace('Unmatched = "refuse"', f'Unmatched = "{unmatched}"'))
    exported = subprocess.run(
        [sys.executable, "-m", "hybridvoice", "dns", "export", str(policy), "--format", "bind",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    port = free_port()
    conf = tmp_path / "named.conf"
    conf.write_text(
        f'options {{\n\tdirectory "{tmp_path}";\n\tpid-file "{tmp_path}/named.pid";\n'
        f'\tsession-keyfile "{tmp_path}/session.key";\n\tmanaged-keys-directory "{tmp_path}";\n'
        f"\tlisten-on port {port} {{ 127.0.0.1; }};\n\tlisten-on-v6 {{ none; }};\n"
        "\trecursion no;\n\tdnssec-validation no;\n};\ncontrols { };\n"
        f'include "{tmp_path}/named.conf.geo";\n'
    )
    query = dns.message.make_query(NAME, "A")
    with running([named, "-g", "-n", "1", "-c", str(conf)], tmp_path / "named.log") as server:
        deadline = time.monotonic() + 60
        while True:  # until named answers (it loads its zones first)
            assert server.returncode is None, server.output()
            try:
                dns.query.udp(query, "127.0.0.1", port=port, source="127.0.0.2", timeout=1.0)
                break
            except dns.exception.Timeout:
                assert time.monotonic() < deadline, server.output()
        for source, expected in (("127.0.0.2", AMSTERDAM), ("127.0.0.3", SEATTLE)):
            udp = dns.query.udp(query, "127.0.0.1", port=port, source=source, timeout=TIMEOUT)
            tcp = dns.query.tcp(query, "127.0.0.1", port=port, source=source, timeout=TIMEOUT)
            assert addresses(udp) == addresses(tcp) == sorted(expected)
        other = dns.query.udp(query, "127.0.0.1", port=port, timeout=TIMEOUT)
        if unmatched == "refuse":
            assert other.rcode() == dns.rcode.REFUSED
        else:
            assert addresses(other) == sorted(AMSTERDAM + SEATTLE)
