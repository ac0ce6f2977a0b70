"""The errors of the site PKI, each saying what went wrong and what to do next.

A CA export that cannot be read is either not a PKCS#12 file at all (RFC 7292 §4: the PFX is
one DER ``SEQUENCE``; a truncated or foreign file fails that framing) or one whose integrity
check fails (RFC 7292 §5.1: the MAC is keyed by the passphrase, so a wrong passphrase and an
altered file look the same; we say "wrong passphrase" first because it is by far the common
case).
"""

from __future__ import annotations

__all__ = [
    "CaFileCorruptError",
    "CaImportError",
    "CaPassphraseError",
    "CertificateFileError",
    "IssueError",
    "NoSiteCaError",
    "PkiError",
    "SiteCaDamagedError",
    "TrustError",
]


class PkiError(Exception):
    """Something the site PKI could not do."""


class NoSiteCaError(PkiError):
    """The state directory has no site CA (made by the first start with TLS, or restored)."""


class SiteCaDamagedError(PkiError):
    """The site CA file of the state directory cannot be read."""


class CaImportError(PkiError):
    """A site CA export could not be imported."""


class CaPassphraseError(CaImportError):
    """The passphrase does not open the CA export (or the file was altered after export)."""


class CaFileCorruptError(CaImportError):
    """The CA export is not a readable PKCS#12 file, or holds no usable CA."""


class IssueError(PkiError):
    """A certificate cannot be issued as asked (no names, a bad CSR, a bad name)."""


class TrustError(PkiError):
    """A root offered to the trust store is not a CA certificate."""


class CertificateFileError(PkiError):
    """A certificate file (PEM or PKCS#12) cannot be read."""
