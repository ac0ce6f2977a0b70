"""The online service's ``/metrics`` counts exactly the registrations SIPp made: 40 REGISTERs
of alice with the right password (each challenged 401, then answered 200) and 3 with a wrong
one, through the lab's online service (RFC 3261 §10.2, §22.2). The exposition is parsed by
prometheus-client's parser. SIPp runs on 127.0.0.1 with free ports and is stopped by PID."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from chain_harness import DOMAIN, lab, proxy_of
from interop_programs import SCENARIOS, free_port, need_binary, running, sipp_stats
from prometheus_client.parser import text_string_to_metric_families
from test_sipp import SIPP_TIMEOUT, sipp_common, wait_exit
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD

pytestmark = pytest.mark.interop

GOOD, BAD = 40, 3


def _register(sipp: str, port: int, password: str, calls: int, tmp: Path, name: str) -> list[str]:
    return [
        sipp, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "chain_register.xml"),
        "-key", "user", "alice", "-key", "domain", DOMAIN, "-au", "alice", "-ap", password,
        "-auth_uri", DOMAIN, "-m", str(calls), "-r", "10", *sipp_common(free_port(), tmp, name),
    ]  # fmt: skip


def test_registrations_match_a_sipp_run(tmp_path: Path) -> None:
    sipp = need_binary("sipp", "sip-tester")
    tmp = tmp_path
    counts: dict[str, float] = {}

    async def main() -> None:
        async with lab(tmp / "state") as up:
            assert up.online is not None and up.online.api is not None
            port = proxy_of(up).port
            good = _register(sipp, port, LAB_PASSWORD, GOOD, tmp, "good")
            with running(good, tmp / "good.out") as program:
                assert await wait_exit(program, SIPP_TIMEOUT + 10) == 0, program.output()[-2000:]
            bad = _register(sipp, port, "not-the-password", BAD, tmp, "bad")
            with running(bad, tmp / "bad.out") as program:
                await wait_exit(program, SIPP_TIMEOUT + 10)
            headers = {"Authorization": f"Bearer {up.admin_token}"}
            async with httpx.AsyncClient(base_url=up.online.api.url, headers=headers) as http:
                text = (await http.get("/metrics")).text
            for family in text_string_to_metric_families(text):
                if family.name == "hybridvoice_online_registrations":
                    for s in family.samples:
                        key = s.labels["result"]
                        counts[key] = counts.get(key, 0) + s.value

    run(main(), timeout=SIPP_TIMEOUT * 3)
    good_stats, bad_stats = sipp_stats(tmp / "good.csv"), sipp_stats(tmp / "bad.csv")
    accepted = int(good_stats["SuccessfulCall(C)"])
    refused = int(bad_stats["FailedCall(C)"])
    assert accepted == GOOD and int(good_stats["FailedCall(C)"]) == 0
    assert refused == BAD and int(bad_stats["SuccessfulCall(C)"]) == 0
    assert counts["accepted"] == accepted
    assert counts["challenged"] == accepted + refused  # every first REGISTER gets its 401
    assert counts["refused"] == refused
