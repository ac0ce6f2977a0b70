"""Interop with the real ``openssl`` binary: it verifies what the site CA issues, shows the
names and usages we put in, reads our passphrase-protected CA export, and makes files we read
(a CA export, a gateway's CSR, an edge certificate in PKCS#12)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pki_certs import DOMAINS, NOW, POOL

from hybridvoice.pki import (
    CaPassphraseError,
    check_external,
    create_ca,
    export_ca,
    import_ca,
    issue_from_csr,
    issue_server,
    load_bundle,
    make_lab_external,
)

pytestmark = pytest.mark.interop
PASS = "site passphrase 1"


@pytest.fixture(scope="module")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        reason = "openssl not found on PATH (install the Debian package openssl)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


def run(openssl: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openssl, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_openssl_verifies_role_certificates_for_both_tls_sides(openssl, tmp_path: Path) -> None:
    ca = create_ca("Amsterdam", NOW)
    cred = issue_server(ca, "mediation", NOW, dns_names=["med.contoso.local"], ips=["10.0.0.5"])
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    (tmp_path / "cert.pem").write_bytes(cred.cert_pem)
    # a fixed time inside the validity: the test does not depend on today's date
    at = str(int(NOW.timestamp()) + 3600)
    for purpose in ("sslserver", "sslclient"):
        done = run(openssl, "verify", "-attime", at, "-purpose", purpose,
                   "-CAfile", tmp_path / "root.pem", tmp_path / "cert.pem")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().endswith("cert.pem: OK")
    foreign = create_ca("Elsewhere", NOW)
    (tmp_path / "foreign.pem").write_bytes(foreign.cert_pem)
    refused = run(openssl, "verify", "-attime", at, "-CAfile", tmp_path / "foreign.pem",
                  tmp_path / "cert.pem")  # fmt: skip
    assert refused.returncode != 0


def test_openssl_shows_the_names_and_usages(openssl, tmp_path: Path) -> None:
    ca = create_ca("Amsterdam", NOW)
    cred = issue_server(ca, "mediation", NOW, dns_names=["med.contoso.local"],
                        ips=["10.0.0.5", "2001:db8::5"])  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cred.cert_pem)
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    text = run(openssl, "x509", "-noout", "-text", "-in", tmp_path / "cert.pem").stdout
    assert "DNS:med.contoso.local, IP Address:10.0.0.5, IP Address:2001:DB8:0:0:0:0:0:5" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "CA:FALSE" in text and "Digital Signature" in text
    assert "Not After : Dec  5 12:00:00 2028 GMT" in text
    root = run(openssl, "x509", "-noout", "-text", "-in", tmp_path / "root.pem").stdout
    assert "CA:TRUE, pathlen:0" in root and "Certificate Sign, CRL Sign" in root
    assert "Not After : Dec  6 12:00:00 2031 GMT" in root
    assert "Subject: CN = Amsterdam site CA, O = hybridvoice" in root


def test_openssl_reads_the_ca_export_with_its_passphrase_only(openssl, tmp_path: Path) -> None:
    ca = create_ca("Amsterdam", NOW)
    (tmp_path / "ca.p12").write_bytes(export_ca(ca, PASS))
    info = run(openssl, "pkcs12", "-info", "-in", tmp_path / "ca.p12", "-nodes",
               "-passin", f"pass:{PASS}")  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert "MAC: sha256" in info.stderr
    assert "-----BEGIN PRIVATE KEY-----" in info.stdout
    assert "subject=CN = Amsterdam site CA, O = hybridvoice" in info.stdout
    wrong = run(openssl, "pkcs12", "-info", "-in", tmp_path / "ca.p12", "-nodes",
                "-passin", "pass:not it")  # fmt: skip
    assert wrong.returncode != 0 and "Mac verify error" in wrong.stderr


def test_a_ca_exported_by_openssl_imports(openssl, tmp_path: Path) -> None:
    ca = create_ca("Amsterdam", NOW)
    (tmp_path / "ca.key").write_bytes(ca.key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    done = run(openssl, "pkcs12", "-export", "-inkey", tmp_path / "ca.key",
               "-in", tmp_path / "ca.pem", "-out", tmp_path / "ca.p12",
               "-passout", f"pass:{PASS}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = (tmp_path / "ca.p12").read_bytes()
    assert import_ca(data, PASS).certificate == ca.certificate
    with pytest.raises(CaPassphraseError):
        import_ca(data, "another passphrase")


def test_a_gateway_csr_made_by_openssl_is_issued_and_verifies(openssl, tmp_path: Path) -> None:
    done = run(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", tmp_path / "gw.key", "-out", tmp_path / "gw.csr",
               "-subj", "/CN=gw1.contoso.local",
               "-addext", "subjectAltName=DNS:gw1.contoso.local,IP:10.9.0.1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    ca = create_ca("Amsterdam", NOW)
    cred = issue_from_csr(ca, (tmp_path / "gw.csr").read_bytes(), NOW)
    (tmp_path / "gw.pem").write_bytes(cred.cert_pem)
    (tmp_path / "root.pem").write_bytes(ca.cert_pem)
    at = str(int(NOW.timestamp()) + 3600)
    verify = run(openssl, "verify", "-attime", at, "-CAfile", tmp_path / "root.pem",
                 tmp_path / "gw.pem")  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    matches = run(openssl, "x509", "-noout", "-pubkey", "-in", tmp_path / "gw.pem").stdout
    own = run(openssl, "pkey", "-pubout", "-in", tmp_path / "gw.key").stdout
    assert matches == own


def test_the_lab_chain_verifies_with_its_intermediate_untrusted(openssl, tmp_path: Path) -> None:
    lab = make_lab_external(POOL, DOMAINS, NOW)
    bundle = load_bundle(lab.bundle_pem)
    leaf, intermediate, root = (c.public_bytes(Encoding.PEM) for c in bundle.certificates)
    for name, data in (("leaf", leaf), ("intermediate", intermediate), ("root", root)):
        (tmp_path / f"{name}.pem").write_bytes(data)
    at = str(int(NOW.timestamp()) + 3600)
    ok = run(openssl, "verify", "-attime", at, "-purpose", "sslserver",
             "-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "intermediate.pem",
             tmp_path / "leaf.pem")  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = run(openssl, "verify", "-attime", at, "-CAfile", tmp_path / "root.pem",
                 tmp_path / "leaf.pem")  # fmt: skip
    assert broken.returncode != 0
    assert "unable to get local issuer certificate" in broken.stdout + broken.stderr
    text = run(openssl, "x509", "-noout", "-ext", "subjectAltName", "-in", tmp_path / "leaf.pem")
    assert "DNS:ap.contoso.com, DNS:sip.contoso.com, DNS:sip.fabrikam.com" in text.stdout


def test_an_edge_pkcs12_made_by_openssl_passes_the_checker(openssl, tmp_path: Path) -> None:
    lab = make_lab_external(POOL, DOMAINS, NOW)
    (tmp_path / "bundle.pem").write_bytes(lab.bundle_pem)
    done = run(openssl, "pkcs12", "-export", "-in", tmp_path / "bundle.pem",
               "-out", tmp_path / "edge.p12", "-passout", "pass:edge pass")  # fmt: skip
    assert done.returncode == 0, done.stderr
    bundle = load_bundle((tmp_path / "edge.p12").read_bytes(), "edge pass")
    assert len(bundle.certificates) == 3 and bundle.key is not None
    assert check_external(bundle, POOL, DOMAINS, NOW) == ()
    assert [p.code for p in check_external(bundle, POOL, ("contoso.com", "x.org"), NOW)] == [
        "san-missing-sip"
    ]
