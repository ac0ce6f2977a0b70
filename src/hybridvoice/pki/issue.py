"""Certificates the site CA issues: the roles' server certificates and the gateways'.

Every one is an end-entity certificate (RFC 5280 §4.2.1.9 ``basicConstraints`` CA false) with
``keyUsage`` digitalSignature (plus keyEncipherment for RSA keys, §4.2.1.3), ``extKeyUsage``
serverAuth and clientAuth (§4.2.1.12: the roles use one certificate on both sides of mutual
TLS), the subject alternative names (§4.2.1.6: DNS names and IP addresses, which is what a SIP
peer matches, RFC 5922 §7.1) and key identifiers (§4.2.1.1-2). The subject is ``CN=<first DNS
name>``. A certificate lives two years, never beyond its CA.

:class:`Credential` is the plain data a TLS adapter loads: the certificate, its key and the chain
above it in PEM, with a ``generation`` that grows on every renewal so the adapter knows to build
new contexts for new handshakes (``Renew-CcServerCertificate``).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ca import BACKDATE, SiteCa, key_usage, utc
from .errors import IssueError
from .keys import KeyKind, generate_key, key_kind, key_pem, signature_hash

__all__ = [
    "SERVER_LIFETIME",
    "Credential",
    "IpAddress",
    "general_names",
    "is_dns_name",
    "issue_from_csr",
    "issue_server",
    "renew",
    "sans_of",
]

#: how long a server or gateway certificate is valid (two years)
SERVER_LIFETIME: Final = datetime.timedelta(days=2 * 365)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS: Final = re.compile(rf"(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}")


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate with its key, for one role or gateway.

    ``cert_pem`` is the certificate, ``chain_pem`` the CA certificates above it, ``key_pem``
    the unencrypted PKCS #8 key (empty for a certificate issued from a CSR: the key stays with
    whoever made the request). ``generation`` counts issues under this name: 1, then +1 per
    renewal.
    """

    name: str
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes
    generation: int = 1

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def full_chain_pem(self) -> bytes:
        """The certificate then its chain, as a TLS server sends it."""
        return self.cert_pem + self.chain_pem

    @property
    def bundle_pem(self) -> bytes:
        """Key, certificate and chain in one PEM (one file, so a reader never sees a new
        certificate with an old key)."""
        return self.key_pem + self.full_chain_pem

    @property
    def dns_names(self) -> tuple[str, ...]:
        return sans_of(self.certificate)[0]

    @property
    def ip_addresses(self) -> tuple[IpAddress, ...]:
        return sans_of(self.certificate)[1]

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc


def sans_of(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[IpAddress, ...]]:
    """The DNS names and IP addresses in ``cert``'s subject alternative names."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    return tuple(san.get_values_for_type(x509.DNSName)), _addresses(san)


def _addresses(san: x509.SubjectAlternativeName) -> tuple[IpAddress, ...]:
    """The single addresses among ``san``'s IP entries (a network entry names no host)."""
    return tuple(
        ip
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )


