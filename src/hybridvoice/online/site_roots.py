"""The roots of the sites an online service serves, kept in its tenant store.

An online service run for several sites trusts, for appliances, the root of each site's CA
(``docs/api-auth.md``): the site its own settings name (from its site PKI, fixed at start)
and the sites an admin adds with ``hybridvoice online trust-site --site S --root root.pem``
(``PUT /v1/site-roots/{site}``). The added roots live in a table of the tenant store's
database, outside the change feed (appliances never see them), and are taken without a
restart: :class:`~hybridvoice.online.api_mtls.ApplianceAuth` checks a certificate against the
root of the site it names, and the HTTPS server's context is rebuilt to trust the new set of
roots for the next handshakes.

A root is accepted only when it is a CA certificate that has not expired
(:func:`hybridvoice.pki.trust.check_root`, RFC 5280 §4.2.1.9).
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hybridvoice.pki.errors import TrustError
from hybridvoice.pki.trust import check_root

__all__ = ["SiteRootError", "SiteRoots", "parse_root"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS site_roots (
    site TEXT PRIMARY KEY, pem TEXT NOT NULL, added REAL NOT NULL
);
"""
#: the longest PEM accepted for one root (a certificate is 1-2 KiB)
MAX_PEM: Final = 16_384


class SiteRootError(ValueError):
    """A root that cannot be trusted for a site: what is wrong and what to give instead."""


def parse_root(pem: str, now: datetime.datetime) -> x509.Certificate:
    """The one CA certificate in ``pem``, checked as a trust anchor at ``now``."""
    if len(pem) > MAX_PEM:
        raise SiteRootError(f"root: {len(pem)} characters, at most {MAX_PEM}: give the root only")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii", "replace"))
    except ValueError as exc:
        raise SiteRootError(
            "root: no PEM certificate (-----BEGIN CERTIFICATE-----): give the site's root.pem "
            "(`hybridvoice ca export-root` on an appliance of the site)"
        ) from exc
    if len(certs) != 1:
        raise SiteRootError(f"root: {len(certs)} certificates, give exactly one: the site root")
    try:
        check_root(certs[0], now)
    except TrustError as exc:
        raise SiteRootError(f"root: {exc}") from exc
    return certs[0]


class SiteRoots:
    """The added site roots: a table of the tenant store's database."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db, self._lock = db, lock
        with lock:
            db.executescript(_SCHEMA)

    def all(self) -> dict[str, x509.Certificate]:
        """Site name -> root, every added site."""
        with self._lock:
            rows = self._db.execute("SELECT site, pem FROM site_roots ORDER BY site").fetchall()
        return {site: x509.load_pem_x509_certificate(pem.encode("ascii")) for site, pem in rows}

    def put(self, site: str, cert: x509.Certificate, now: float) -> None:
        """Trust ``cert`` for ``site`` (replacing the root it had)."""
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO site_roots VALUES (?, ?, ?)", (site, pem, now))

    def remove(self, site: str) -> bool:
        """Stop trusting ``site``'s added root; False when it had none."""
        with self._lock:
            gone = self._db.execute("DELETE FROM site_roots WHERE site = ?", (site,)).rowcount
        return bool(gone)
