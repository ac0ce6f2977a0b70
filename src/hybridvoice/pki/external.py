"""The access edge's external certificate, checked as the original checked it.

The certificate the edge shows to Teams/Skype online and to federated peers comes from a
public CA. It must (CCE-REFERENCE "Certificates"):

- have the access edge pool FQDN as subject common name, never a ``sip.<domain>`` name;
- list the pool FQDN and ``sip.<domain>`` for every SIP domain among its DNS subject alternative
  names (RFC 5280 §4.2.1.6), or a wildcard covering them (RFC 6125 §6.4.3: ``*`` as the whole
  left-most label, matching exactly one label);
- come with its whole chain: every certificate's issuer is in the file (or among the roots
  given) and verifies its signature (RFC 5280 §6.1.3 (a)(1)), up to a self-signed root; every
  issuer is a CA whose path length constraint holds (§4.2.1.9, §6.1.4 (k), (l));
- come with the private key that matches it;
- be valid now, as every certificate of its chain (RFC 5280 §4.1.2.5).

:func:`check_external` reports *every* problem, each with a code from :data:`RULES` and a
message that names the certificate and the fix.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from .bundle import CertificateBundle
from .ca import utc
from .issue import sans_of
from .keys import public_matches

__all__ = ["RULES", "Problem", "check_external", "covers"]

#: every rule of the checker: code -> what it means
RULES: Final = MappingProxyType(
    {
        "subject-not-pool": "the subject common name is not the access edge pool FQDN",
        "subject-is-sip-domain": "a sip.<domain> name is used as the subject",
        "san-missing-pool": "the pool FQDN is not among the subject alternative names",
        "san-missing-sip": "sip.<domain> of a SIP domain is not among the alternative names",
        "chain-incomplete": "the issuer of a certificate of the chain is not in the file",
        "chain-bad-signature": "a certificate's signature does not verify with its issuer's key",
        "chain-bad-issuer": "an issuer of the chain is not a CA, or its path length is exceeded",
        "key-missing": "the file holds no private key",
        "key-mismatch": "the private key does not belong to the certificate",
        "not-yet-valid": "a certificate of the chain is not valid yet",
        "expired": "a certificate of the chain has expired",
    }
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the certificate: a :data:`RULES` code and what to do."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in RULES:
            raise ValueError(f"unknown rule {self.code!r}")


def covers(pattern: str, name: str) -> bool:
    """Whether the SAN DNS name ``pattern`` covers ``name`` (RFC 6125 §6.4.3 wildcards)."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:]:
        return False
    head, _, rest = name.partition(".")
    return bool(head) and rest == pattern[2:]


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _label(cert: x509.Certificate) -> str:
    return f"'{_cn(cert) or cert.subject.rfc4514_string()}'"


