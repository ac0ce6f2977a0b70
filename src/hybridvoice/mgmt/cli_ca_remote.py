"""``hybridvoice ca status --appliance URL`` and ``ca renew --appliance URL``: the site CA of
an appliance reached over its management API (``GET /v1/ca/certificates``, ``POST
/v1/ca/renew``; docs/api.md), printed as the local commands print it."""

from __future__ import annotations

import datetime

from hybridvoice.pki.expiry import Expiry

from .ca_ops import Renewed
from .cli_admin import api

__all__ = ["renew_remote", "status_remote"]


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def status_remote(appliance: str) -> tuple[str, tuple[Expiry, ...]]:
    """(where the appliance keeps its PKI, its certificates soonest expiry first)."""
    answer = api("GET", appliance, "/v1/ca/certificates")
    report = tuple(
        Expiry(name=c["name"], subject=c["subject"], not_after=_time(c["not_after"]),
               days_left=int(c["days_left"]), warn=bool(c["warn"]))
        for c in answer["certificates"]
    )  # fmt: skip
    return f"{appliance} ({answer['directory']})", report


def renew_remote(appliance: str, name: str | None, ca: bool) -> list[Renewed]:
    """What the appliance renewed."""
    hints = {404: f"hybridvoice ca status --appliance {appliance} lists the certificates"}
    answer = api("POST", appliance, "/v1/ca/renew", {"name": name, "ca": ca}, hints=hints)
    return [Renewed(r["name"], r.get("generation"), _time(r["not_after"]))
            for r in answer["renewed"]]  # fmt: skip
