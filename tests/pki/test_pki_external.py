"""The external edge certificate checker: one broken certificate per rule, each reported
exactly once and alone; several broken things all reported; PEM and PKCS#12 input."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import given
from hypothesis import strategies as st
from pki_certs import DAY, DOMAINS, NOW, PEM, POOL, certificate, chain, key

from hybridvoice.pki import (
    RULES,
    CertificateFileError,
    check_external,
    create_ca,
    issue_server,
    load_bundle,
    make_lab_external,
)
from hybridvoice.pki.external import covers


def codes(data: bytes, *, password: str | None = None, domains=DOMAINS, **kw) -> list[str]:
    problems = check_external(load_bundle(data, password), POOL, domains, NOW, **kw)
    return [p.code for p in problems]


def test_a_correct_certificate_has_no_problem() -> None:
    assert codes(chain().pem()) == []


def test_the_lab_certificate_passes_the_checker() -> None:
    lab = make_lab_external(POOL, DOMAINS, NOW)
    assert codes(lab.bundle_pem) == []
    assert lab.root_pem in lab.bundle_pem


def test_subject_not_the_pool_fqdn() -> None:
    bad = chain().with_leaf(subject="edge1.contoso.com")
    problems = check_external(load_bundle(bad.pem()), POOL, DOMAINS, NOW)
    assert [p.code for p in problems] == ["subject-not-pool"]
    assert "'edge1.contoso.com'" in problems[0].message and f"'{POOL}'" in problems[0].message


def test_sip_domain_as_subject_is_reported_and_so_is_the_wrong_subject() -> None:
    bad = chain().with_leaf(subject="sip.contoso.com")
    assert codes(bad.pem()) == ["subject-not-pool", "subject-is-sip-domain"]


def test_pool_fqdn_missing_from_the_sans() -> None:
    bad = chain().with_leaf(sans=["sip.contoso.com", "sip.fabrikam.com"])
    assert codes(bad.pem()) == ["san-missing-pool"]


def test_each_missing_sip_domain_san_is_one_problem_naming_it() -> None:
    bad = chain().with_leaf(sans=[POOL])
    problems = check_external(load_bundle(bad.pem()), POOL, DOMAINS, NOW)
    assert [p.code for p in problems] == ["san-missing-sip", "san-missing-sip"]
    assert "'sip.contoso.com'" in problems[0].message
    assert "'sip.fabrikam.com'" in problems[1].message


def test_a_wildcard_covers_the_pool_and_the_sip_names_of_its_domain() -> None:
    good = chain().with_leaf(sans=["*.contoso.com", "sip.fabrikam.com"])
    assert codes(good.pem()) == []
    other = chain().with_leaf(sans=["*.fabrikam.com", POOL])
    assert codes(other.pem()) == ["san-missing-sip"]


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.contoso.com", "sip.contoso.com", True),
        ("*.contoso.com", "SIP.Contoso.COM.", True),
        ("*.contoso.com", "contoso.com", False),
        ("*.contoso.com", "a.sip.contoso.com", False),
        ("s*.contoso.com", "sip.contoso.com", False),
        ("*.*.com", "sip.contoso.com", False),
        ("sip.contoso.com", "sip.contoso.com", True),
    ],
)
def test_wildcards_match_one_whole_left_label(pattern: str, host: str, expected: bool) -> None:
    assert covers(pattern, host) is expected


def test_a_missing_intermediate_breaks_the_chain() -> None:
    c = chain()
    problems = check_external(load_bundle(c.pem(certs=[c.leaf, c.root])), POOL, DOMAINS, NOW)
    assert [p.code for p in problems] == ["chain-incomplete"]
    assert "CN=Public Issuing CA" in problems[0].message


def test_a_missing_root_breaks_the_chain_unless_it_is_a_given_root() -> None:
    c = chain()
    data = c.pem(certs=[c.leaf, c.intermediate])
    assert codes(data) == ["chain-incomplete"]
    assert codes(data, roots=[c.root]) == []


def test_an_issuer_of_the_right_name_but_another_key_does_not_verify() -> None:
    c = chain()
    impostor_key = key()
    impostor = certificate("Public Issuing CA", impostor_key.public_key(), "Public Root CA",
                           impostor_key, ca=True)  # fmt: skip
    assert codes(c.pem(certs=[c.leaf, impostor, c.root])) == ["chain-bad-signature"]


def test_no_private_key() -> None:
    assert codes(chain().pem(with_key=False)) == ["key-missing"]


def test_a_key_of_another_certificate() -> None:
    c = chain()
    stranger = key().private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert codes(stranger + c.pem(with_key=False)) == ["key-mismatch"]


def test_not_yet_valid() -> None:
    bad = chain().with_leaf(begins=NOW + DAY, ends=NOW + 30 * DAY)
    assert codes(bad.pem()) == ["not-yet-valid"]


def test_expired_leaf_and_expired_intermediate_are_each_reported() -> None:
    assert codes(chain().with_leaf(begins=NOW - 30 * DAY, ends=NOW - DAY).pem()) == ["expired"]
    c = chain()
    old_intermediate = certificate("Public Issuing CA", c.intermediate_key.public_key(),
                                   "Public Root CA", c.root_key, ca=True,
                                   begins=NOW - 400 * DAY, ends=NOW - DAY)  # fmt: skip
    data = c.pem(certs=[c.leaf, old_intermediate, c.root])
    problems = check_external(load_bundle(data), POOL, DOMAINS, NOW)
    assert [p.code for p in problems] == ["expired"]
    assert "'Public Issuing CA'" in problems[0].message


def test_every_problem_at_once() -> None:
    c = chain().with_leaf(subject="sip.contoso.com", sans=["sip.contoso.com"], ends=NOW - DAY)
    stranger = key().private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    data = stranger + c.pem(with_key=False, certs=[c.leaf, c.root])
    assert codes(data) == [
        "subject-not-pool",
        "subject-is-sip-domain",
        "san-missing-pool",
        "san-missing-sip",
        "chain-incomplete",
        "key-mismatch",
        "expired",
    ]
    assert set(codes(data)) <= set(RULES)


def test_pkcs12_with_its_password_and_a_wrong_one() -> None:
    c = chain()
    data = pkcs12.serialize_key_and_certificates(
        b"edge", c.leaf_key, c.leaf, [c.intermediate, c.root],
        serialization.BestAvailableEncryption(b"p12 secret"),
    )  # fmt: skip
    assert codes(data, password="p12 secret") == []
    with pytest.raises(CertificateFileError, match="password"):
        load_bundle(data, "wrong")


def test_an_encrypted_pem_key_needs_its_password() -> None:
    c = chain()
    locked = c.leaf_key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"k3y!")
    )
    data = locked + c.pem(with_key=False)
    assert codes(data, password="k3y!") == []
    with pytest.raises(CertificateFileError, match="encrypted"):
        load_bundle(data)
    with pytest.raises(CertificateFileError, match="wrong password"):
        load_bundle(data, "nope")


def test_a_file_without_certificates_is_refused() -> None:
    with pytest.raises(CertificateFileError, match="no certificate"):
        load_bundle(b"-----BEGIN NOTHING-----\n-----END NOTHING-----\n")
    with pytest.raises(CertificateFileError):
        load_bundle(b"\x00garbage")


def test_an_issuer_that_is_not_a_ca_or_exceeds_its_path_length() -> None:
    c = chain()
    # the "intermediate" is an end-entity certificate
    not_ca = certificate("Public Issuing CA", c.intermediate_key.public_key(), "Public Root CA",
                         c.root_key, ca=False)  # fmt: skip
    problems = check_external(
        load_bundle(c.pem(certs=[c.leaf, not_ca, c.root])), POOL, DOMAINS, NOW
    )
    assert [p.code for p in problems] == ["chain-bad-issuer"]
    assert "'Public Issuing CA'" in problems[0].message and "not a CA" in problems[0].message
    # a root that allows no intermediate (path length 0) above one: what openssl refuses too
    root = create_ca("tight", NOW)  # path length 0
    leaf_ca = create_ca("middle", NOW)
    # re-sign "middle" under the tight root: root -> middle (CA) -> leaf
    middle = (
        x509.CertificateBuilder()
        .subject_name(leaf_ca.name)
        .issuer_name(root.name)
        .public_key(leaf_ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 300 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.key, hashes.SHA256())
    )
    edge = issue_server(leaf_ca, POOL, NOW, dns_names=[POOL, "sip.contoso.com", "sip.fabrikam.com"])
    data = edge.key_pem + edge.cert_pem + middle.public_bytes(PEM) + root.cert_pem
    problems = check_external(load_bundle(data), POOL, DOMAINS, NOW)
    assert [p.code for p in problems] == ["chain-bad-issuer"]
    assert "allows 0 intermediate CA(s) below it, the chain has 1" in problems[0].message


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(label=_LABEL, other=_LABEL, domain=st.lists(_LABEL, min_size=1, max_size=3))
def test_a_wildcard_covers_exactly_one_label_more(label: str, other: str, domain) -> None:
    base = ".".join(domain)
    assert covers(f"*.{base}", f"{label}.{base}")
    assert covers(f"*.{base}", f"{label.upper()}.{base}.")
    assert not covers(f"*.{base}", base)
    assert not covers(f"*.{base}", f"{other}.{label}.{base}")
    assert covers(f"{label}.{base}", f"{label}.{base}")
