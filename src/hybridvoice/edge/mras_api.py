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

Input limits (what the listener takes from a peer that is not the online service, or a
broken one): a body of at most :data:`MAX_BODY` bytes (413 before it is read); a POST that is
not ``Content-Type: application/json`` gets 415, a body that is not UTF-8 JSON 400, both in
the ``{"error", "hint"}`` form and counted as ``refused_invalid``; a connection that takes
longer than :data:`REQUEST_TIMEOUT` seconds to deliver its request (or sends nothing) is
closed (``hybridvoice.net.http``, ``request_timeout``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from hybridvoice.media.mras import MrasIssuer

from .mras_trust import OnlineNames, client_identity

__all__ = ["BODY_HINT", "MAX_BODY", "MAX_USER", "REQUEST_TIMEOUT", "CredentialsIn",
           "create_mras_api"]  # fmt: skip

#: the longest ``user`` MRAS issues credentials for (the online service checks it first)
MAX_USER = 256
#: the largest request body the MRAS listener reads
MAX_BODY = 4096
#: seconds a connection may take to deliver its whole request
REQUEST_TIMEOUT = 10.0
_HINT = 'send {"user": "<the user\'s SIP URI>"} (printable, at most 256 characters)'
#: what a 413 says
BODY_HINT = f"MRAS takes one small JSON object: {_HINT}"


class CredentialsIn(BaseModel):
    """What the online service asks for: credentials for ``user`` (its SIP URI)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=MAX_USER, pattern=r"^[\x21-\x7e]+$")


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
        return JSONResponse({"error": f"invalid request: {reasons}", "hint": _HINT}, 422)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that does not decode
            counters["refused_invalid"] += 1
        error = f"{request.method} {request.url.path}: {exc.detail}"[:200]
        hint = f"POST /mras/v1/credentials: {_HINT}"
        return JSONResponse({"error": error, "hint": hint}, exc.status_code, exc.headers)

    @app.middleware("http")
    async def json_only(request: Request, call_next: Any) -> Any:
        kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if request.method == "POST" and kind != "application/json":
            counters["refused_invalid"] += 1
            return JSONResponse(
                {"error": f"Content-Type {kind or '(none)'} is not application/json"[:200],
                 "hint": f"set Content-Type: application/json and {_HINT}"},
                415,
            )  # fmt: skip
        return await call_next(request)

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
