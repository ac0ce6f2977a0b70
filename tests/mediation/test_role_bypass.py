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
