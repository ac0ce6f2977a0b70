"""The appliance API's call record answers as models, for its OpenAPI document (docs/api.md).

``GET /v1/calls`` and ``GET /v1/calls/{call_id}`` answer :class:`CallRecord` rows as JSON
(``jsonable_encoder``: times as ISO 8601, enums as their values); these models describe them
so that the document, a client or schemathesis can check them.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from pydantic import RootModel

from hybridvoice.cms.api_errors import Answers, add_answers
from hybridvoice.mediation.records_model import CallRecord

__all__ = ["APPLIANCE_ANSWERS", "add_appliance_answers"]


class CallOut(RootModel[CallRecord]):
    """One call record."""


class CallsOut(RootModel[list[CallRecord]]):
    """Call records, newest first."""


APPLIANCE_ANSWERS: Final[Answers] = {
    ("GET", "/v1/calls"): CallsOut,
    ("GET", "/v1/calls/{call_id}"): CallOut,
}


def add_appliance_answers(app: FastAPI) -> None:
    """Describe :data:`APPLIANCE_ANSWERS` in ``app``'s OpenAPI document."""
    add_answers(app, APPLIANCE_ANSWERS)
