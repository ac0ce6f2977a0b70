"""Who may call a management API, and what they changed: one guard for both APIs.

:func:`protect` puts a FastAPI app (the online service's API, an appliance's API) behind
bearer tokens (RFC 6750) and an audit log:

- Every request needs ``Authorization: Bearer <token>`` (:mod:`hybridvoice.cms.tokens`); the
  check runs before routing and before the body is read, so an anonymous client costs one
  header lookup. None or an unknown/revoked token: 401 with ``WWW-Authenticate: Bearer``
  (``error="invalid_token"`` for a bad one, RFC 6750 §3.1) and a hint. GET/HEAD need any
  scope; other methods need ``admin``, or ``appliance`` on the routes the app lists in
  ``appliance_writes``; else 403 (``error="insufficient_scope"``) with a hint. No route is
  exempt, health and ``/metrics`` included: what they tell (tenant, versions, counts) is not
  for anyone who can reach the port, and probes and Prometheus send a read token.
- Every write request with a valid token leaves one audit row (:mod:`hybridvoice.cms.audit`)
  when it ends, whatever its status: the handler names the operation and target and gives
  the object before and after with :func:`audit_change`; without that (a refused request,
  a route that forgot) the row names the route. A handler whose request changed nothing
  (a steady heartbeat) says so with :func:`audit_skip`.
- ``/v1/tokens`` (list, create, revoke) and ``/v1/audit`` on the app, for the CLI.
- Validation errors (422) name the field and the reason and quote the input only when it is
  short, truncated: a large bad value is never echoed.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from .api_errors import ErrorShape, add_answers, document
from .audit import AuditLog
from .guard_answers import GUARD_ANSWERS
from .tokens import Scope, Token, TokenError, TokenStore, scope_allows

__all__ = [
    "Access",
    "Caller",
    "audit_after",
    "audit_change",
    "audit_skip",
    "caller_of",
    "invalid_request",
    "protect",
    "short_text",
]

_log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Message, Receive, Send], Awaitable[None]]

_T = TypeVar("_T")
_READS: Final = frozenset({"GET", "HEAD"})
_BEARER: Final = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)
_MAX_SHOWN: Final = 40  # characters of an invalid input quoted back
_MAX_TEXT: Final = 200  # characters of a field name or reason
_MAX_DETAILS: Final = 20  # errors listed in one 422


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request: the token (never the secret) and the source address."""

    token: Token
    source: str


class Access:
    """The tokens and the audit log of one API, tables of one SQLite database."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.tokens = TokenStore(db, lock)
        self.audit = AuditLog(db, lock)
        self._own: sqlite3.Connection | None = None

    @classmethod
    def open(cls, path: str | Path = ":memory:") -> Access:
        """Tokens and audit log in a database of their own (an appliance's ``access.db``)."""
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        access = cls(db, threading.RLock())
        access._own = db
        return access

    def close(self) -> None:
        """Close a database :meth:`open` opened (the tenant store closes its own)."""
        if self._own is not None:
            self._own.close()
            self._own = None


# --- what handlers call -------------------------------------------------------------------------


def caller_of(request: Request) -> Caller:
    """The caller the guard let through (every route of a protected app has one)."""
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):
        raise RuntimeError("the app is not behind hybridvoice.cms.guard.protect")
    return caller


def audit_change(
    request: Request, operation: str, target: str, before: Any = None, after: Any = None
) -> None:
    """Name this write for the audit log: ``operation`` (``user.set``), its ``target``, and
    the object before and after (JSON-able; secrets are masked when written)."""
    request.scope.setdefault("state", {})["audit"] = (operation, target, before, after)


def audit_after(request: Request, after: _T) -> _T:
    """Give the audit row the object as it is after the change (what the route returns)."""
    state = request.scope.setdefault("state", {})
    named = state.get("audit")
    if named:
        state["audit"] = (*named[:3], after)
    return after


def audit_skip(request: Request) -> None:
    """This write changed nothing worth a row (a heartbeat that reports what is known)."""
    request.scope.setdefault("state", {})["audit"] = None


