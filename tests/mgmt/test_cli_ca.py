"""`hybridvoice ca`: export the root, back up and restore the CA, renew, status (typer's
CliRunner on a state directory of the test's own)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from hybridvoice.cli import app
from hybridvoice.pki import PkiStore, issue_server

RUNNER = CliRunner()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def ca(*args: str, state: Path) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, ["ca", *args, "--state-dir", str(state)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory as `hybridvoice up` leaves it: the CA and the two credentials."""
    store = PkiStore(tmp_path / "state" / "pki")
    site_ca = store.ensure_ca("Amsterdam", now())
    store.ensure_server(site_ca, "appliance", now(), dns_names=["mspool.cce.local"],
                        ips=["127.0.0.1"])  # fmt: skip
    store.ensure_server(site_ca, "online", now(), ips=["127.0.0.1"])
    return tmp_path / "state"


def test_export_root_prints_or_writes_the_site_root(state: Path, tmp_path: Path) -> None:
    code, out, _ = ca("export-root", state=state)
    assert code == 0
    root = x509.load_pem_x509_certificate(out.encode())
    assert "CN=Amsterdam site CA" in root.subject.rfc4514_string()
    code, _, _ = ca("export-root", "--output", str(tmp_path / "root.pem"), state=state)
    assert code == 0 and (tmp_path / "root.pem").read_bytes() == out.encode()


def test_status_lists_every_certificate_with_days_left(state: Path) -> None:
    code, out, err = ca("status", "--json", state=state)
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == {"ca", "cert:appliance", "cert:online"}
    assert rows["cert:appliance"]["days_left"] in (729, 730)
    assert not any(row["warn"] for row in rows.values())
    code, out, err = ca("status", state=state)
    assert code == 0 and "cert:appliance" in out and "warning" not in err


def test_status_warns_30_days_before_expiry_and_renew_clears_it(state: Path) -> None:
    store = PkiStore(state / "pki")
    old = now() - datetime.timedelta(days=710)  # 20 days left of 730
    store.save_credential(issue_server(store.load_ca(), "gateway1", old, ips=["192.0.2.1"]))
    code, _, err = ca("status", state=state)
    assert code == 0
    said = " ".join(err.split())
    assert "cert:gateway1 expires in 19 days" in said or "cert:gateway1 expires in 20 days" in said
    assert "hybridvoice ca renew" in err
    code, out, _ = ca("renew", "gateway1", state=state)
    assert code == 0 and "gateway1: renewed, generation 2" in out
    assert store.load_credential("gateway1").generation == 2
    code, _, err = ca("status", state=state)
    assert "warning" not in err


def test_renew_every_certificate_or_the_ca(state: Path) -> None:
    store = PkiStore(state / "pki")
    before = store.load_ca().certificate
    code, out, _ = ca("renew", state=state)
    assert code == 0
    assert "appliance: renewed, generation 2" in out and "online: renewed, generation 2" in out
    code, out, _ = ca("renew", "--ca", state=state)
    assert code == 0 and "site CA renewed" in out
    after = store.load_ca().certificate
    assert after.serial_number != before.serial_number
    # the renewed CA has the same key: certificates it issued before keep verifying
    store.load_credential("appliance").certificate.verify_directly_issued_by(after)
    code, _, err = ca("renew", "nosuch", state=state)
    assert code == 1 and "known: appliance, online" in " ".join(err.split())


def test_backup_and_restore_share_the_ca(state: Path, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery\n")
    backup = tmp_path / "ca.p12"
    code, _, err = ca("backup", "--output", str(backup), "--passphrase-file", str(secret),
                      state=state)  # fmt: skip
    assert code == 0, err
    assert backup.stat().st_mode & 0o777 == 0o600

    other = tmp_path / "other"
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase")
    code, _, err = ca("restore", str(backup), "--passphrase-file", str(wrong), state=other)
    assert code == 1 and "passphrase" in err
    code, _, err = ca("restore", str(backup), "--passphrase-file", str(secret), state=other)
    assert code == 0, err
    assert (other / "pki" / "root.pem").read_bytes() == (state / "pki" / "root.pem").read_bytes()

    PkiStore(tmp_path / "third" / "pki").ensure_ca("Elsewhere", now())
    third = tmp_path / "third"
    code, _, err = ca("restore", str(backup), "--passphrase-file", str(secret), state=third)
    assert code == 1 and "--force" in err
    code, _, _ = ca("restore", str(backup), "--passphrase-file", str(secret), "--force",
                    state=third)  # fmt: skip
    assert code == 0


def test_no_ca_yet_says_who_makes_it(tmp_path: Path) -> None:
    code, _, err = ca("status", state=tmp_path / "empty")
    assert code == 1 and "hybridvoice up --config" in " ".join(err.split())


def test_issue_gateway_writes_a_site_certificate_for_its_names(state: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "gw1.pem"
    code, out, err = ca("issue-gateway", "--fqdn", "sbc1.contoso.com", "--ip", "127.0.0.1",
                        "--out", str(out_file), state=state)  # fmt: skip
    assert code == 0, err
    assert "sbc1.contoso.com, 127.0.0.1" in out and "export-root" in out
    data = out_file.read_bytes()
    assert b"PRIVATE KEY" in data and out_file.stat().st_mode & 0o777 == 0o600
    leaf, chain = x509.load_pem_x509_certificates(data)
    root = PkiStore(state / "pki").load_ca().certificate
    assert chain == root and leaf.issuer == root.subject
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["sbc1.contoso.com"]
    leaf.verify_directly_issued_by(root)


def test_issue_gateway_refuses_bad_names_and_no_names(state: Path, tmp_path: Path) -> None:
    code, _, err = ca("issue-gateway", "--out", str(tmp_path / "x.pem"), state=state)
    assert code == 2 and "--fqdn" in err
    code, _, err = ca("issue-gateway", "--ip", "not-an-ip", "--out", str(tmp_path / "x.pem"),
                      state=state)  # fmt: skip
    assert code == 1 and "'not-an-ip' is not an IP address" in err
    assert not (tmp_path / "x.pem").exists()
