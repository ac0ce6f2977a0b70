"""The dashboard's door: the login form, the session cookie, the static files, and the
security headers of every page. ASGI middleware in front of :func:`hybridvoice.cms.guard.protect`.

The dashboard uses the API's own bearer tokens (RFC 6750), nothing else:

- ``POST /ui/login`` takes a token from the form, checks it with the API's token store and
  sets it as a cookie (``hybridvoice_token_<port>``: one per dashboard of a host;
  ``HttpOnly``: no script reads it; ``SameSite=Strict``: no other site's page sends it,
  RFC 6265bis §5.4.7; ``Secure`` over HTTPS; ``Path=/``). A request whose
  ``Origin`` names another origin than the one it was sent to is refused (403): another site
  cannot log a browser in with its own token.
- The cookie stands for ``Authorization: Bearer`` on ``GET``/``HEAD`` of the dashboard's own
  pages only (``/`` and ``/ui/...``, and a call's ``/v1/calls/<id>/trace.pcap`` that the
  call's page links to): a cookie never authorises a change, so a forged
  cross-site request can change nothing (the views are all reads), and the guard behind
  sees an ordinary bearer token (read scope is enough). Other ``/v1/...`` routes never look
  at it.
- Without a token (or with one that is revoked) a page answers 401 with the login form;
  ``/ui/events`` (the live stream) answers 401 with no body; the trace (an API route) answers
  a client that does not ask for HTML as the API does, in JSON (docs/api.md).
- ``/ui/static/<name>`` (the stylesheet, the script) is served without a token: they hold
  no data.

Every dashboard answer carries a Content-Security-Policy that allows only this origin's
script and stylesheet (no inline script, no inline style, no frames), ``nosniff``,
``Referrer-Policy: same-origin`` (a browser then sends our ``Origin`` with the login form)
and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any, Final

from hybridvoice.cms.api_errors import shaped
from hybridvoice.cms.guard import Access

__all__ = ["COOKIE", "DashboardGate", "cookie_name", "is_dashboard_path"]

_API_HINT: Final = "send Authorization: Bearer <token>; `hybridvoice token create` makes one"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Message, Receive, Send], Awaitable[None]]
Render = Callable[[str, int], str]
"""The login page: (error text, status) -> HTML."""

COOKIE: Final = "hybridvoice_token"
_MAX_FORM: Final = 4096
_STATIC: Final = {"dash.css": "text/css; charset=utf-8",
                  "dash.js": "text/javascript; charset=utf-8"}  # fmt: skip
_HEADERS: Final = (
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
)  # fmt: skip


def is_dashboard_path(path: str) -> bool:
    """The dashboard's pages, and the one API read a page links to: a call's SIP trace."""
    if path.startswith("/v1/calls/") and path.endswith("/trace.pcap"):
        return True
    return path == "/" or path.startswith("/ui/")


def _header(scope: Message, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cookie_name(port: int | None) -> str:
    """The session cookie of the dashboard on ``port``: browsers send a host's cookies to
    every port of it (RFC 6265 §8.5), and the online service's and an appliance's dashboards
    on one host take different tokens: each keeps its own cookie."""
    return COOKIE if port is None else f"{COOKIE}_{port}"


def _port(scope: Message) -> int | None:
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else None


def cookie_token(scope: Message) -> str | None:
    raw = _header(scope, b"cookie")
    if raw is None:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(cookie_name(_port(scope)))
    return None if morsel is None or not morsel.value else morsel.value


class DashboardGate:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: AsgiApp, access: Access, login_page: Render) -> None:
        self.app, self.access, self.login_page = app, access, login_page
        self._static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
                        for name in _STATIC}  # fmt: skip

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not is_dashboard_path(path):
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        secured = _secure(send)
        if path.startswith("/ui/static/"):
            await self._static_file(path.removeprefix("/ui/static/"), method, secured)
            return
        if path == "/ui/login":
            await self._login(scope, receive, secured, method)
            return
        if path == "/ui/logout":
            await _redirect(secured, "/ui/login", _cookie("", scope, clear=True))
            return
        if method in ("GET", "HEAD") and _header(scope, b"authorization") is None:
            token = cookie_token(scope)
            if token is None or self.access.tokens.verify(token) is None:
                error = "" if token is None else "your token is no longer valid: log in again"
                await self._refuse(path, secured, error, clear=token is not None, scope=scope)
                return
            headers = [h for h in scope["headers"] if h[0] != b"cookie"]
            scope = {**scope, "headers": [*headers, (b"authorization", f"Bearer {token}".encode())]}
        await self.app(scope, receive, secured)

    async def _refuse(
        self, path: str, send: Send, error: str, *, clear: bool, scope: Message
    ) -> None:
        extra = [(b"www-authenticate", b'Bearer realm="hybridvoice"')]
        if clear:
            extra.append((b"set-cookie", _cookie("", scope, clear=True)))
        if path == "/ui/events":
            await _answer(send, 401, b"", "text/plain", extra)
            return
        if path.startswith("/v1/") and "text/html" not in (_header(scope, b"accept") or ""):
            # an API client, not a browser following the page's link: the API's own answer
            answer = shaped(401, json.dumps({"error": "this API needs a bearer token",
                                             "hint": _API_HINT}).encode())  # fmt: skip
            await _answer(send, 401, json.dumps(answer).encode(), "application/json", extra)
            return
        page = self.login_page(error, 401).encode()
        await _answer(send, 401, page, "text/html; charset=utf-8", extra)

    async def _static_file(self, name: str, method: str, send: Send) -> None:
        body = self._static.get(name)
        if body is None or method not in ("GET", "HEAD"):
            await _answer(send, 404, b"not found", "text/plain")
            return
        await _answer(send, 200, b"" if method == "HEAD" else body, _STATIC[name])

    async def _login(self, scope: Message, receive: Receive, send: Send, method: str) -> None:
        if method in ("GET", "HEAD"):
            await _answer(send, 200, self.login_page("", 200).encode(), "text/html; charset=utf-8")
            return
        if method != "POST":
            await _answer(send, 405, b"", "text/plain", [(b"allow", b"GET, POST")])
            return
        if not _same_origin(scope):
            page = self.login_page("refused: the form was sent from another site", 403)
            await _answer(send, 403, page.encode(), "text/html; charset=utf-8")
            return
        body = await _read_body(receive, _MAX_FORM)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body is not None else {}
        token = (form.get("token") or [""])[0].strip()
        if not token:
            error = "token: paste a bearer token (`hybridvoice token create --scope read`)"
        elif self.access.tokens.verify(token) is None:
            error = "token: not valid (malformed, unknown or revoked); `hybridvoice token list`"
        else:
            await _redirect(send, "/", _cookie(token, scope))
            return
        await _answer(send, 401, self.login_page(error, 401).encode(), "text/html; charset=utf-8")


def _secure(send: Send) -> Send:
    """``send`` with the dashboard's security headers added to the response start."""

    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", ())}
            extra = [(k, v) for k, v in _HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return secured


def _same_origin(scope: Message) -> bool:
    """Was the form sent from one of our own pages? A browser says where a request comes
    from in ``Sec-Fetch-Site`` (W3C Fetch Metadata) and ``Origin`` (RFC 6454 §7); a client
    that sends neither (curl) is not a browser another site can drive."""
    site = _header(scope, b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = _header(scope, b"origin")
    if origin is None or origin == "null":
        return origin is None or site == "same-origin"
    host = _header(scope, b"host") or ""
    scheme = str(scope.get("scheme", "http"))
    return origin.lower() == f"{scheme}://{host}".lower()


def _cookie(token: str, scope: Message, *, clear: bool = False) -> bytes:
    parts = [f"{cookie_name(_port(scope))}={token}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if scope.get("scheme") == "https":
        parts.append("Secure")
    if clear:
        parts.append("Max-Age=0")
    return "; ".join(parts).encode()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += bytes(message.get("body", b""))
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


async def _answer(
    send: Send, status: int, body: bytes, content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:  # fmt: skip
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode()), *(extra or [])]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, where: str, cookie: bytes) -> None:
    headers = [(b"location", where.encode()), (b"set-cookie", cookie),
               (b"content-length", b"0")]  # fmt: skip
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
