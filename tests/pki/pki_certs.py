"""Certificates for the pki tests, built with cryptography directly so each test can break
exactly one thing (a name, a date, a key, a link of the chain)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
POOL = "ap.contoso.com"
DOMAINS = ("contoso.com", "fabrikam.com")
PEM = serialization.Encoding.PEM


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    subject: str,
    public: ec.EllipticCurvePublicKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: Sequence[str] = (),
    begins: datetime.datetime = NOW - DAY,
    ends: datetime.datetime = NOW + 365 * DAY,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(begins)
        .not_valid_after(ends)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Chain:
    """An external edge certificate as a public CA issues it: root -> intermediate -> leaf."""

    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey

    def pem(
        self, *, with_key: bool = True, certs: Sequence[x509.Certificate] | None = None
    ) -> bytes:
        chosen = certs if certs is not None else (self.leaf, self.intermediate, self.root)
        body = b"".join(c.public_bytes(PEM) for c in chosen)
        if not with_key:
            return body
        return (
            self.leaf_key.private_bytes(
                PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            + body
        )

    def with_leaf(self, **changes: object) -> Chain:
        """The same chain with a new leaf (same key) made with ``changes`` to the defaults."""
        args: dict[str, object] = {"subject": POOL, "sans": good_sans()}
        args.update(changes)
        leaf = certificate(
            str(args.pop("subject")),
            self.leaf_key.public_key(),
            "Public Issuing CA",
            self.intermediate_key,
            **args,  # type: ignore[arg-type]
        )
        return replace(self, leaf=leaf)


def good_sans() -> list[str]:
    return [POOL, *(f"sip.{d}" for d in DOMAINS)]


def chain() -> Chain:
    root_key, intermediate_key, leaf_key = key(), key(), key()
    root = certificate("Public Root CA", root_key.public_key(), "Public Root CA", root_key, ca=True,
                       ends=NOW + 3650 * DAY)  # fmt: skip
    intermediate = certificate("Public Issuing CA", intermediate_key.public_key(),
                               "Public Root CA", root_key, ca=True,
                               ends=NOW + 1825 * DAY)  # fmt: skip
    leaf = certificate(POOL, leaf_key.public_key(), "Public Issuing CA", intermediate_key,
                       sans=good_sans())  # fmt: skip
    return Chain(leaf, leaf_key, intermediate, intermediate_key, root, root_key)
