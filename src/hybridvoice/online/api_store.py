"""The online API's answer when the tenant's store cannot be reached (an instance on etcd,
docs/fleet.md): ``503 Service Unavailable`` (RFC 9110 §15.6.4) naming the members and what
each said, with ``Retry-After``, instead of a 500. Reads never reach the store (they come from
the instance's caches), so only writes can get it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hybridvoice.store.kv import StoreError

__all__ = ["add_store_errors"]

_HINT = (
    "the tenant's etcd cluster is unreachable or has no quorum: nothing was changed, or the "
    "error says the outcome is unknown; read the object again and retry once the cluster is back"
)


def add_store_errors(app: FastAPI) -> None:
    """Answer a store failure with 503 and what went wrong."""

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "hint": _HINT}, 503, {"Retry-After": "5"})
