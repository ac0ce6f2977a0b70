"""The site CA: what its certificate holds, how long it lives, and its passphrase-protected
export and import (round trip, wrong passphrase, corrupt files)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pki_certs import NOW, certificate, key

from hybridvoice.pki import (
    CA_LIFETIME,
    CaFileCorruptError,
    CaPassphraseError,
    create_ca,
    export_ca,
    import_ca,
    issue_server,
)
from hybridvoice.pki.ca import BACKDATE

PASS = "correct horse battery"


def test_the_ca_certificate_is_a_five_year_path_length_zero_ca() -> None:
    ca = create_ca("Amsterdam", NOW)
    cert = ca.certificate
    assert cert.subject.rfc4514_string() == "O=hybridvoice,CN=Amsterdam site CA"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert cert.not_valid_before_utc == NOW - BACKDATE
    assert cert.not_valid_after_utc == NOW + CA_LIFETIME
    assert datetime.timedelta(days=1826) == CA_LIFETIME  # five years with a leap day
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey) and ca.key.curve.name == "secp256r1"


def test_an_rsa_ca_issues_rsa_certificates_with_key_encipherment() -> None:
    ca = create_ca("Seattle", NOW, kind="rsa")
    assert isinstance(ca.key, rsa.RSAPrivateKey) and ca.key.key_size == 2048
    cert = issue_server(ca, "mediation", NOW, dns_names=["med.contoso.local"]).certificate
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_time_must_be_aware_and_the_site_named() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        create_ca("Amsterdam", NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="site name"):
        create_ca("  ", NOW)


def test_export_and_import_give_back_the_same_ca() -> None:
    ca = create_ca("Amsterdam", NOW)
    data = export_ca(ca, PASS)
    again = import_ca(data, PASS)
    assert again.certificate == ca.certificate
    assert again.key_pem == ca.key_pem
    # what one appliance issues, another verifies with the imported CA
    issued = issue_server(again, "edge", NOW, dns_names=["edge.contoso.local"]).certificate
    issued.verify_directly_issued_by(ca.certificate)


def test_a_wrong_passphrase_says_so_and_what_to_do() -> None:
    data = export_ca(create_ca("Amsterdam", NOW), PASS)
    with pytest.raises(CaPassphraseError) as caught:
        import_ca(data, PASS + "!")
    assert "passphrase does not open the CA file" in str(caught.value)
    assert "export the CA there anew" in str(caught.value)


def test_a_short_passphrase_is_refused_at_export() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        export_ca(create_ca("Amsterdam", NOW), "short")


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # truncated copy
        lambda d: b"",
        lambda d: b"-----BEGIN CERTIFICATE-----\n",  # a PEM file, not the export
        lambda d: d + b"\x00trailing",
    ],
    ids=["truncated", "empty", "pem", "trailing"],
)
def test_a_corrupt_file_is_not_taken_for_a_wrong_passphrase(damage) -> None:
    data = export_ca(create_ca("Amsterdam", NOW), PASS)
    with pytest.raises(CaFileCorruptError, match="not a PKCS#12 export"):
        import_ca(damage(data), PASS)


def test_an_altered_byte_inside_fails_the_integrity_check() -> None:
    data = bytearray(export_ca(create_ca("Amsterdam", NOW), PASS))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises((CaPassphraseError, CaFileCorruptError)):
        import_ca(bytes(data), PASS)


def test_a_pkcs12_of_a_server_certificate_is_not_a_ca() -> None:
    k = key()
    leaf = certificate("edge.contoso.local", k.public_key(), "edge.contoso.local", k)
    data = pkcs12.serialize_key_and_certificates(
        b"x", k, leaf, None, serialization.BestAvailableEncryption(PASS.encode())
    )
    with pytest.raises(CaFileCorruptError, match="not a CA"):
        import_ca(data, PASS)


def test_a_renewed_ca_keeps_verifying_what_the_old_one_issued() -> None:
    ca = create_ca("Amsterdam", NOW)
    issued = issue_server(ca, "cms", NOW, dns_names=["cms.contoso.local"]).certificate
    later = NOW + 4 * 365 * datetime.timedelta(days=1)
    renewed = ca.renewed(later)
    assert renewed.certificate.not_valid_after_utc == later + CA_LIFETIME
    assert renewed.certificate.serial_number != ca.certificate.serial_number
    issued.verify_directly_issued_by(renewed.certificate)
