"""A correct external edge certificate for labs and tests, from a throw-away lab CA.

What a public CA would hand out (see ``external.py`` for the rules): a root, an intermediate
(RFC 5280 §4.2.1.9, path length 0) and the edge certificate with subject ``CN=<pool FQDN>`` and
subject alternative names the pool FQDN and ``sip.<domain>`` of every SIP domain, its key and
the whole chain in one PEM file. :func:`check_external` finds nothing wrong with it.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from .ca import BACKDATE, CA_LIFETIME, SiteCa, create_ca, key_usage, utc
from .issue import issue_server
from .keys import generate_key, signature_hash

__all__ = ["LabExternal", "make_lab_external"]


@dataclass(frozen=True, slots=True)
class LabExternal:
    """A lab edge certificate: ``bundle_pem`` (key, certificate, intermediate, root) and the
    lab root alone (``root_pem``) for the peers that must trust it."""

    bundle_pem: bytes
    root_pem: bytes


def _intermediate(root: SiteCa, now: datetime.datetime) -> SiteCa:
    key = generate_key("ec")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hybridvoice lab issuing CA")])
    root_ski = root.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME - datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski.value), False
        )
        .sign(root.key, signature_hash())
    )
    return SiteCa(cert, key)


def make_lab_external(
    pool_fqdn: str, sip_domains: Sequence[str], now: datetime.datetime
) -> LabExternal:
    """A fresh lab CA chain and an external edge certificate for ``pool_fqdn``."""
    now = utc(now)
    root = create_ca("hybridvoice lab root", now, organization="hybridvoice lab", path_length=1)
    issuing = _intermediate(root, now)
    names = [pool_fqdn, *(f"sip.{d.strip().rstrip('.')}" for d in sip_domains if d.strip())]
    edge = issue_server(issuing, pool_fqdn, now, dns_names=names)
    pem = serialization.Encoding.PEM
    return LabExternal(
        bundle_pem=edge.key_pem + edge.cert_pem + issuing.cert_pem + root.cert_pem,
        root_pem=root.certificate.public_bytes(pem),
    )
