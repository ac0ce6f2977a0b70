"""MRAS, the edge's Media Relay Authentication Service, as a small JSON API.

``POST /mras/v1/credentials`` with ``{"user": "sip:alice@example.com"}`` answers TURN
credentials for that user in the TURN REST scheme (draft-uberti-behave-turn-rest-00 §2.2,
RFC 8489 §9.2 long-term credentials): ``username`` ``"<expiry>:<user>"``, ``password``
``base64(HMAC-SHA1(secret, username))``, ``ttl`` and ``expires`` (Unix seconds), and ``uris``
(RFC 7065 ``turn:`` URIs of the relay's external address, UDP and TCP). Only the online
service asks, over mutual TLS: the HTTPS server requires a client certificate from the site's
trusted roots, and a certificate that does not name the online service
(:class:`~.mras_trust.OnlineNames`) gets 403. ``GET /mras/v1/health`` says whether it runs.

Every answer is counted in :attr:`MrasCounters` (issued, refused by reason). The
secret never leaves the process. Wall time is injected (``wall``: Unix seconds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hybridvoice.media.mras import MrasIssuer

from .mras_trust import OnlineNames, client_identity

__all__ = ["CredentialsIn", "create_mras_api"]


class CredentialsIn(BaseModel):
    """What the online service asks for: credentials for ``user`` (its SIP URI)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")


def create_mras_api(
    issuer: MrasIssuer,
    uris: tuple[str, ...],
    *,
    online: OnlineNames,
    wall: Callable[[], float],
    counters: Counter[str],
) -> FastAPI:
    """The MRAS app: credentials from ``issuer`` for the online service's certificate."""
    app = FastAPI(title="hybridvoice MRAS", version="1", docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        counters["refused_invalid"] += 1
        fields = [".".join(str(x) for x in e["loc"][1:]) or "body" for e in exc.errors()]
        reasons = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, exc.errors(), strict=True))
        hint = 'send {"user": "<the user\'s SIP URI>"} (printable, at most 256 characters)'
        return JSONResponse({"error": f"invalid request: {reasons}", "hint": hint}, 422)

    @app.middleware("http")
    async def only_trusted(request: Request, call_next: Any) -> Any:
        identity = client_identity(request.scope)
        if not online.admits(identity):
            counters["refused_untrusted"] += 1
            who = f"a certificate for {identity}" if identity else "no client certificate"
            return JSONResponse(
                {"error": f"MRAS answers the online service only ({online}), not {who}",
                 "hint": "the online service asks with the site CA's `online` certificate, "
                 "which names [Common] OnlineSipFederationFqdn (else [Online] SIPAddresses)"},
                403,
            )  # fmt: skip
        return await call_next(request)

    @app.post("/mras/v1/credentials")
    async def credentials(body: CredentialsIn) -> dict[str, Any]:
        issued = issuer.issue(body.user, wall())
        counters["issued"] += 1
        return {
            "username": issued.username,
            "password": issued.password,
            "ttl": issuer.ttl,
            "expires": issued.expires,
            "uris": list(uris),
        }

    @app.get("/mras/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "uris": list(uris)}

    return app
