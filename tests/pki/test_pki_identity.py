"""The appliance identity in its client certificate: made, read back, tied to its site CA,
kept or renewed by ensure_appliance."""

from __future__ import annotations

import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki_certs import DAY, NOW

from hybridvoice.pki import IssueError, PkiStore, create_ca
from hybridvoice.pki.identity import (
    CLIENT_CREDENTIAL,
    ApplianceIdentity,
    ensure_appliance,
    identity_of,
    issue_appliance,
    issued_by,
    site_of,
)


def test_identity_round_trips_through_the_certificate() -> None:
    ca = create_ca("Seattle", NOW)
    credential = issue_appliance(ca, "appliance1", NOW)
    cert = credential.certificate
    assert identity_of(cert) == ApplianceIdentity("Seattle", "appliance1")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:hybridvoice:appliance:Seattle:appliance1"
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert issued_by(cert, ca.certificate)
    assert credential.name == CLIENT_CREDENTIAL
    assert credential.key_pem and credential.chain_pem == ca.cert_pem


def test_names_with_colons_and_spaces_are_encoded() -> None:
    identity = ApplianceIdentity("New York: 5th", "box 1")
    assert identity.uri == "urn:hybridvoice:appliance:New%20York%3A%205th:box%201"
    assert ApplianceIdentity.parse(identity.uri) == identity


@pytest.mark.parametrize(
    "uri",
    ["urn:hybridvoice:appliance:site", "urn:hybridvoice:appliance::a", "https://x/",
     "urn:hybridvoice:appliance:a:b:c", "urn:hybridvoice:gateway:a:b"],
)  # fmt: skip
def test_other_uris_name_no_appliance(uri: str) -> None:
    assert ApplianceIdentity.parse(uri) is None


def test_another_site_ca_did_not_issue_it() -> None:
    seattle, paris = create_ca("Seattle", NOW), create_ca("Paris", NOW)
    cert = issue_appliance(seattle, "a1", NOW).certificate
    assert not issued_by(cert, paris.certificate)


def test_site_of_reads_the_ca_name() -> None:
    assert site_of(create_ca("Seattle", NOW)) == "Seattle"


def test_expired_ca_issues_nothing() -> None:
    ca = create_ca("Old", NOW - 6 * 365 * DAY)
    with pytest.raises(IssueError, match="expired"):
        issue_appliance(ca, "a1", NOW)
    with pytest.raises(IssueError, match="name"):
        issue_appliance(create_ca("S", NOW), " ", NOW)


def test_ensure_appliance_keeps_then_renews(tmp_path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Seattle", NOW)
    first = ensure_appliance(store, ca, "a1", NOW)
    assert (tmp_path / "certs" / "online-client.pem").exists()
    assert ensure_appliance(store, ca, "a1", NOW + DAY).cert_pem == first.cert_pem
    # a new name, or little validity left: a new certificate, one generation later
    renamed = ensure_appliance(store, ca, "a2", NOW)
    assert identity_of(renamed.certificate) == ApplianceIdentity("Seattle", "a2")
    assert renamed.generation == 2
    late = NOW + datetime.timedelta(days=2 * 365 - 10)
    assert ensure_appliance(store, ca, "a2", late).generation == 3


def test_openssl_loads_the_credential(tmp_path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Seattle", NOW)
    ensure_appliance(store, ca, "a1", NOW)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(store.credential_path(CLIENT_CREDENTIAL))
