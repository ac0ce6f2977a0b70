"""``GET /v1/users/{sip_uri}/turn-credentials``: TURN credentials for a user's client.

A client on the internet reaches its site's edge media relay (TURN, RFC 8656) with
long-term credentials (RFC 8489 §9.2) that the edge's MRAS issues. The online service asks
the MRAS of an online appliance of the user's ``hybrid_pstn_site`` (the ``mras_url`` the
appliance registered with, ``https://``) over mutual TLS: it presents its own site
certificate (the one the edge knows it by on SIP) and verifies the edge's against the site
roots and the URL's host (:func:`mras_fetch`). It hands the answer on: ``username``,
``password``, ``ttl``, ``expires``, ``uris`` (RFC 7065), plus ``site`` and ``appliance``.
Any valid token may read it (a GET, :mod:`hybridvoice.cms.guard`).

Errors, each with a hint: 422 not a SIP URI, or longer than :data:`MAX_URI` characters (what
an edge's MRAS issues credentials for: asking it would only fail); 404 no such user; 409 the
user has no hybrid PSTN site; 503 no online appliance of the site runs a media relay; 502
every MRAS asked failed. Errors quote at most 60 characters of what was asked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI

from .api import ApiError
from .models import canonical_aor
from .store import TenantStore

if TYPE_CHECKING:
    import ssl

__all__ = ["MrasFetch", "add_turn_routes", "fetch_from_mras", "mras_fetch"]

_log = logging.getLogger(__name__)

#: ``await fetch(mras_url, user)`` -> the MRAS answer (raises on any failure)
MrasFetch = Callable[[str, str], Awaitable[dict[str, Any]]]
_FIELDS = ("username", "password", "ttl", "expires", "uris")
#: the longest SIP URI credentials are asked for (``edge.mras_api.MAX_USER``)
MAX_URI = 256
_BY_URI = "name the user by SIP URI: /v1/users/sip:alice@contoso.com"


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def mras_fetch(context: ssl.SSLContext | None) -> MrasFetch:
    """The fetch that asks MRAS with ``context`` (the online service's client certificate and
    the site roots); None: an online service without a site certificate, which MRAS refuses:
    every fetch fails with a message saying so."""

    async def fetch(url: str, user: str) -> dict[str, Any]:
        if context is None:
            raise ValueError(
                "the online service has no site certificate to present to MRAS (mutual TLS)"
            )
        return await fetch_from_mras(url, user, context)

    return fetch


async def fetch_from_mras(
    url: str, user: str, context: ssl.SSLContext | bool = True
) -> dict[str, Any]:
    """POST the user to an edge's MRAS (``docs/edge-media.md``) and return its answer;
    ``context``: the TLS client context (``httpx``'s ``verify``)."""
    async with httpx.AsyncClient(timeout=10.0, verify=context) as client:
        answer = await client.post(url, json={"user": user})
        answer.raise_for_status()
        body = answer.json()
    if not isinstance(body, dict) or any(k not in body for k in _FIELDS):
        raise ValueError(f"MRAS at {url} answered without {', '.join(_FIELDS)}")
    return {k: body[k] for k in _FIELDS}


def add_turn_routes(app: FastAPI, store: TenantStore, fetch: MrasFetch) -> None:
    """Add the TURN credentials route to the online API ``app``."""

    @app.get("/v1/users/{sip_uri}/turn-credentials")
    async def turn_credentials(sip_uri: str) -> dict[str, Any]:
        if len(sip_uri) > MAX_URI:  # before parsing it: bounded work for any input
            raise ApiError(
                422, f"the SIP URI {_quoted(sip_uri)} is {len(sip_uri)} characters, over "
                f"{MAX_URI}: no edge issues TURN credentials for it", _BY_URI, "sip_uri",
            )  # fmt: skip
        try:
            aor = canonical_aor(sip_uri)
        except ValueError as exc:
            raise ApiError(422, str(exc)[:200], _BY_URI, "sip_uri") from exc
        if len(aor) > MAX_URI:  # "alice@..." grew a "sip:"
            raise ApiError(422, f"{_quoted(aor)} is over {MAX_URI} characters", _BY_URI, "sip_uri")
        user = store.get_user(aor)
        if user is None:
            raise ApiError(404, f"no user {_quoted(aor)}", "PUT /v1/users/{sip_uri} creates it")
        site = user.hybrid_pstn_site
        if site is None:
            raise ApiError(
                409, f"user {aor!r} has no hybrid PSTN site: no edge relays its media",
                "PUT /v1/users/{sip_uri} with hybrid_pstn_site set to the user's site",
            )  # fmt: skip
        relays = [a for a in store.appliances(site) if a.status == "online" and a.mras_url]
        if not relays:
            raise ApiError(
                503, f"no online appliance of site {site!r} runs a media relay",
                "start an appliance of the site with [MediaRelay] on (or [EdgeServer] "
                "ExternalMRIPs set); GET /v1/appliances?site=... shows what registered",
            )  # fmt: skip
        failures = []
        for appliance in relays:
            try:
                answer = await fetch(appliance.mras_url, aor)
            except (httpx.HTTPError, ValueError) as exc:
                _log.warning("MRAS of %s at %s failed: %s", appliance.name, appliance.mras_url, exc)
                failures.append(f"{appliance.name}: {str(exc)[:120]}")
                continue
            return {**answer, "site": site, "appliance": appliance.name}
        raise ApiError(
            502, f"every MRAS of site {site!r} failed ({'; '.join(failures)})",
            "check the appliances' [MediaRelay] MRASPort and that they trust the online "
            "service's site certificate (MRAS is mutual TLS; the appliance log says why a "
            "handshake was refused)",
        )  # fmt: skip
