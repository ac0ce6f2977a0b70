"""The roots a site trusts: its own CA, plus the roots of gateways that bring their own chain.

A root is accepted only if it is a CA certificate (RFC 5280 §4.2.1.9 ``basicConstraints`` CA
true) whose validity has not ended; each imported root carries a label (the gateway it is for)
so an admin can list and remove it. :meth:`TrustStore.bundle_pem` is what a TLS adapter loads
as its CA file (``cadata``): the site root first, then the imported roots in label order.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .ca import utc
from .errors import TrustError

__all__ = ["TrustStore", "check_root"]


def check_root(cert: x509.Certificate, now: datetime.datetime) -> None:
    """Raise :class:`TrustError` unless ``cert`` can be a trust anchor at ``now``."""
    subject = cert.subject.rfc4514_string()
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise TrustError(
            f"{subject} is not a CA certificate (no basicConstraints CA): import the root "
            "certificate of the gateway's chain, not the gateway's own certificate"
        )
    if cert.not_valid_after_utc <= utc(now):
        raise TrustError(f"{subject} expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class TrustStore:
    """The site root and the imported roots by label; changes return a new store."""

    site_root: x509.Certificate
    imported: Mapping[str, x509.Certificate] = field(default_factory=lambda: MappingProxyType({}))

    def with_root(self, label: str, cert: x509.Certificate, now: datetime.datetime) -> TrustStore:
        """This store with ``cert`` trusted under ``label`` (replacing what had that label)."""
        if not label or not label.replace("-", "").replace(".", "").replace("_", "").isalnum():
            raise TrustError(f"{label!r} is not a label: letters, digits, '.', '-', '_'")
        check_root(cert, now)
        return TrustStore(self.site_root, MappingProxyType({**self.imported, label: cert}))

    def without(self, label: str) -> TrustStore:
        """This store without the root labelled ``label`` (unknown labels are an error)."""
        if label not in self.imported:
            raise TrustError(f"no imported root is labelled {label!r}")
        rest = {k: v for k, v in self.imported.items() if k != label}
        return TrustStore(self.site_root, MappingProxyType(rest))

    def roots(self) -> tuple[x509.Certificate, ...]:
        return (self.site_root, *(self.imported[k] for k in sorted(self.imported)))

    def bundle_pem(self) -> bytes:
        """Every trusted root in PEM, the site root first."""
        return b"".join(_pem(cert) for cert in self.roots())
