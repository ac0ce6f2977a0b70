"""The whole single-site deployment of ``hybridvoice up`` (:class:`hybridvoice.app.Lab`) on
free loopback ports, for tests and benchmarks that need the real chain: online service,
appliance (edge + mediation), lab gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ports import free_port

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template import lab_settings
from hybridvoice.mgmt.testcall import TestCallResult, place_test_call
from hybridvoice.net.transport import Destination

DOMAIN = "contoso.example"


def settings_on_free_ports(**sections: dict[str, Any]) -> Settings:
    """The lab settings with every port a free one (``sections`` override keys)."""
    raw = settings_raw(lab_settings())
    raw["EdgeServer"].update(InternalPort=free_port(), ExternalSIPPort=free_port())
    raw["MediationServer"].update(
        TCPPort=free_port(), UDPPort=free_port(), InternalPort=free_port(),
        BypassServicePort=free_port(), TLSPort=False,
    )  # fmt: skip
    raw["Online"].update(ServiceURL=f"http://127.0.0.1:{free_port()}", SIPPort=free_port())
    raw["Management"].update(Port=free_port())
    raw["Gateways"][0]["Port"] = free_port()
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_settings(raw)


@contextlib.asynccontextmanager
async def lab(tmp_path: Path, settings: Settings | None = None) -> AsyncIterator[Lab]:
    up = Lab(settings or settings_on_free_ports(), tmp_path, lab_gateway=True)
    await up.start()
    try:
        yield up
    finally:
        await up.stop()


def proxy_of(up: Lab) -> Destination:
    s = up.settings.online
    return Destination("UDP", s.sip_addresses[0], s.sip_port)


async def call_once(up: Lab, number: str = LAB_PSTN_NUMBER, user: str = "alice") -> TestCallResult:
    """One ``hybridvoice test-call`` through ``up``: register, call, tone, hang up."""
    api = None if up.appliance is None or up.appliance.api is None else up.appliance.api.url
    return await place_test_call(
        user=user, domain=DOMAIN, password=LAB_PASSWORD, number=number, proxy=proxy_of(up),
        duration=0.4, appliance_url=api, timeout=10.0, api_token=up.admin_token,
    )  # fmt: skip
