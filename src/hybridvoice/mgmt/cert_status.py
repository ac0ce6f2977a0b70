"""Certificate expiry for ``hybridvoice appliance status`` (RFC 5280 §4.1.2.5 ``notAfter``).

:func:`certificate_rows` reads the site PKI of a running appliance (``<state dir>/pki``, what
``hybridvoice up`` made) with :func:`hybridvoice.pki.expiry_report`: every certificate (the
site CA, the roles' certificates, imported roots, the external edge certificate), soonest to
expire first, with ``warn`` set 30 days (:data:`~hybridvoice.pki.WARN_DAYS`) or fewer before
it expires. :func:`warnings` words what to do about each, for the table and for ``--json``.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from hybridvoice.pki import WARN_DAYS, PkiError, PkiStore, expiry_report

__all__ = ["certificate_rows", "warnings"]


def certificate_rows(pki_dir: Path | None, now: datetime.datetime) -> list[dict[str, Any]]:
    """Every certificate of the site PKI in ``pki_dir``, soonest expiry first (none without
    a site CA there)."""
    if pki_dir is None:
        return []
    store = PkiStore(pki_dir)
    try:
        if not store.has_ca():
            return []
        report = expiry_report(store.certificates(), now)
    except (PkiError, OSError, ValueError) as exc:
        return [{"name": "pki", "subject": f"cannot read {pki_dir}: {exc}", "not_after": None,
                 "days_left": None, "warn": True, "expired": False}]  # fmt: skip
    return [
        {"name": e.name, "subject": e.subject, "not_after": e.not_after.isoformat(),
         "days_left": e.days_left, "warn": e.warn, "expired": e.expired}
        for e in report
    ]  # fmt: skip


def warnings(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per certificate that needs attention: what and what to type."""
    found = []
    for row in rows:
        if not row.get("warn"):
            continue
        name, left = row["name"], row.get("days_left")
        if left is None:
            found.append(f"{name}: {row['subject']}")
            continue
        what = "expired" if row.get("expired") else f"expires in {left} days"
        fix = "hybridvoice ca renew --ca" if name == "ca" else "hybridvoice ca renew"
        if name.startswith("trust:"):
            fix = "import the gateway's renewed root"
        elif name == "external":
            fix = "import the renewed external certificate"
        found.append(f"certificate {name} {what} (warning at {WARN_DAYS} days): {fix}")
    return found
