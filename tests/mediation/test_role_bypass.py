"""The media bypass web service on a running mediation role (issue 3, Media; RFC 9110 §15.5.4):
started with the role on its internal interface, answering from the tenant network
configuration the role holds, changed at run time with ``set_bypass`` (the next request and
the next call see it), stopped with the role. The external client is a second loopback
address, 127.0.0.2, outside the site's internal subnet 127.0.0.1/32."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lab_harness import WAIT, connect, lab, run, settle

from hybridvoice.cms.settings import parse_settings
from hybridvoice.mediation.bypass import BypassPolicy, MediaMode
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.transport import Destination

INTERNAL = (ipaddress.ip_network("127.0.0.1/32"),)
ON = BypassPolicy(enabled=True, internal_subnets=INTERNAL)
OFF = BypassPolicy(enabled=False, internal_subnets=INTERNAL)


def settings() -> dict[str, Any]:
    return {
        "Common": {"SIPDomains": "contoso.com", "SiteName": "Lab"},
        "MediationServer": {
            "IP": "127.0.0.1", "TCPPort": 0, "UDPPort": 0, "TLSPort": 0,
            "BypassServiceIP": "127.0.0.1", "BypassServicePort": 0,
        },
        "HybridVoiceRoutes": {"All": ".*"},
        "Gateway1": {"IP": "127.0.0.1", "Port": 5999, "Protocol": "UDP", "VoiceRoutes": "All",
                     "SendSipOptions": False},
    }  # fmt: skip


@contextlib.asynccontextmanager
async def role(bypass: BypassPolicy | None) -> AsyncIterator[MediationRole]:
    options = RoleOptions(
        edge=Destination("UDP", "127.0.0.1", 0), edge_target=Destination("UDP", "127.0.0.1", 9),
        relay=False, bypass=bypass, seed=random.randrange(1 << 30),
    )  # fmt: skip
    r = MediationRole(parse_settings(settings()), options)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def get(url: str, source: str = "127.0.0.1", accept: str = "application/json") -> Any:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=WAIT) as client:
        return await client.get(url, headers={"Accept": accept})


def second_loopback() -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


def test_the_role_serves_bypass_config_and_a_change_shows_on_the_next_request() -> None:
    async def main() -> None:
        async with role(ON) as r:
            server = r.bypass_server
            assert server is not None and r.bypass_error is None
            assert server.host == "127.0.0.1" and server.port != 0
            ok = await get(server.url)
            assert ok.status_code == 200, ok.text
            body = ok.json()
            assert body["bypass_enabled"] is True and body["always_bypass"] is True
            assert body["site_name"] == "Lab"
            assert body["bypass_service_name"] == "hybridvoice.contoso.com"
            assert body["internal_subnet"] == "127.0.0.1/32"
            assert ok.headers["cache-control"] == "no-store"

            r.set_bypass(OFF)  # no restart: the next request sees it
            off = await get(server.url)
            assert off.status_code == 403
            assert off.json()["reason"] == "bypass disabled in tenant network configuration"

            r.set_bypass(ON)
            again = await get(server.url)
            assert again.status_code == 200 and again.json()["settings_version"] == 2
            url = server.url
        with pytest.raises(httpx.ConnectError):  # stopped with the role
            await get(url)

    run(main())


@pytest.mark.skipif(not second_loopback(), reason="cannot bind 127.0.0.2")
def test_an_external_client_is_refused_with_a_reason() -> None:
    async def main() -> None:
        async with role(ON) as r:
            assert r.bypass_server is not None
            outside = await get(r.bypass_server.url, source="127.0.0.2")
            assert outside.status_code == 403
            assert outside.json()["reason"] == (
                "client 127.0.0.2 is not in the site's internal subnets"
            )
            xml = await get(r.bypass_server.url, source="127.0.0.2", accept="application/xml")
            assert xml.status_code == 403 and b"<Reason>" in xml.content

    run(main())


def test_without_a_tenant_policy_the_service_refuses_and_the_settings_subnets_apply() -> None:
    async def main() -> None:
        async with role(None) as r:  # bypass off; subnets from [MediationServer] (none here)
            assert r.bypass_server is not None
            refused = await get(r.bypass_server.url)
            assert refused.status_code == 403

    run(main())


def test_a_taken_bypass_port_is_reported_and_calls_still_run() -> None:
    async def main() -> None:
        async with role(ON) as first:
            assert first.bypass_server is not None
            raw = settings()
            raw["MediationServer"]["BypassServicePort"] = first.bypass_server.port
            options = RoleOptions(
                edge=Destination("UDP", "127.0.0.1", 0), relay=False, bypass=ON,
                edge_target=Destination("UDP", "127.0.0.1", 9),
            )  # fmt: skip
            second = MediationRole(parse_settings(raw), options)
            await second.start()
            try:
                assert second.bypass_server is None
                assert second.bypass_error is not None and second.b2bua is not None
            finally:
                await second.stop()

    run(main())


def test_set_bypass_applies_to_the_next_call(tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path, relay=True) as lab_:
            records = lab_.role.records
            assert records is not None
            reasons = []
            for policy in (OFF, BypassPolicy(enabled=True, internal_subnets=INTERNAL)):
                lab_.role.set_bypass(policy)
                a, b = await connect(lab_, anchored=True)
                live = records.live(a.call_id)
                assert live is not None and live.media_mode is MediaMode.ANCHORED
                reasons.append(live.media_reason)
                a.bye()
                await b.ended(WAIT)
                await settle(lab_)
            await asyncio.sleep(0.05)
            assert reasons == [
                "bypass disabled in tenant network configuration",
                "gateway Gateway1 has media bypass off",
            ]

    run(main())


_UNPRIVILEGED_CHILD = """
import asyncio, json, sys
from hybridvoice.cms.settings import parse_settings
from hybridvoice.mediation.role import MediationRole, RoleOptions
from hybridvoice.net.transport import Destination