# --- the guard ----------------------------------------------------------------------------------


def _answer(status: int, error: str, hint: str, challenge: str | None = None) -> JSONResponse:
    """An error answer; a refusal also closes the connection (``challenge`` given), so the
    server does not read and discard a body the request may still be sending."""
    headers = {"WWW-Authenticate": challenge, "Connection": "close"} if challenge else None
    return JSONResponse({"error": error, "hint": hint}, status, headers)


_NO_TOKEN: Final = _answer(
    401, "this API needs a bearer token",
    "send Authorization: Bearer <token>; `hybridvoice token create` makes one (`hybridvoice up` "
    "writes a lab admin token to the user's config directory, where the CLI finds it)",
    'Bearer realm="hybridvoice"',
)  # fmt: skip
_BAD_TOKEN: Final = _answer(
    401, "the bearer token is not valid (malformed, unknown or revoked)",
    "`hybridvoice token list` shows the tokens; make a new one with `hybridvoice token create`",
    'Bearer realm="hybridvoice", error="invalid_token"',
)  # fmt: skip


class _Guard:
    """ASGI middleware: authenticate, authorise by method and route, audit the writes."""

    def __init__(
        self,
        app: AsgiApp,
        access: Access,
        appliance_writes: Sequence[tuple[str, re.Pattern[str]]] = (),
    ) -> None:
        self.app, self.access, self.appliance_writes = app, access, appliance_writes

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = str(client[0]) if client else "-"
        preset = scope.get("state", {}).get("caller")  # authenticated in front (mutual TLS)
        token = preset.token if isinstance(preset, Caller) else self._token(scope)
        if token is None:
            await self._refuse(scope, receive, send, source)
            return
        method = str(scope["method"])
        need = self._need(method, str(scope["path"]))
        caller = Caller(token, source)
        if not scope_allows(token.scope, need):
            self._record(caller, f"{method} {scope['path']}", str(scope["path"]), 403)
            await self._deny(caller, need, method)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["caller"] = caller
        if method in _READS:
            await self.app(scope, receive, send)
            return
        await self._write(scope, receive, send, caller)

    def _token(self, scope: Message) -> Token | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                match = _BEARER.fullmatch(value.decode("latin-1"))
                return None if match is None else self.access.tokens.verify(match.group(1))
        return None

    def _need(self, method: str, path: str) -> str:
        if method in _READS:
            return "read"
        for allowed, pattern in self.appliance_writes:
            if method == allowed and pattern.fullmatch(path):
                return "appliance"
        return "admin"

    @staticmethod
    def _deny(caller: Caller, need: str, method: str) -> JSONResponse:
        token = caller.token
        hint = (
            f"this needs a token with scope {need}; yours ({token.id}, {token.name!r}) has "
            f"scope {token.scope}: ask an admin for one (`hybridvoice token create --scope admin`)"
        )
        challenge = f'Bearer realm="hybridvoice", error="insufficient_scope", scope="{need}"'
        return _answer(403, f"token {token.id} may not {method} here", hint, challenge)

    @staticmethod
    async def _refuse(scope: Message, receive: Receive, send: Send, source: str) -> None:
        given = any(name == b"authorization" for name, _ in scope["headers"])
        _log.info("refused %s %s from %s: %s", scope["method"], scope["path"], source,
                  "bad token" if given else "no token")  # fmt: skip
        await (_BAD_TOKEN if given else _NO_TOKEN)(scope, receive, send)

    async def _write(self, scope: Message, receive: Receive, send: Send, caller: Caller) -> None:
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            state = scope.get("state", {})
            named = state.get("audit", ())
            if named is not None:
                path = str(scope["path"])
                route = getattr(scope.get("route"), "path", path)
                operation, target, before, after = named or (f"{scope['method']} {route}", path,
                                                             None, None)  # fmt: skip
                self._record(caller, operation, target, status, before=before, after=after)

    def _record(
        self, caller: Caller, operation: str, target: str, status: int, *,
        before: Any = None, after: Any = None,
    ) -> None:  # fmt: skip
        try:
            self.access.audit.record(
                token_id=caller.token.id, token_name=caller.token.name, source=caller.source,
                operation=operation, target=target, status=status, before=before, after=after,
            )  # fmt: skip
        except sqlite3.Error:  # the answer is sent; say loudly that the row is missing
            _log.exception("audit row lost: %s %s by token %s", operation, target, caller.token.id)


