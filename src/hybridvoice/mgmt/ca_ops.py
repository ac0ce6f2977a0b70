"""Renewing the site PKI's certificates (RFC 5280): one implementation for ``hybridvoice ca
renew`` on the machine and ``POST /v1/ca/renew`` on the appliance's API.

:func:`renew_certificates` is the original's Renew-CcServerCertificate (every certificate of
the PKI, or the one named: a new key and certificate, same names, next generation) and, with
``ca``, Update-CcCertificationAuthority (the site CA itself, same key kind and name). It
raises :class:`hybridvoice.pki.PkiError` (no site CA, no such certificate) before it changes
anything.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from hybridvoice.pki import PkiStore
from hybridvoice.pki.errors import PkiError

__all__ = ["Renewed", "renew_certificates"]


@dataclass(frozen=True, slots=True)
class Renewed:
    """One renewed certificate: ``ca`` for the site CA (which has no generation)."""

    name: str
    generation: int | None
    not_after: datetime.datetime


def renew_certificates(
    store: PkiStore, now: datetime.datetime, *, name: str | None = None, ca: bool = False
) -> list[Renewed]:
    """Renew ``name`` (None: every certificate), or with ``ca`` the site CA alone."""
    site_ca = store.load_ca()  # no site CA: PkiError before anything changes
    if ca:
        if name is not None:
            raise PkiError("renew the site CA or certificates, not both at once")
        renewed_ca = site_ca.renewed(now)
        store.save_ca(renewed_ca)
        return [Renewed("ca", None, renewed_ca.certificate.not_valid_after_utc)]
    known = store.names()
    if name is not None and name not in known:
        raise PkiError(f"no certificate {name!r} (known: {', '.join(known) or 'none'})")
    out: list[Renewed] = []
    for each in (name,) if name is not None else known:
        credential = store.renew(each, now)
        out.append(Renewed(each, credential.generation, credential.not_after))
    return out
