"""The answers of the routes :func:`hybridvoice.cms.guard.protect` adds to both APIs (tokens
and the audit log), as models for their OpenAPI documents (docs/api.md). A token's hash is
never in them; its secret only in the answer that created it."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from .api_errors import Answers

__all__ = ["GUARD_ANSWERS", "TokenOut", "TokensOut"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(_Out):
    id: str
    name: str
    scope: str
    created_at: float
    revoked_at: float | None


class TokenMadeOut(TokenOut):
    token: str  # the secret: shown in this answer only


class TokensOut(_Out):
    tokens: list[TokenOut]


class AuditEntryOut(_Out):
    id: int
    at: float
    token_id: str
    token_name: str
    source: str
    operation: str
    target: str
    status: int
    before: Any
    after: Any


class AuditOut(_Out):
    entries: list[AuditEntryOut]


GUARD_ANSWERS: Final[Answers] = {
    ("GET", "/v1/tokens"): TokensOut,
    ("POST", "/v1/tokens"): TokenMadeOut,
    ("DELETE", "/v1/tokens/{token_id}"): TokenOut,
    ("GET", "/v1/audit"): AuditOut,
}
