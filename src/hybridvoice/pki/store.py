"""The site PKI on disk, under one state directory.

Layout (every write atomic, ``files.py``; keys only in 0600 files)::

    <dir>/ca.pem                 0600  the site CA: key (PKCS #8, RFC 5958) then certificate
    <dir>/root.pem               0644  the site root alone (Export-CcRootCertificate)
    <dir>/certs/<name>.pem       0600  a credential: key, certificate, chain (one file, so a
                                       reader never pairs a new certificate with an old key)
    <dir>/certs/<name>.json      0644  {"generation": N}, written after the PEM it describes
    <dir>/trust/<label>.pem      0644  an imported root (a gateway's own chain)
    <dir>/external.pem           0600  the access edge's external certificate, key and chain

A TLS adapter reloads a credential when its generation grows; the generation is written after
the PEM, so a new generation always finds the new certificate in place.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .bundle import load_bundle
from .ca import SiteCa, create_ca, utc
from .errors import CertificateFileError, NoSiteCaError, PkiError, SiteCaDamagedError
from .external import Problem, check_external
from .files import PUBLIC, SECRET, checked_name, write_atomic
from .issue import Credential, IpAddress, general_names, issue_server, renew, sans_of
from .keys import KeyKind, key_pem, load_signing_key
from .trust import TrustStore

__all__ = ["RENEW_BEFORE", "PkiStore"]

#: a role certificate with this little validity left is re-issued by ``ensure_server``
RENEW_BEFORE: Final = datetime.timedelta(days=30)

_PEM = serialization.Encoding.PEM


def _credential(name: str, data: bytes, generation: int) -> Credential:
    bundle = load_bundle(data)
    cert, *chain = bundle.certificates
    return Credential(
        name=name,
        cert_pem=cert.public_bytes(_PEM),
        key_pem=key_pem(bundle.key) if bundle.key is not None else b"",
        chain_pem=b"".join(c.public_bytes(_PEM) for c in chain),
        generation=generation,
    )


class PkiStore:
    """The files of one appliance's PKI (see the module docstring)."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    # --- the site CA ---------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def root_path(self) -> Path:
        return self.directory / "root.pem"

    def has_ca(self) -> bool:
        return self.ca_path.exists()

    def load_ca(self) -> SiteCa:
        try:
            data = self.ca_path.read_bytes()
        except FileNotFoundError as exc:
            raise NoSiteCaError(
                f"no site CA in {self.directory}: create one on the site's first appliance, "
                "or import the one exported there"
            ) from exc
        try:
            return SiteCa(x509.load_pem_x509_certificate(data), load_signing_key(data))
        except (ValueError, TypeError) as exc:
            raise SiteCaDamagedError(
                f"{self.ca_path} is damaged ({exc}): restore the site CA from its export "
                "(import it with its passphrase)"
            ) from exc

    def save_ca(self, ca: SiteCa) -> None:
        write_atomic(self.ca_path, ca.key_pem + ca.cert_pem, SECRET)
        write_atomic(self.root_path, ca.cert_pem, PUBLIC)

    def ensure_ca(self, site: str, now: datetime.datetime, *, kind: KeyKind = "ec") -> SiteCa:
        """The stored CA, made and stored first if there is none (first start)."""
        if self.has_ca():
            return self.load_ca()
        ca = create_ca(site, now, kind=kind)
        self.save_ca(ca)
        return ca

    def root_pem(self) -> bytes:
        """The site root certificate in PEM (what gateways import)."""
        return self.load_ca().cert_pem

    # --- credentials ---------------------------------------------------------------------

    def credential_path(self, name: str) -> Path:
        return self.directory / "certs" / f"{checked_name(name)}.pem"

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(p.stem for p in (self.directory / "certs").glob("*.pem")))

    def load_credential(self, name: str) -> Credential:
        path = self.credential_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise PkiError(f"no certificate named {name!r} in {path.parent}") from exc
        meta = path.with_suffix(".json")
        generation = int(json.loads(meta.read_text())["generation"]) if meta.exists() else 1
        return _credential(name, data, generation)

    def save_credential(self, credential: Credential) -> Path:
        path = self.credential_path(credential.name)
        write_atomic(path, credential.bundle_pem, SECRET)
        meta = json.dumps({"generation": credential.generation}).encode()
        write_atomic(path.with_suffix(".json"), meta, PUBLIC)
        return path

    def ensure_server(
        self,
        ca: SiteCa,
        name: str,
        now: datetime.datetime,
        *,
        dns_names: Sequence[str] = (),
        ips: Sequence[str | IpAddress] = (),
    ) -> Credential:
        """The stored credential ``name`` if the site CA issued it for exactly these names and
        more than :data:`RENEW_BEFORE` of its validity is left; otherwise a new one (one
        generation later) is issued and stored. Called at every start, this renews role
        certificates before they expire."""
        try:
            old: Credential | None = self.load_credential(name)
        except PkiError:
            old = None
        if old is not None:
            have = set(general_names(*sans_of(old.certificate)))
            fresh_enough = old.not_after - utc(now) > RENEW_BEFORE
            if have == set(general_names(dns_names, ips)) and _signed_by(old, ca) and fresh_enough:
                return old
        generation = old.generation + 1 if old is not None else 1
        fresh = issue_server(ca, name, now, dns_names=dns_names, ips=ips, generation=generation)
        self.save_credential(fresh)
        return fresh

    def renew(self, name: str, now: datetime.datetime) -> Credential:
        """``Renew-CcServerCertificate``: a new key and certificate, same names, next
        generation."""
        renewed = renew(self.load_ca(), self.load_credential(name), now)
        self.save_credential(renewed)
        return renewed

    def reset_ca(self, site: str, now: datetime.datetime, *, kind: KeyKind = "ec") -> SiteCa:
        """``Reset-CcCACertificate``: a new site CA, and every stored credential with a key
        re-issued by it (same names, next generation). Gateways must import the new root."""
        ca = create_ca(site, now, kind=kind)
        self.save_ca(ca)
        for name in self.names():
            old = self.load_credential(name)
            if old.key_pem:
                self.save_credential(renew(ca, old, now))
        return ca

    # --- trust and the external certificate ------------------------------------------------

    def trust_store(self) -> TrustStore:
        """The site root and the roots imported under ``trust/``."""
        imported = {
            path.stem: x509.load_pem_x509_certificate(path.read_bytes())
            for path in sorted((self.directory / "trust").glob("*.pem"))
        }
        return TrustStore(self.load_ca().certificate, MappingProxyType(imported))

    def import_root(self, label: str, pem: bytes, now: datetime.datetime) -> TrustStore:
        """Trust the root in ``pem`` under ``label`` (a gateway that brings its own chain)."""
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise CertificateFileError(f"not a PEM certificate: {exc}") from exc
        store = self.trust_store().with_root(checked_name(label), cert, now)
        write_atomic(self.directory / "trust" / f"{label}.pem", cert.public_bytes(_PEM), PUBLIC)
        return store

    def remove_root(self, label: str) -> TrustStore:
        store = self.trust_store().without(label)
        (self.directory / "trust" / f"{checked_name(label)}.pem").unlink()
        return store

    @property
    def external_path(self) -> Path:
        return self.directory / "external.pem"

    def import_external(
        self,
        data: bytes,
        password: str | None,
        pool_fqdn: str,
        sip_domains: Sequence[str],
        now: datetime.datetime,
    ) -> tuple[Problem, ...]:
        """Check the edge's external certificate file and store it (key, certificate, chain as
        one PEM) only if nothing is wrong; the problems found otherwise."""
        bundle = load_bundle(data, password)
        problems = check_external(bundle, pool_fqdn, sip_domains, now)
        if not problems and bundle.key is not None:
            chain = b"".join(c.public_bytes(_PEM) for c in bundle.certificates)
            write_atomic(self.external_path, key_pem(bundle.key) + chain, SECRET)
        return problems

    def certificates(self) -> dict[str, x509.Certificate]:
        """Every stored certificate by a name for reports: ``ca``, ``cert:<name>``,
        ``trust:<label>``, ``external``."""
        found: dict[str, x509.Certificate] = {}
        if self.has_ca():
            found["ca"] = self.load_ca().certificate
            found.update((f"trust:{k}", v) for k, v in self.trust_store().imported.items())
        found.update((f"cert:{n}", self.load_credential(n).certificate) for n in self.names())
        if self.external_path.exists():
            found["external"] = load_bundle(self.external_path.read_bytes()).certificates[0]
        return found


def _signed_by(credential: Credential, ca: SiteCa) -> bool:
    try:
        credential.certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
