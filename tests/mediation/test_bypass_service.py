"""The media bypass web service: the FastAPI app through httpx's ASGI transport (client address
chosen per request), and once for real over HTTP with uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
from xml.etree import ElementTree

import httpx
import pytest

from hybridvoice.mediation.bypass import BypassPolicy, parse_subnets
from hybridvoice.mediation.bypass_service import (
    BYPASS_PATH,
    BypassServiceError,
    ConfigUnavailableError,
    HybridConfig,
    create_bypass_app,
    serve_bypass,
    wants_xml,
)

POLICY = BypassPolicy(
    enabled=True, always_bypass=True, internal_subnets=parse_subnets(["10.1.0.0/16", "fd00::/8"])
)
CONFIG = HybridConfig(POLICY, site_name="Amsterdam", service_name="hybridvoice.example.com",
                      version=7)  # fmt: skip


class Settings:
    """A mutable settings holder: the provider reads it on every request."""

    def __init__(self, config: HybridConfig = CONFIG) -> None:
        self.config = config
        self.unavailable = False

    def __call__(self) -> HybridConfig:
        if self.unavailable:
            raise ConfigUnavailableError("replica not loaded yet")
        return self.config


def get(
    settings: Settings, client: str, accept: str | None = None, path: str = BYPASS_PATH
) -> httpx.Response:
    """One GET against a fresh app, as if from ``client``."""

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_bypass_app(settings), client=(client, 50123))
        headers = {} if accept is None else {"Accept": accept}
        async with httpx.AsyncClient(transport=transport, base_url="http://bypass") as http:
            return await http.get(path, headers=headers)

    return asyncio.run(main())


def test_internal_client_gets_json() -> None:
    response = get(Settings(), "10.1.2.3")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "bypass_enabled": True,
        "always_bypass": True,
        "site_name": "Amsterdam",
        "bypass_service_name": "hybridvoice.example.com",
        "settings_version": 7,
        "client_address": "10.1.2.3",
        "internal_subnet": "10.1.0.0/16",
    }


def test_internal_ipv6_client() -> None:
    response = get(Settings(), "fd00::5")
    assert response.status_code == 200
    assert response.json()["internal_subnet"] == "fd00::/8"


@pytest.mark.parametrize(
    "accept", ["application/xml", "text/xml", "application/json;q=0.5, application/xml"]
)
def test_internal_client_gets_xml_when_asked(accept: str) -> None:
    response = get(Settings(), "10.1.2.3", accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == "HybridConfiguration"
    values = {child.tag: child.text for child in root}
    assert values["BypassEnabled"] == "true"
    assert values["AlwaysBypass"] == "true"
    assert values["SiteName"] == "Amsterdam"
    assert values["BypassServiceName"] == "hybridvoice.example.com"
    assert values["SettingsVersion"] == "7"


def test_external_client_is_forbidden() -> None:
    response = get(Settings(), "203.0.113.9")
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "reason": "client 203.0.113.9 is not in the site's internal subnets",
    }


def test_external_client_learns_nothing_when_bypass_is_off() -> None:
    settings = Settings(
        dataclasses.replace(CONFIG, policy=dataclasses.replace(POLICY, enabled=False))
    )
    assert "internal subnets" in get(settings, "203.0.113.9").json()["reason"]


def test_bypass_disabled_rejects_internal_clients_too() -> None:
    settings = Settings(
        dataclasses.replace(CONFIG, policy=dataclasses.replace(POLICY, enabled=False))
    )
    response = get(settings, "10.1.2.3")
    assert response.status_code == 403
    assert response.json()["reason"] == "bypass disabled in tenant network configuration"
    xml = get(settings, "10.1.2.3", "application/xml")
    assert xml.status_code == 403
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "Error"
    assert root.findtext("Reason") == "bypass disabled in tenant network configuration"


def test_config_change_visible_without_restart() -> None:
    settings = Settings()

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_bypass_app(settings), client=("10.1.2.3", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://bypass") as http:
            first = await http.get(BYPASS_PATH)
            settings.config = dataclasses.replace(
                CONFIG, policy=dataclasses.replace(POLICY, always_bypass=False), version=8
            )
            second = await http.get(BYPASS_PATH)
            settings.config = dataclasses.replace(
                CONFIG, policy=dataclasses.replace(POLICY, enabled=False), version=9
            )
            third = await http.get(BYPASS_PATH)
            settings.config = dataclasses.replace(
                CONFIG, policy=BypassPolicy(True, True, parse_subnets(["10.9.0.0/16"])), version=10
            )
            fourth = await http.get(BYPASS_PATH)
            return [first, second, third, fourth]

    first, second, third, fourth = asyncio.run(main())
    assert (first.status_code, first.json()["settings_version"]) == (200, 7)
    assert second.json()["always_bypass"] is False and second.json()["settings_version"] == 8
    assert third.status_code == 403
    assert fourth.status_code == 403  # the client's subnet is no longer internal


def test_provider_unavailable_is_503() -> None:
    settings = Settings()
    settings.unavailable = True
    response = get(settings, "10.1.2.3")
    assert response.status_code == 503
    assert response.json()["reason"] == "configuration unavailable: replica not loaded yet"


def test_other_paths_are_not_served() -> None:
    assert get(Settings(), "10.1.2.3", path="/docs").status_code == 404
    assert get(Settings(), "10.1.2.3", path="/openapi.json").status_code == 404


@pytest.mark.parametrize(
    ("accept", "xml"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/xml", True),
        ("text/xml;q=0.8, application/json;q=0.9", False),
        ("application/xml, */*;q=0.1", True),
        ("application/xml;q=0", False),
        ("application/xml;q=banana", False),
    ],
)
def test_accept_negotiation(accept: str | None, xml: bool) -> None:
    assert wants_xml(accept) is xml


def test_real_uvicorn_server_over_http() -> None:
    settings = Settings(dataclasses.replace(
        CONFIG, policy=dataclasses.replace(POLICY, internal_subnets=parse_subnets(["127.0.0.0/8"]))
    ))  # fmt: skip

    async def main() -> tuple[httpx.Response, httpx.Response, int]:
        server = await serve_bypass(create_bypass_app(settings), "127.0.0.1", 0)
        try:
            assert server.port > 0
            async with httpx.AsyncClient(timeout=10) as http:
                ok = await http.get(server.url)
                settings.config = dataclasses.replace(
                    settings.config,
                    policy=dataclasses.replace(settings.config.policy, enabled=False),
                )
                off = await http.get(server.url, headers={"Accept": "application/xml"})
        finally:
            await server.stop()
        with pytest.raises(httpx.ConnectError):  # stopped means closed
            async with httpx.AsyncClient(timeout=2) as http:
                await http.get(server.url)
        return ok, off, server.port

    ok, off, _ = asyncio.run(main())
    assert ok.status_code == 200
    assert ok.json()["client_address"] == "127.0.0.1"
    assert "server" not in ok.headers
    assert off.status_code == 403
    assert b"bypass disabled in tenant network configuration" in off.content


def test_serve_refuses_wildcard_and_names() -> None:
    app = create_bypass_app(Settings())

    async def main() -> None:
        for host in ("0.0.0.0", "::", "bypass.example.com"):
            with pytest.raises(BypassServiceError):
                await serve_bypass(app, host, 0)

    asyncio.run(main())


def test_serve_reports_a_port_in_use() -> None:
    app = create_bypass_app(Settings())

    async def main() -> None:
        first = await serve_bypass(app, "127.0.0.1", 0)
        try:
            with pytest.raises(BypassServiceError, match="could not listen"):
                await serve_bypass(app, "127.0.0.1", first.port)
        finally:
            await first.stop()

    asyncio.run(main())
