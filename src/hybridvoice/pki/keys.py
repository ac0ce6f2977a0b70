"""Key pairs and their serialisation for the site PKI.

The site CA and the role certificates use EC P-256 keys with ECDSA-SHA256 by default (RFC 5480
§2.1.1.1 names the curve, RFC 5758 §3.2 the signature): signing and TLS handshakes are an order
of magnitude cheaper than RSA at the same strength (128 bits, which RSA only reaches at 3072),
the keys and certificates are small, and every TLS stack the roles and current gateways run
(OpenSSL, GnuTLS, SChannel, the SBC firmwares that support Direct Routing) verifies ECDSA. A site
whose gateways only speak RSA picks ``"rsa"`` (RSA 2048, PKCS #1 v1.5 with SHA-256, RFC 4055)
when the CA is created; the choice holds for everything that CA issues.

Private keys at rest are PKCS #8 (RFC 5958 §2) in PEM, unencrypted: the files are mode 0600 and
the TLS adapter loads them without a prompt. Exported CA files are encrypted (see ``ca.py``).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

__all__ = [
    "KEY_KINDS",
    "KeyKind",
    "SigningKey",
    "generate_key",
    "key_kind",
    "key_pem",
    "load_signing_key",
    "public_matches",
    "signature_hash",
]

KeyKind = Literal["ec", "rsa"]
KEY_KINDS: Final[tuple[str, ...]] = get_args(KeyKind)
#: the keys this PKI signs with and issues
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_RSA_BITS: Final = 2048


def generate_key(kind: KeyKind = "ec") -> SigningKey:
    """A fresh key pair of ``kind`` (EC P-256 or RSA 2048), from the OS random source."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    raise ValueError(f"unknown key kind {kind!r}: one of {', '.join(KEY_KINDS)}")


def key_kind(key: SigningKey) -> KeyKind:
    """``"ec"`` or ``"rsa"``: what a key of this PKI is."""
    return "ec" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa"


def signature_hash() -> hashes.SHA256:
    """The digest every signature of this PKI uses."""
    return hashes.SHA256()


def key_pem(key: PrivateKeyTypes) -> bytes:
    """``key`` as unencrypted PKCS #8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(pem: bytes) -> SigningKey:
    """A key written by :func:`key_pem`; anything but EC or RSA is refused."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__}: EC or RSA only")
    return key


def public_matches(key: PrivateKeyTypes, public: PublicKeyTypes) -> bool:
    """Whether ``public`` is the public half of ``key`` (compared as SubjectPublicKeyInfo)."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == public.public_bytes(*spki)
