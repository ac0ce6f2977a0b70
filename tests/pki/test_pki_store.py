"""The state directory: the CA made once, file modes, atomic writes, credentials kept or
re-issued, renewal generations, CA reset, imported roots, the external certificate, expiry."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pki_certs import DAY, DOMAINS, NOW, POOL, certificate, chain, key

from hybridvoice.pki import (
    PkiError,
    PkiStore,
    TrustError,
    create_ca,
    expiry_report,
    files,
    issue_server,
    make_lab_external,
)
from hybridvoice.pki.files import write_atomic

PEM = serialization.Encoding.PEM


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_is_made_once_and_kept(tmp_path: Path) -> None:
    store = PkiStore(tmp_path / "pki")
    assert not store.has_ca()
    with pytest.raises(PkiError, match="no site CA"):
        store.load_ca()
    first = store.ensure_ca("Amsterdam", NOW)
    again = PkiStore(tmp_path / "pki").ensure_ca("Amsterdam", NOW + DAY)
    assert again.certificate == first.certificate and again.key_pem == first.key_pem
    assert mode(store.ca_path) == 0o600
    assert mode(store.root_path) == 0o644
    assert store.root_path.read_bytes() == store.root_pem() == first.cert_pem
    assert b"PRIVATE KEY" not in store.root_path.read_bytes()


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.pem"
    write_atomic(target, b"one", 0o600)
    write_atomic(target, b"two", 0o644)
    assert target.read_bytes() == b"two" and mode(target) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["f.pem"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "f.pem"
    write_atomic(target, b"old", 0o600)

    def no_room(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", no_room)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new", 0o600)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.pem"]


def test_server_credentials_are_kept_until_their_names_change(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Amsterdam", NOW)
    first = store.ensure_server(ca, "mediation", NOW, dns_names=["med.contoso.local"],
                                ips=["10.0.0.5"])  # fmt: skip
    path = store.credential_path("mediation")
    assert mode(path) == 0o600 and first.generation == 1
    same = store.ensure_server(ca, "mediation", NOW + DAY, dns_names=["MED.contoso.local"],
                               ips=["10.0.0.5"])  # fmt: skip
    assert same == first
    moved = store.ensure_server(ca, "mediation", NOW + DAY, dns_names=["med.contoso.local"],
                                ips=["10.0.0.6"])  # fmt: skip
    assert moved.generation == 2 and moved.cert_pem != first.cert_pem
    assert store.load_credential("mediation") == moved
    assert store.names() == ("mediation",)


def test_renewal_on_disk_counts_generations(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Amsterdam", NOW)
    store.ensure_server(ca, "edge", NOW, dns_names=["edge.contoso.local"])
    renewed = store.renew("edge", NOW + 600 * DAY)
    loaded = store.load_credential("edge")
    assert loaded == renewed and loaded.generation == 2
    assert loaded.dns_names == ("edge.contoso.local",)
    with pytest.raises(PkiError, match="no certificate named"):
        store.load_credential("cms")
    with pytest.raises(ValueError, match="cannot name"):
        store.credential_path("../etc/passwd")


def test_a_ca_reset_reissues_every_credential_under_the_new_root(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Amsterdam", NOW)
    store.ensure_server(ca, "edge", NOW, dns_names=["edge.contoso.local"])
    store.ensure_server(ca, "cms", NOW, ips=["10.0.0.4"])
    new_ca = store.reset_ca("Amsterdam", NOW + DAY)
    assert store.load_ca().certificate == new_ca.certificate != ca.certificate
    for name in ("edge", "cms"):
        cred = store.load_credential(name)
        assert cred.generation == 2
        cred.certificate.verify_directly_issued_by(new_ca.certificate)
    # an unchanged request after the reset keeps the re-issued credential
    again = store.ensure_server(new_ca, "cms", NOW + DAY, ips=["10.0.0.4"])
    assert again.generation == 2
    # a credential issued by another CA is replaced
    assert store.ensure_server(ca, "cms", NOW + DAY, ips=["10.0.0.4"]).generation == 3


def test_imported_roots_are_trusted_listed_and_removed(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    site = store.ensure_ca("Amsterdam", NOW)
    gateway_ca = create_ca("gateway vendor", NOW)
    trust = store.import_root("gw1", gateway_ca.cert_pem, NOW)
    assert list(trust.imported) == ["gw1"]
    assert store.trust_store().bundle_pem() == site.cert_pem + gateway_ca.cert_pem
    k = key()
    leaf = certificate("gw1.contoso.local", k.public_key(), "gw1.contoso.local", k)
    with pytest.raises(TrustError, match="not a CA certificate"):
        store.import_root("gw2", leaf.public_bytes(PEM), NOW)
    with pytest.raises(TrustError, match="expired"):
        store.import_root("gw3", gateway_ca.cert_pem, gateway_ca.not_after + DAY)
    assert store.remove_root("gw1").bundle_pem() == site.cert_pem
    assert store.trust_store().imported == {}
    with pytest.raises(TrustError, match="no imported root"):
        store.remove_root("gw1")


def test_the_external_certificate_is_stored_only_when_correct(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    bad = chain().with_leaf(subject="sip.contoso.com")
    problems = store.import_external(bad.pem(), None, POOL, DOMAINS, NOW)
    assert [p.code for p in problems] == ["subject-not-pool", "subject-is-sip-domain"]
    assert not store.external_path.exists()
    lab = make_lab_external(POOL, DOMAINS, NOW)
    assert store.import_external(lab.bundle_pem, None, POOL, DOMAINS, NOW) == ()
    assert mode(store.external_path) == 0o600


def test_the_expiry_report_flags_thirty_days_and_less(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Amsterdam", NOW)
    store.ensure_server(ca, "edge", NOW, dns_names=["edge.contoso.local"])
    store.import_external(make_lab_external(POOL, DOMAINS, NOW).bundle_pem, None, POOL,
                          DOMAINS, NOW)  # fmt: skip
    found = store.certificates()
    assert sorted(found) == ["ca", "cert:edge", "external"]
    edge_ends = found["cert:edge"].not_valid_after_utc
    report = expiry_report(found, edge_ends - 30 * DAY)
    assert [(e.name, e.days_left, e.warn) for e in report][:2] == [
        ("cert:edge", 30, True),
        ("external", 30, True),
    ]
    assert report[-1].name == "ca" and not report[-1].warn
    assert [e.warn for e in expiry_report(found, edge_ends - 31 * DAY)][:1] == [False]
    late = expiry_report(found, edge_ends + datetime.timedelta(hours=1))
    assert late[0].days_left == -1 and late[0].expired


def test_an_issued_credential_round_trips_through_its_file(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    ca = create_ca("Amsterdam", NOW)
    cred = issue_server(ca, "gw", NOW, dns_names=["gw.contoso.local"], generation=4)
    store.save_credential(cred)
    assert store.load_credential("gw") == cred


def test_a_damaged_ca_file_says_how_to_recover(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    store.ensure_ca("Amsterdam", NOW)
    store.ca_path.write_bytes(store.ca_path.read_bytes()[:200])
    with pytest.raises(PkiError, match=r"damaged .* restore the site CA from its export"):
        store.load_ca()


def test_a_start_within_thirty_days_of_expiry_renews_the_role_certificate(tmp_path: Path) -> None:
    store = PkiStore(tmp_path)
    ca = store.ensure_ca("Amsterdam", NOW)
    first = store.ensure_server(ca, "edge", NOW, dns_names=["edge.contoso.local"])
    kept = store.ensure_server(ca, "edge", first.not_after - 31 * DAY,
                               dns_names=["edge.contoso.local"])  # fmt: skip
    assert kept == first
    renewed = store.ensure_server(ca, "edge", first.not_after - 30 * DAY,
                                  dns_names=["edge.contoso.local"])  # fmt: skip
    assert renewed.generation == 2 and renewed.not_after > first.not_after
