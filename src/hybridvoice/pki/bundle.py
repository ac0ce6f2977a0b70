"""Reading a certificate file as an admin brings it: PEM (RFC 7468) or PKCS #12 (RFC 7292).

A PEM file may hold the private key (PKCS #8 or the traditional forms, encrypted or not: the
password opens it) and any number of certificates in any order; a PKCS #12 file holds the key,
its certificate and the extra certificates of the chain. The result keeps the certificates in
file order, the key's certificate first when it is found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import CertificateFileError

__all__ = ["CertificateBundle", "load_bundle"]

_KEY_BLOCK: Final = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class CertificateBundle:
    """The certificates of a file and its private key, if it had one."""

    certificates: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes | None


def _load_pem(data: bytes, password: bytes | None) -> CertificateBundle:
    try:
        certs = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        certs = ()
    key = None
    block = _KEY_BLOCK.search(data)
    if block is not None:
        encrypted = b"ENCRYPTED" in block.group(1) or b"Proc-Type: 4,ENCRYPTED" in block.group(0)
        if encrypted and not password:
            raise CertificateFileError("the private key is encrypted: give its password")
        try:
            key = serialization.load_pem_private_key(
                block.group(0), password=password if encrypted else None
            )
        except (ValueError, TypeError) as exc:
            raise CertificateFileError(
                f"the private key cannot be read (wrong password?): {exc}"
            ) from exc
    if not certs:
        raise CertificateFileError("no certificate in the PEM file (BEGIN CERTIFICATE)")
    return CertificateBundle(certs, key)


def load_bundle(data: bytes, password: str | None = None) -> CertificateBundle:
    """The certificates and key in ``data``, PEM or PKCS #12 (told apart by the PEM armour)."""
    secret = password.encode() if password else None
    if b"-----BEGIN" in data:
        return _load_pem(data, secret)
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, secret)
    except ValueError as exc:
        raise CertificateFileError(
            "neither PEM nor a PKCS#12 file this password opens: check the password, "
            "or export the certificate again with its key and chain"
        ) from exc
    certs = (*((cert,) if cert is not None else ()), *extra)
    if not certs:
        raise CertificateFileError("the PKCS#12 file holds no certificate")
    return CertificateBundle(certs, key)
