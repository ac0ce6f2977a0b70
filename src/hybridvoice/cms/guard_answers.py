"""The answers of the routes :func:`hybridvoice.cms.guard.protect` adds to both APIs (tokens
and the audit log), as models for their OpenAPI documents (docs/api.md). A token's hash is
never in them; its secret only in the answer that created it."""

from __future__ import annotations

from typing import Final

from .api_errors import Answer, Answers
from .audit import AuditEntry

__all__ = ["GUARD_ANSWERS", "TokenOut", "TokensOut"]


class TokenOut(Answer):
    id: str
    name: str
    scope: str
    created_at: float
    revoked_at: float | None


class TokenMadeOut(TokenOut):
    token: str  # the secret: shown in this answer only


class TokensOut(Answer):
    tokens: list[TokenOut]


class AuditOut(Answer):
    entries: list[AuditEntry]  # the log's own rows


GUARD_ANSWERS: Final[Answers] = {
    ("GET", "/v1/tokens"): TokensOut,
    ("POST", "/v1/tokens"): TokenMadeOut,
    ("DELETE", "/v1/tokens/{token_id}"): TokenOut,
    ("GET", "/v1/audit"): AuditOut,
}
