"""One error shape and one OpenAPI document for both management APIs (RFC 9110 §15.5, §15.6).

Every answer with a status of 400 or more is JSON ``{"error": ..., "field": ..., "hint": ...}``
(RFC 8259), whoever made it: the guard's 401 and 403, a handler's 404 or 409, pydantic's 422,
FastAPI's own 404 and 405 for an unknown path or method. ``field`` names the request field the
error is about (``"name"``, ``"query.limit"``, a settings key) or is ``null`` when the error is
about the request as a whole. Keys a handler adds (``details``, ``problems``, ``version``) are
kept.

:class:`ErrorShape` is an ASGI middleware, outermost, that checks the shape of each error
answer as it leaves, so a route that raises :class:`fastapi.HTTPException` (whose body FastAPI
wraps in ``{"detail": ...}``) or a new route that forgot still answers in the shape the
OpenAPI document promises. :func:`document` makes that document: FastAPI's own, with the
:class:`ErrorOut` schema and the 401, 403 and 422 answers every operation can give.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

__all__ = [
    "OPENAPI_URL",
    "Answer",
    "Answers",
    "ErrorOut",
    "ErrorShape",
    "add_answers",
    "document",
    "shaped",
]

OPENAPI_URL: Final = "/v1/openapi.json"
"""Where both APIs serve their OpenAPI document (behind a token, as every route)."""

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Message, Receive, Send], Awaitable[None]]

_HINT: Final = f"GET {OPENAPI_URL} describes the API's operations, fields and answers"


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer of both APIs."""

    error: str
    field: str | None = None
    hint: str


def _field_of(body: dict[str, Any]) -> str | None:
    for key, name in (("details", "field"), ("problems", "key")):
        items = body.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            value = items[0].get(name)
            if isinstance(value, str) and value:
                return value
    return None


def shaped(status: int, data: bytes) -> dict[str, Any]:
    """The body of an error answer (``data``, JSON or not) in the shape above."""
    try:
        parsed: Any = json.loads(data) if data else None
    except (ValueError, UnicodeDecodeError):
        parsed = data.decode("utf-8", "replace").strip() or None
    body: dict[str, Any] = dict(parsed) if isinstance(parsed, dict) else {}
    detail = body.pop("detail", None) if "error" not in body else None
    if isinstance(detail, dict):
        body = {**detail, **body}
    elif isinstance(detail, str):
        body["error"] = detail
    elif isinstance(parsed, str):
        body["error"] = parsed
    if not isinstance(body.get("error"), str) or not body["error"]:
        body["error"] = f"HTTP {status}"
    if not isinstance(body.get("field"), str | None) or "field" not in body:
        body["field"] = _field_of(body)
    if not isinstance(body.get("hint"), str) or not body["hint"]:
        body["hint"] = _HINT
    return body


class ErrorShape:
    """ASGI middleware: every answer of status 400 or more leaves as :class:`ErrorOut`."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":  # HEAD: no body to shape
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def watched(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(bytes(message.get("body", b"")))
            if message.get("more_body", False):
                return
            body = json.dumps(shaped(int(start["status"]), b"".join(chunks))).encode()
            headers = [
                (k, v) for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]  # fmt: skip
            headers += [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]  # fmt: skip
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, watched)


_ERROR_REF: Final = {"$ref": "#/components/schemas/ErrorOut"}

Answers = Mapping[tuple[str, str], type[BaseModel]]


class Answer(BaseModel):
    """The base of the routes' answer models: nothing beyond the fields they name."""

    model_config = ConfigDict(extra="forbid")


"""(method, route path) -> the model of its success answer, for routes whose handlers return
plain JSON objects (FastAPI then documents no schema for them)."""


def add_answers(app: FastAPI, answers: Answers) -> None:
    """Document ``answers`` in ``app``'s OpenAPI document (:func:`document`)."""
    known = getattr(app.state, "answers", None)
    app.state.answers = {**(known or {}), **answers}
    app.openapi_schema = None


def _describe(doc: dict[str, Any], answers: Answers) -> None:
    schemas = doc["components"]["schemas"]
    template = "#/components/schemas/{model}"
    for (method, path), model in answers.items():
        operation = doc.get("paths", {}).get(path, {}).get(method.lower())
        if operation is None:
            continue
        schema = model.model_json_schema(ref_template=template, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        ok = next((s for s in operation["responses"] if s.startswith("2")), "200")
        content = {"application/json": {"schema": {"$ref": template.format(model=model.__name__)}}}
        operation["responses"].setdefault(ok, {"description": "done"})["content"] = content


def _answer(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": _ERROR_REF}}}


_COMMON: Final = {
    "401": "no bearer token, or not a valid one",
    "403": "the token's scope does not allow this operation",
    "404": "no such object or path",
    "422": "a field of the request is not valid: field names it",
}


def document(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with the error shape on every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, routes=app.routes,
            description=app.description or None,
        )  # fmt: skip
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorOut"] = ErrorOut.model_json_schema()
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for path_item in doc.get("paths", {}).values():
            for method, operation in path_item.items():
                answers = operation.setdefault("responses", {})
                for status, text in _COMMON.items():
                    if status == "403" and method in ("get", "head"):
                        continue
                    answers[status] = _answer(text)
                for status in [s for s in answers if s[0] in "45" and s not in _COMMON]:
                    answers[status] = _answer(answers[status].get("description", "refused"))
        _describe(doc, getattr(app.state, "answers", {}))
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