# --- 422 without echoing --------------------------------------------------------------------------


def short_text(text: str, limit: int = _MAX_TEXT) -> str:
    """``text``, cut at ``limit`` characters (saying how long it was) for error messages."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _detail(error: Mapping[str, Any]) -> dict[str, Any]:
    field = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    item: dict[str, Any] = {
        "field": short_text(field),
        "message": short_text(str(error.get("msg", ""))),
    }
    value = error.get("input")
    if isinstance(value, str):
        item["input"] = short_text(value, _MAX_SHOWN)
    elif isinstance(value, bool | int | float) and len(repr(value)) <= _MAX_SHOWN:
        item["input"] = value
    return item


def invalid_request(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    """The 422 of both APIs: each bad field and why, the input only when short (truncated
    otherwise), at most :data:`_MAX_DETAILS` of them."""
    found = list(errors)
    details = [_detail(e) for e in found[:_MAX_DETAILS]]
    text = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details)
    if len(found) > _MAX_DETAILS:
        text += f"; and {len(found) - _MAX_DETAILS} more"
    body = {
        "error": f"invalid request: {text}",
        "hint": "fix the fields listed in details and send the request again",
        "details": details,
    }
    return JSONResponse(body, 422)


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return invalid_request(exc.errors())


# --- tokens and the audit log over HTTP ---------------------------------------------------------


class TokenIn(BaseModel):
    """``POST /v1/tokens``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: StrictStr = Field(min_length=1, max_length=64)
    scope: Scope = "read"


def _routes(app: FastAPI, access: Access) -> None:
    tokens = access.tokens

    @app.get("/v1/tokens")
    async def token_list() -> dict[str, Any]:
        return {"tokens": [t.to_json() for t in tokens.tokens()]}

    @app.post("/v1/tokens", status_code=201)
    async def token_create(body: TokenIn, request: Request) -> dict[str, Any]:
        try:
            row, secret = tokens.create(body.name, body.scope)
        except TokenError as exc:
            return _answer(422, str(exc), "name the token, e.g. --name ci")  # type: ignore[return-value]
        audit_change(request, "token.create", row.id, None, row.to_json())
        return {**row.to_json(), "token": secret}

    @app.delete("/v1/tokens/{token_id}")
    async def token_revoke(token_id: str, request: Request) -> Any:
        before = tokens.get(token_id)
        if before is None:
            return _answer(404, f"no token {token_id!r}", "`hybridvoice token list` shows the ids")
        after = tokens.revoke(token_id)
        audit_change(request, "token.revoke", token_id, before.to_json(), after.to_json())
        return after.to_json()

    @app.get("/v1/audit")
    async def audit(
        since: Annotated[float | None, Query(description="epoch seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        operation: str | None = None,
        target: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        found = access.audit.entries(
            since=since, limit=limit, operation=operation, target=target, token=token
        )
        return {"entries": [e.to_json() for e in found]}


# --- putting it together ------------------------------------------------------------------------


def protect(
    app: FastAPI,
    access: Access,
    *,
    appliance_writes: Iterable[tuple[Literal["POST", "PUT", "PATCH", "DELETE"], str]] = (),
) -> None:
    """Put ``app`` behind ``access``'s tokens and audit log (see the module docstring);
    ``appliance_writes``: (method, path regex) of the writes an ``appliance`` token may do."""
    patterns = [(method, re.compile(path)) for method, path in appliance_writes]
    app.add_middleware(_Guard, access=access, appliance_writes=patterns)
    app.add_middleware(ErrorShape)  # outermost: the guard's refusals get the shape too
    document(app)
    add_answers(app, GUARD_ANSWERS)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    _routes(app, access)