def _leaf(bundle: CertificateBundle) -> tuple[x509.Certificate, list[Problem]]:
    """The certificate the key belongs to (else the one that issues none of the others)."""
    certs, key = bundle.certificates, bundle.key
    issuers = {c.issuer for c in certs if c.issuer != c.subject}
    ends = [c for c in certs if c.subject not in issuers] or list(certs)
    structural = ends[0]
    if key is None:
        return structural, [
            Problem("key-missing", "the file holds no private key: export the certificate "
                    "with its private key (PKCS#12, or the PEM key in the same file)")
        ]  # fmt: skip
    for cert in certs:
        if public_matches(key, cert.public_key()):
            return cert, []
    return structural, [
        Problem("key-mismatch", f"the private key does not belong to {_label(structural)}: "
                "the file has the key of another certificate (an older request?); export the "
                "certificate with the key its request was made with")
    ]  # fmt: skip


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issuer_problems(issuer: x509.Certificate, intermediates_below: int) -> list[Problem]:
    """What is wrong with ``issuer`` as a CA with ``intermediates_below`` CAs under it."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    fix = "get the chain the CA publishes"
    if constraints is None or not constraints.ca:
        text = f"{_label(issuer)} issued a certificate of the chain but is not a CA certificate"
        return [Problem("chain-bad-issuer", f"{text}: {fix}")]
    limit = constraints.path_length
    if limit is not None and intermediates_below > limit:
        text = (
            f"{_label(issuer)} allows {limit} intermediate CA(s) below it, "
            f"the chain has {intermediates_below}"
        )
        return [Problem("chain-bad-issuer", f"{text}: {fix}")]
    return []


def _chain(
    leaf: x509.Certificate, pool: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> tuple[list[x509.Certificate], list[Problem]]:
    """The chain above ``leaf`` (``leaf`` first) and what breaks it."""
    problems: list[Problem] = []
    chain = [leaf]
    current = leaf
    for _ in range(len(pool) + len(roots) + 1):
        if current in roots:
            return chain, problems
        if current.issuer == current.subject:
            if not _issued_by(current, current):
                text = f"the self-signature of {_label(current)} does not verify"
                problems.append(Problem("chain-bad-signature", f"{text}: get the root again"))
            return chain, problems
        named = [c for c in (*pool, *roots) if c.subject == current.issuer and c is not current]
        issuer = next((c for c in named if _issued_by(current, c)), None)
        if not named:
            text = f"the issuer '{current.issuer.rfc4514_string()}' of {_label(current)}"
            fix = "add the CA's intermediate and root certificates (the full chain)"
            problems.append(Problem("chain-incomplete", f"{text} is not in the file: {fix}"))
            return chain, problems
        if issuer is None:
            text = (
                f"the signature of {_label(current)} does not verify with the key of "
                f"{_label(named[0])} in the file: it is another certificate of that name"
            )
            fix = "add the chain the CA sent with this certificate"
            problems.append(Problem("chain-bad-signature", f"{text}; {fix}"))
            return chain, problems
        if issuer in chain:
            break
        problems.extend(_issuer_problems(issuer, intermediates_below=len(chain) - 1))
        chain.append(issuer)
        current = issuer
    text = "the chain loops without reaching a root: add the CA's root certificate"
    return chain, [*problems, Problem("chain-incomplete", text)]


def _validity(chain: Iterable[x509.Certificate], now: datetime.datetime) -> list[Problem]:
    problems = []
    for cert in chain:
        begins, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
        if now < begins:
            problems.append(Problem("not-yet-valid", f"{_label(cert)} is valid from "
                                    f"{begins:%Y-%m-%d %H:%M} UTC only: check this machine's "
                                    "clock, or wait"))  # fmt: skip
        if now > ends:
            problems.append(Problem("expired", f"{_label(cert)} expired on {ends:%Y-%m-%d}: "
                                    "renew it at the CA and import the new one"))  # fmt: skip
    return problems


def _names(leaf: x509.Certificate, pool_fqdn: str, sip_domains: Sequence[str]) -> list[Problem]:
    problems = []
    cn = _cn(leaf).lower().rstrip(".")
    pool = pool_fqdn.lower().rstrip(".")
    sip_names = [f"sip.{d.lower().strip().rstrip('.')}" for d in sip_domains if d.strip()]
    if cn != pool:
        problems.append(Problem("subject-not-pool", f"the subject common name is '{cn}', it "
                                f"must be the access edge pool FQDN '{pool}'"))  # fmt: skip
    if cn in sip_names:
        problems.append(Problem("subject-is-sip-domain", f"the subject is '{cn}', a SIP domain "
                                "name: the subject must be the pool FQDN, sip.<domain> names "
                                "belong in the subject alternative names"))  # fmt: skip
    dns = sans_of(leaf)[0]
    if not any(covers(p, pool) for p in dns):
        problems.append(Problem("san-missing-pool", f"the subject alternative names "
                                f"({', '.join(dns) or 'none'}) do not hold the pool FQDN "
                                f"'{pool}': add it"))  # fmt: skip
    for name in sip_names:
        if not any(covers(p, name) for p in dns):
            problems.append(Problem("san-missing-sip", f"the subject alternative names "
                                    f"({', '.join(dns) or 'none'}) do not hold '{name}' (or "
                                    f"'*.{name[4:]}'): add it"))  # fmt: skip
    return problems


def check_external(
    bundle: CertificateBundle,
    pool_fqdn: str,
    sip_domains: Sequence[str],
    now: datetime.datetime,
    *,
    roots: Sequence[x509.Certificate] = (),
) -> tuple[Problem, ...]:
    """Every problem of the edge's external certificate in ``bundle``; empty when it is fit.

    ``roots`` are trust anchors the file need not carry (a root store); without them the chain
    must end at a self-signed root in the file, as the original required.
    """
    leaf, problems = _leaf(bundle)
    chain, broken = _chain(leaf, bundle.certificates, roots)
    names = _names(leaf, pool_fqdn, sip_domains)
    return (*names, *broken, *problems, *_validity(chain, utc(now)))
