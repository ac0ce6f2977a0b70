"""``/v1/site-roots``: the sites whose appliances the online service accepts (mutual TLS).

An online service serving several sites trusts each site's root for that site's appliances
(``docs/api-auth.md``). ``GET /v1/site-roots`` lists them (any token): the site of the
service's own settings (``source`` ``settings``, from its site PKI) and the ones an admin
added (``source`` ``added``). ``PUT /v1/site-roots/{site}`` with ``{"root": "<PEM>"}``
(admin) adds or replaces a site's root; ``DELETE /v1/site-roots/{site}`` (admin) removes an
added one. A change is kept in the tenant store (:mod:`.site_roots`) and taken at once, without
a restart: the appliance check reads the new roots and the HTTPS server trusts them from the
next handshake (:meth:`.api_mtls.ApplianceAuth.on_change`). Each change is in the audit log.

Errors, each with a hint: 409 the API is plain HTTP (no appliance certificates to check) or
the site is the service's own; 422 the PEM is not one CA certificate valid now; 404 removing
a site that has no added root.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from hybridvoice.cms.guard import audit_change

from .api import ApiError
from .api_mtls import ApplianceAuth
from .site_roots import SiteRootError, parse_root
from .store import TenantStore

__all__ = ["RootIn", "add_trust_routes"]


class RootIn(BaseModel):
    """A site's root certificate in PEM."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(min_length=1, max_length=16_384)


def _row(site: str, cert: x509.Certificate, source: str) -> dict[str, Any]:
    return {
        "site": site,
        "source": source,
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def add_trust_routes(app: FastAPI, store: TenantStore, auth: ApplianceAuth | None) -> None:
    """Add the site-roots routes to the online API ``app``; the stored roots are trusted now."""
    if auth is not None:
        auth.set_added({s: c for s, c in store.site_roots.all().items() if s not in auth.site_cas})

    def need_auth() -> ApplianceAuth:
        if auth is None:
            raise ApiError(
                409, "this online API is plain HTTP: appliances authenticate with tokens, "
                "no site root is checked", "serve the API over https ([Online] ServiceURL "
                "https://...) to authenticate appliances with their site certificates",
            )  # fmt: skip
        return auth

    def check_site(site: str, trust: ApplianceAuth) -> None:
        if not site.isprintable() or not 1 <= len(site) <= 64 or " " in site:
            raise ApiError(422, f"site: 1-64 printable characters without spaces, got {site!r}",
                           "name it as its appliances' [Common] SiteName", "site")  # fmt: skip
        if site in trust.site_cas:
            raise ApiError(
                409, f"site {site!r} is this online service's own: its root comes from the "
                "site PKI", "renew or replace it with `hybridvoice ca` on this host",
            )  # fmt: skip

    @app.get("/v1/site-roots")
    async def list_roots() -> list[dict[str, Any]]:
        trust = need_auth()
        rows = [_row(s, c, "settings") for s, c in sorted(trust.site_cas.items())]
        return rows + [_row(s, c, "added") for s, c in sorted(trust.added.items())]

    @app.put("/v1/site-roots/{site}")
    async def put_root(site: str, body: RootIn, request: Request) -> dict[str, Any]:
        trust = need_auth()
        check_site(site, trust)
        try:
            cert = parse_root(body.root, datetime.datetime.now(datetime.UTC))
        except SiteRootError as exc:
            raise ApiError(422, str(exc), "give the site's root.pem (`hybridvoice ca "
                           "export-root` on one of its appliances)", "root") from exc  # fmt: skip
        before = trust.added.get(site)
        store.site_roots.put(site, cert, time.time())
        trust.set_added({**trust.added, site: cert})
        row = _row(site, cert, "added")
        audit_change(request, "site-root.set", site,
                     None if before is None else _row(site, before, "added"), row)  # fmt: skip
        return row

    @app.delete("/v1/site-roots/{site}")
    async def delete_root(site: str, request: Request) -> dict[str, Any]:
        trust = need_auth()
        check_site(site, trust)
        before = trust.added.get(site)
        if before is None or not store.site_roots.remove(site):
            raise ApiError(404, f"site {site!r} has no added root",
                           "GET /v1/site-roots lists them")  # fmt: skip
        trust.set_added({s: c for s, c in trust.added.items() if s != site})
        audit_change(request, "site-root.remove", site, _row(site, before, "added"), None)
        return {"site": site, "removed": True}
