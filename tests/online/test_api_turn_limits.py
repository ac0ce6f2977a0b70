"""``GET /v1/users/{sip_uri}/turn-credentials`` against huge and odd URIs: over the length an
edge's MRAS takes is refused 422 before any lookup or MRAS request (it used to look the URI
up and echo all of it back, or ask every MRAS of the site and answer 502); errors quote a
bounded part of what was asked; odd URIs get 422 with the hint."""

from __future__ import annotations

import httpx
from test_api_turn import APPLIANCE, _error, _user, run

from hybridvoice.edge.mras_api import MAX_USER
from hybridvoice.online.api_turn import MAX_URI
from hybridvoice.online.store import TenantStore


def test_uris_longer_than_mras_takes_are_refused_before_asking() -> None:
    assert MAX_URI == MAX_USER  # the online service asks only for what MRAS issues

    async def scenario(
        http: httpx.AsyncClient, store: TenantStore, asked: list[tuple[str, str]]
    ) -> None:
        await _user(http)
        assert (await http.post("/v1/appliances", json=APPLIANCE)).status_code == 201
        for uri in ("sip:" + "a" * 5000 + "@contoso.com", "x" * 9000,
                    "a" * (MAX_URI - 15) + "@contoso.com"):  # fmt: skip
            answer = await http.get(f"/v1/users/{uri}/turn-credentials")
            error = _error(answer, 422)
            assert len(answer.text) < 600 and f"over {MAX_URI}" in error, error
        long_user = "sip:" + "b" * (MAX_URI - 16) + "@contoso.com"  # exactly MAX_URI
        assert len(long_user) == MAX_URI
        assert _error(await http.get(f"/v1/users/{long_user}/turn-credentials"), 404)
        assert asked == []

    run(scenario)


def test_odd_uris_are_422_with_the_hint() -> None:
    async def scenario(
        http: httpx.AsyncClient, store: TenantStore, asked: list[tuple[str, str]]
    ) -> None:
        for uri in ("%00", "sip:%00@contoso.com", "sip:alice@contoso.com%0d%0aX:1", "sip:",
                    "%ff%fe", "sip:alice@contoso.com:99999", "<sip:alice@contoso.com>",
                    "tel:+15550100"):  # fmt: skip
            answer = await http.get(f"/v1/users/{uri}/turn-credentials")
            assert "SIP URI" in _error(answer, 422), uri
            assert "\r" not in answer.headers.get("content-type", "")
        assert asked == []

    run(scenario)