raw = json.loads(sys.argv[1])
async def main():
    options = RoleOptions(edge=Destination("UDP", "127.0.0.1", 0),
                          edge_target=Destination("UDP", "127.0.0.1", 9), relay=False)
    role = MediationRole(parse_settings(raw), options)
    await role.start()
    print(json.dumps({"server": role.bypass_server is not None, "error": role.bypass_error}))
    await role.stop()
asyncio.run(main())
"""


def _drop_net_bind_service() -> None:
    """In the child before exec: drop CAP_NET_BIND_SERVICE from the bounding set
    (prctl PR_CAPBSET_DROP), so even root may not bind ports below 1024 after exec."""
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 10, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_NET_BIND_SERVICE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_privileged_bypass_port_refused_says_what_to_do(tmp_path: Path) -> None:
    """The CCE default BypassServicePort 80 in a process without CAP_NET_BIND_SERVICE (a
    child whose bounding set lacks it): the role still starts, and ``bypass_error`` names
    the two ways out."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    raw = settings()
    raw["MediationServer"]["BypassServicePort"] = 80
    if os.geteuid() != 0 and not _refused(80):
        pytest.skip("this process may bind port 80 (CAP_NET_BIND_SERVICE or a low sysctl)")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _UNPRIVILEGED_CHILD, json.dumps(raw)],
            preexec_fn=_drop_net_bind_service if os.geteuid() == 0 else None,
            capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop CAP_NET_BIND_SERVICE here: {exc}")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["server"]:
        pytest.skip("unprivileged processes may bind port 80 here (ip_unprivileged_port_start)")
    error = out["error"]
    assert "127.0.0.1:80" in error
    assert "[MediationServer] BypassServicePort" in error and ">= 1024" in error
    assert "CAP_NET_BIND_SERVICE" in error


def _refused(port: int) -> bool:
    from hybridvoice.mediation.role import bind_refused  # noqa: PLC0415

    return bind_refused("127.0.0.1", port)


def test_labs_never_bind_the_cce_default_port(tmp_path: Path) -> None:
    """Every lab of these tests passes BypassServicePort 0: the service runs on a free port
    (the conftest guard fails any test that asks for a port below 1024)."""

    async def main() -> None:
        async with lab(tmp_path) as lab_:
            server = lab_.role.bypass_server
            assert server is not None and lab_.role.bypass_error is None
            assert server.port >= 1024

    run(main())