def is_dns_name(name: str) -> bool:
    """Whether ``name`` is a host name (RFC 1123 §2.1 labels, a leading ``*.`` allowed) and
    not an IP address."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return len(name) <= 253 and _DNS.fullmatch(name) is not None
    return False


def general_names(
    dns_names: Iterable[str], ips: Iterable[str | IpAddress]
) -> list[x509.GeneralName]:
    """The subject alternative names for ``dns_names`` and ``ips``: lower case, no trailing
    dot, no duplicates, DNS names first."""
    names: list[x509.GeneralName] = []
    for dns in dns_names:
        clean = dns.strip().rstrip(".").lower()
        if not is_dns_name(clean):
            raise IssueError(f"{dns!r} is not a DNS name")
        if x509.DNSName(clean) not in names:
            names.append(x509.DNSName(clean))
    for ip in ips:
        try:
            entry = x509.IPAddress(ipaddress.ip_address(ip))
        except ValueError as exc:
            raise IssueError(f"{ip!r} is not an IP address") from exc
        if entry not in names:
            names.append(entry)
    return names


#: what a role's or a gateway's certificate may be used for: both ends of a TLS connection
SERVER_AND_CLIENT: Final = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def sign_leaf(
    ca: SiteCa,
    subject: x509.Name,
    public: CertificatePublicKeyTypes,
    names: list[x509.GeneralName],
    now: datetime.datetime,
    *,
    usages: tuple[x509.ObjectIdentifier, ...] = SERVER_AND_CLIENT,
    lifetime: datetime.timedelta = SERVER_LIFETIME,
) -> x509.Certificate:
    """An end-entity certificate signed by the site CA: ``names`` as its SANs, ``usages`` as
    its extended key usage, valid from now (backdated) for ``lifetime`` or until the CA
    expires, whichever comes first. An RSA key that may serve TLS also gets keyEncipherment."""
    now = utc(now)
    not_after = min(now + lifetime, ca.not_after)
    if not_after <= now:
        raise IssueError(
            f"the site CA expired on {ca.not_after:%Y-%m-%d}: renew it (Renew-CcCACertificate)"
        )
    if not names:
        raise IssueError("a certificate needs at least one DNS name or IP address")
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    eku = x509.ExtendedKeyUsage(list(usages))
    rsa_key = isinstance(public, rsa.RSAPublicKey) and ExtendedKeyUsageOID.SERVER_AUTH in usages
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False, key_encipherment=rsa_key), critical=True)
        .add_extension(eku, critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.key, signature_hash())
    )


def _subject(names: list[x509.GeneralName], fallback: str) -> x509.Name:
    dns = [n.value for n in names if isinstance(n, x509.DNSName)]
    common = dns[0] if dns else fallback
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def issue_server(
    ca: SiteCa,
    name: str,
    now: datetime.datetime,
    *,
    dns_names: Iterable[str] = (),
    ips: Iterable[str | IpAddress] = (),
    kind: KeyKind | None = None,
    generation: int = 1,
) -> Credential:
    """A new key and certificate for ``name`` (a role such as ``mediation``, or a gateway's
    FQDN) with the given SANs; the key is of the CA's kind unless ``kind`` says otherwise."""
    names = general_names(dns_names, ips)
    key = generate_key(kind or key_kind(ca.key))
    cert = sign_leaf(ca, _subject(names, name), key.public_key(), names, now)
    return Credential(
        name=name,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem(key),
        chain_pem=ca.cert_pem,
        generation=generation,
    )


def renew(ca: SiteCa, old: Credential, now: datetime.datetime) -> Credential:
    """A new key and certificate with ``old``'s name and SANs, one generation later."""
    cert = old.certificate
    dns, ips = sans_of(cert)
    kind: KeyKind = "rsa" if isinstance(cert.public_key(), rsa.RSAPublicKey) else "ec"
    return issue_server(
        ca, old.name, now, dns_names=dns, ips=ips, kind=kind, generation=old.generation + 1
    )


def issue_from_csr(ca: SiteCa, csr_pem: bytes, now: datetime.datetime) -> Credential:
    """A certificate for a gateway's own key, from its PKCS #10 request (RFC 2986).

    Only the request's names are taken (its subject CN and subject alternative names); every
    other extension is this PKI's, whatever the request asked for.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise IssueError(
            f"not a PEM certificate request (BEGIN CERTIFICATE REQUEST): {exc}"
        ) from exc
    if not csr.is_signature_valid:
        raise IssueError("the certificate request's signature does not verify")
    common = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = requested.get_values_for_type(x509.DNSName)
        ips = _addresses(requested)
    except x509.ExtensionNotFound:
        dns, ips = [], ()
    named = [c for c in common[:1] if is_dns_name(c.strip().rstrip(".").lower())]
    names = general_names([*named, *dns], ips)
    cert = sign_leaf(ca, _subject(names, "gateway"), csr.public_key(), names, now)
    first = names[0].value if names else "gateway"
    return Credential(
        name=str(first),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=b"",
        chain_pem=ca.cert_pem,
    )
