"""When each certificate of an appliance expires, and which need attention soon.

Validity is RFC 5280 §4.1.2.5 ``notAfter``; days left are whole days, rounded down, from ``now``
(negative once expired). An entry is flagged when :data:`WARN_DAYS` (30, as ``appliance status``
warns) or fewer are left.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from .ca import utc

__all__ = ["WARN_DAYS", "Expiry", "expiry_report"]

WARN_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class Expiry:
    """One certificate's end of validity."""

    name: str
    subject: str
    not_after: datetime.datetime
    days_left: int
    warn: bool

    @property
    def expired(self) -> bool:
        return self.days_left < 0


def expiry_report(
    certificates: Mapping[str, x509.Certificate],
    now: datetime.datetime,
    *,
    warn_days: int = WARN_DAYS,
) -> tuple[Expiry, ...]:
    """Every certificate of ``certificates`` (name -> certificate), soonest to expire first."""
    now = utc(now)
    entries = []
    for name, cert in certificates.items():
        ends = cert.not_valid_after_utc
        days = (ends - now) // datetime.timedelta(days=1)
        entries.append(Expiry(name, cert.subject.rfc4514_string(), ends, days, days <= warn_days))
    return tuple(sorted(entries, key=lambda e: (e.not_after, e.name)))
