"""Certificates the site CA issues: validity, SANs, usages, renewal, gateways from a CSR."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki_certs import NOW, key

from hybridvoice.pki import (
    SERVER_LIFETIME,
    IssueError,
    create_ca,
    issue_from_csr,
    issue_server,
    renew,
)
from hybridvoice.pki.ca import BACKDATE
from hybridvoice.pki.keys import public_matches


@pytest.fixture(scope="module")
def ca():
    return create_ca("Amsterdam", NOW)


def test_a_role_certificate_lives_two_years_with_its_names(ca) -> None:
    cred = issue_server(
        ca, "mediation", NOW,
        dns_names=["Med1.Contoso.local.", "medpool.contoso.local", "med1.contoso.local"],
        ips=["10.0.1.5", ipaddress.ip_address("2001:db8::5")],
    )  # fmt: skip
    cert = cred.certificate
    assert cred.name == "mediation" and cred.generation == 1
    assert cert.not_valid_before_utc == NOW - BACKDATE
    assert cert.not_valid_after_utc == NOW + SERVER_LIFETIME
    assert datetime.timedelta(days=730) == SERVER_LIFETIME
    assert cred.dns_names == ("med1.contoso.local", "medpool.contoso.local")
    assert cred.ip_addresses == (
        ipaddress.ip_address("10.0.1.5"),
        ipaddress.ip_address("2001:db8::5"),
    )
    assert cert.subject.rfc4514_string() == "CN=med1.contoso.local"
    assert cert.issuer == ca.name
    cert.verify_directly_issued_by(ca.certificate)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cred.chain_pem == ca.cert_pem
    assert cred.bundle_pem == cred.key_pem + cred.cert_pem + ca.cert_pem


def test_a_certificate_for_an_ip_only_is_named_by_the_role(ca) -> None:
    cert = issue_server(ca, "edge-internal", NOW, ips=["10.0.0.9"]).certificate
    assert cert.subject.rfc4514_string() == "CN=edge-internal"


def test_a_certificate_never_outlives_its_ca(ca) -> None:
    late = ca.not_after - datetime.timedelta(days=100)
    cert = issue_server(ca, "cms", late, dns_names=["cms.contoso.local"]).certificate
    assert cert.not_valid_after_utc == ca.not_after
    with pytest.raises(IssueError, match="site CA expired"):
        issue_server(ca, "cms", ca.not_after, dns_names=["cms.contoso.local"])


@pytest.mark.parametrize(
    ("dns", "ips", "message"),
    [
        ((), (), "at least one"),
        (("bad name",), (), "not a DNS name"),
        (("sip:x@y",), (), "not a DNS name"),
        (("a..b",), (), "not a DNS name"),
        (("-a.b",), (), "not a DNS name"),
        (("10.0.0.1",), (), "not a DNS name"),
        ((), ("10.0.0.300",), "not an IP address"),
    ],
)
def test_bad_names_are_refused(ca, dns, ips, message) -> None:
    with pytest.raises(IssueError, match=message):
        issue_server(ca, "x", NOW, dns_names=dns, ips=ips)


def test_renewal_keeps_the_names_changes_the_key_and_counts(ca) -> None:
    old = issue_server(ca, "edge", NOW, dns_names=["edge.contoso.local"], ips=["10.0.0.2"])
    later = NOW + 700 * datetime.timedelta(days=1)
    new = renew(ca, old, later)
    assert (new.name, new.generation) == ("edge", 2)
    assert (new.dns_names, new.ip_addresses) == (old.dns_names, old.ip_addresses)
    assert new.key_pem != old.key_pem
    assert new.certificate.not_valid_after_utc == later + SERVER_LIFETIME
    assert renew(ca, new, later).generation == 3


def _csr(extra_ca: bool = False, cn: str = "gw1.contoso.local"):
    k = key()
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("gw1.contoso.local"),
                    x509.IPAddress(ipaddress.ip_address("10.9.0.1")),
                ]
            ),
            critical=False,
        )
    )
    if extra_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    return k, builder.sign(k, hashes.SHA256())


def test_a_gateway_certificate_from_its_csr_keeps_its_key_and_names_only(ca) -> None:
    k, csr = _csr(extra_ca=True)
    cred = issue_from_csr(ca, csr.public_bytes(Encoding.PEM), NOW)
    cert = cred.certificate
    assert cred.name == "gw1.contoso.local" and cred.key_pem == b""
    assert public_matches(k, cert.public_key())
    assert cred.dns_names == ("gw1.contoso.local",)
    assert cred.ip_addresses == (ipaddress.ip_address("10.9.0.1"),)
    # the request asked to be a CA; this PKI does not grant it
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.certificate)


def test_a_gateway_certificate_for_a_name(ca) -> None:
    cred = issue_server(ca, "gw2", NOW, dns_names=["gw2.contoso.local"], kind="rsa")
    assert cred.certificate.subject.rfc4514_string() == "CN=gw2.contoso.local"
    assert b"PRIVATE KEY" in cred.key_pem


def test_garbage_is_not_a_csr(ca) -> None:
    with pytest.raises(IssueError, match="CERTIFICATE REQUEST"):
        issue_from_csr(ca, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", NOW)


def test_a_csr_whose_common_name_is_not_a_host_name_uses_its_sans(ca) -> None:
    _, csr = _csr(cn="Gateway One (AudioCodes)")
    cred = issue_from_csr(ca, csr.public_bytes(Encoding.PEM), NOW)
    assert cred.dns_names == ("gw1.contoso.local",)
    assert cred.certificate.subject.rfc4514_string() == "CN=gw1.contoso.local"
