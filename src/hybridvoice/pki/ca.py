"""The site certificate authority: made once, shared by every appliance of the site.

The CA certificate follows RFC 5280: self-signed, ``basicConstraints`` CA with path length 0
(§4.2.1.9: it signs end-entity certificates only), ``keyUsage`` keyCertSign and cRLSign
(§4.2.1.3), a subject key identifier (§4.2.1.2, method 1: SHA-1 of the public key) and the same
value as authority key identifier (§4.2.1.1). It lives five years (the original's CA did);
``now`` is a parameter and validity starts :data:`BACKDATE` earlier, so an appliance whose clock
is a little behind accepts a fresh certificate.

Export and import (``Backup-CcCertificationAuthority`` / ``Restore-...`` of the original): one
PKCS #12 file (RFC 7292) holding the key and the certificate, encrypted with the passphrase
(PBES2 with PBKDF2 and AES-256-CBC, RFC 8018 §6.2, and an HMAC-SHA256 integrity MAC; what
``openssl pkcs12`` 3.x writes by default). :meth:`SiteCa.renewed` is ``Renew-CcCACertificate``:
a new certificate for the same key and name, so everything the old one issued still verifies.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .errors import CaFileCorruptError, CaPassphraseError
from .keys import KeyKind, SigningKey, generate_key, key_pem, public_matches, signature_hash

__all__ = ["BACKDATE", "CA_LIFETIME", "SiteCa", "create_ca", "export_ca", "import_ca"]

#: how long the site CA is valid (five years, one leap day included)
CA_LIFETIME: Final = datetime.timedelta(days=5 * 365 + 1)
#: validity starts this much before ``now`` (clock skew between appliances)
BACKDATE: Final = datetime.timedelta(hours=1)
_MIN_PASSPHRASE: Final = 8
_WHAT_NEXT: Final = (
    "copy the file exported on the site's first appliance again, or export the CA there anew"
)


def utc(now: datetime.datetime) -> datetime.datetime:
    """``now`` as an aware UTC time; a naive time is refused (it would be read as local)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (datetime.now(datetime.UTC))")
    return now.astimezone(datetime.UTC)


def key_usage(*, cert_sign: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    """``keyUsage`` for a CA (``cert_sign``) or an end entity (RFC 5280 §4.2.1.3)."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, slots=True)
class SiteCa:
    """The site CA: its certificate and signing key."""

    certificate: x509.Certificate
    key: SigningKey

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject

    @property
    def cert_pem(self) -> bytes:
        """The root certificate in PEM (``Export-CcRootCertificate``: what gateways import)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    def renewed(self, now: datetime.datetime) -> SiteCa:
        """A new CA certificate for the same key and name, valid :data:`CA_LIFETIME` from
        ``now``: certificates the old one issued keep verifying under the new one."""
        constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        path_length = constraints.value.path_length or 0
        return SiteCa(_ca_certificate(self.key, self.name, utc(now), path_length), self.key)


def _ca_certificate(
    key: SigningKey, name: x509.Name, now: datetime.datetime, path_length: int = 0
) -> x509.Certificate:
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, signature_hash())
    )


def create_ca(
    site: str,
    now: datetime.datetime,
    *,
    kind: KeyKind = "ec",
    organization: str = "hybridvoice",
    path_length: int = 0,
) -> SiteCa:
    """A new site CA named ``CN=<site> site CA, O=<organization>``; ``path_length`` 0 (it
    signs end entities only) unless it is a root above intermediates (the lab CA)."""
    if not site.strip():
        raise ValueError("the site name of a CA must not be empty")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{site.strip()} site CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    key = generate_key(kind)
    return SiteCa(_ca_certificate(key, name, utc(now), path_length), key)


def export_ca(ca: SiteCa, passphrase: str) -> bytes:
    """The CA as a passphrase-protected PKCS #12 file (at least 8 characters)."""
    if len(passphrase) < _MIN_PASSPHRASE:
        raise ValueError(f"the CA passphrase needs at least {_MIN_PASSPHRASE} characters")
    return pkcs12.serialize_key_and_certificates(
        b"hybridvoice site CA",
        ca.key,
        ca.certificate,
        None,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def _der_framed(data: bytes) -> bool:
    """Whether ``data`` is exactly one DER ``SEQUENCE`` (the outer PFX, RFC 7292 §4)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        length, header = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return False
        length, header = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return header + length == len(data)


def import_ca(data: bytes, passphrase: str) -> SiteCa:
    """The CA in a file made by :func:`export_ca`.

    Raises :class:`CaPassphraseError` when the passphrase does not open it and
    :class:`CaFileCorruptError` when it is not such a file; both say what to do next.
    """
    if not _der_framed(data):
        raise CaFileCorruptError(
            f"the CA file is not a PKCS#12 export ({len(data)} bytes, truncated or another "
            f"kind of file): {_WHAT_NEXT}"
        )
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, passphrase.encode())
    except ValueError as exc:
        raise CaPassphraseError(
            "the passphrase does not open the CA file: type the passphrase given when it was "
            f"exported; if it is right, the file was altered: {_WHAT_NEXT}"
        ) from exc
    if cert is None or key is None:
        raise CaFileCorruptError(f"the CA file holds no certificate and key: {_WHAT_NEXT}")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaFileCorruptError(
            f"the file holds the certificate of {cert.subject.rfc4514_string()}, which is not "
            f"a CA: {_WHAT_NEXT}"
        )
    if not isinstance(key, SigningKey) or not public_matches(key, cert.public_key()):
        raise CaFileCorruptError(
            f"the key in the CA file does not match its certificate: {_WHAT_NEXT}"
        )
    return SiteCa(cert, key)
