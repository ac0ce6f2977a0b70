"""``/metrics`` on a listener of its own (``mediation serve --metrics``): the exposition
parses, other paths and methods are refused, a bad address is named; registrations are
classed by status."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from ports import free_port
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from hybridvoice.mgmt.metrics_http import MetricsListenError, parse_metrics_address, serve_metrics
from hybridvoice.online.metrics_registrar import registration_result


def test_served_on_loopback_and_parsed() -> None:
    registry = CollectorRegistry()
    Counter("hybridvoice_test_things", "Things", registry=registry).inc(3)

    async def main() -> None:
        server = await serve_metrics(registry, f"127.0.0.1:{free_port()}")
        try:
            async with httpx.AsyncClient(base_url=server.url) as http:
                ok = await http.get("/metrics")
                assert ok.status_code == 200
                families = {f.name: f for f in text_string_to_metric_families(ok.text)}
                assert families["hybridvoice_test_things"].samples[0].value == 3
                assert (await http.get("/")).status_code == 404
                assert (await http.post("/metrics")).status_code == 405
        finally:
            await server.stop()

    asyncio.run(main())


@pytest.mark.parametrize("text", ["9100", "localhost", "127.0.0.1:x", ":9100", "1.2.3.4:70000"])
def test_bad_addresses_are_named(text: str) -> None:
    named = re.escape(f"--metrics: {text!r}: expected HOST:PORT")
    with pytest.raises(MetricsListenError, match=named):
        parse_metrics_address(text)


def test_a_name_instead_of_an_address_is_refused() -> None:
    where = f"localhost:{free_port()}"
    with pytest.raises(MetricsListenError, match=rf"--metrics {where}: .*IP address"):
        asyncio.run(serve_metrics(CollectorRegistry(), where))


def test_registration_results() -> None:
    assert [registration_result(s) for s in (200, 401, 403, 423, 400)] == [
        "accepted", "challenged", "refused", "refused", "refused",
    ]  # fmt: skip
