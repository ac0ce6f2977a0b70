"""An appliance's identity in its client certificate, toward the online service's API.

The site CA issues each appliance a client certificate (RFC 5280 end entity, ``extKeyUsage``
clientAuth only, §4.2.1.12) whose subject alternative name holds one URI (§4.2.1.6)::

    urn:hybridvoice:appliance:<site>:<appliance>

(RFC 8141 URN syntax; the site and appliance names are percent-encoded, RFC 3986 §2.1, so a
``:`` in a name cannot move the boundary). The online service reads it back from the verified
peer certificate (:func:`identity_of`) and checks that the site CA of that site issued it
(:func:`issued_by`): an appliance of site A cannot speak for site B, even when both CAs are
trusted. The subject is ``CN=<appliance>, OU=<site>`` for people reading the certificate; only
the URI counts.

No sockets, no ``ssl``: time is a parameter (``now``, an aware UTC datetime).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ca import SiteCa, utc
from .errors import IssueError, PkiError
from .issue import SERVER_LIFETIME, Credential, sign_leaf
from .keys import KeyKind, generate_key, key_kind, key_pem
from .store import RENEW_BEFORE, PkiStore

__all__ = [
    "APPLIANCE_URN",
    "CLIENT_CREDENTIAL",
    "ApplianceIdentity",
    "ensure_appliance",
    "identity_of",
    "issue_appliance",
    "issued_by",
    "site_of",
]

#: the URN prefix of an appliance identity
APPLIANCE_URN: Final = "urn:hybridvoice:appliance:"
#: the name the appliance's client certificate is stored under (``certs/online-client.pem``)
CLIENT_CREDENTIAL: Final = "online-client"
_CA_SUFFIX: Final = " site CA"
_URN: Final = re.compile(re.escape(APPLIANCE_URN) + r"([^:]+):([^:]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ApplianceIdentity:
    """Which appliance of which site a certificate speaks for."""

    site: str
    appliance: str

    @property
    def uri(self) -> str:
        """The URI SAN: ``urn:hybridvoice:appliance:<site>:<appliance>``."""
        return f"{APPLIANCE_URN}{quote(self.site, safe='')}:{quote(self.appliance, safe='')}"

    @classmethod
    def parse(cls, uri: str) -> ApplianceIdentity | None:
        """The identity ``uri`` names, or None when it is no appliance URN."""
        match = _URN.fullmatch(uri)
        if match is None:
            return None
        site, appliance = unquote(match.group(1)), unquote(match.group(2))
        if not site.strip() or not appliance.strip():
            return None
        return cls(site, appliance)

    def __str__(self) -> str:
        return f"appliance {self.appliance!r} of site {self.site!r}"


def identity_of(cert: x509.Certificate) -> ApplianceIdentity | None:
    """The appliance identity in ``cert``'s URI SANs; None without exactly one."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    found = {i for i in map(ApplianceIdentity.parse, uris) if i is not None}
    return found.pop() if len(found) == 1 else None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``cert`` (its issuer name and signature; not the dates)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issue_appliance(
    ca: SiteCa,
    appliance: str,
    now: datetime.datetime,
    *,
    kind: KeyKind | None = None,
    generation: int = 1,
    lifetime: datetime.timedelta = SERVER_LIFETIME,
) -> Credential:
    """A new key and client certificate for ``appliance`` of the CA's site (the site name is
    read from the CA: ``CN=<site> site CA``). Credential name: ``online-client``."""
    site = site_of(ca)
    if not appliance.strip():
        raise IssueError("the appliance of a client certificate needs a name")
    identity = ApplianceIdentity(site, appliance.strip())
    key = generate_key(kind or key_kind(ca.key))
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, identity.appliance[:64]),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.site[:64]),
    ])  # fmt: skip
    uri: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    cert = sign_leaf(ca, subject, key.public_key(), uri, now,
                     usages=(ExtendedKeyUsageOID.CLIENT_AUTH,), lifetime=lifetime)  # fmt: skip
    return Credential(
        name=CLIENT_CREDENTIAL,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem(key),
        chain_pem=ca.cert_pem,
        generation=generation,
    )


def site_of(ca: SiteCa | x509.Certificate) -> str:
    """The site a site CA belongs to (its subject ``CN=<site> site CA``)."""
    cert = ca.certificate if isinstance(ca, SiteCa) else ca
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else ""
    if not common.endswith(_CA_SUFFIX) or not common.removesuffix(_CA_SUFFIX).strip():
        raise IssueError(f"{common!r} is not a site CA's name (CN=<site> site CA)")
    return common.removesuffix(_CA_SUFFIX)


def ensure_appliance(
    store: PkiStore, ca: SiteCa, appliance: str, now: datetime.datetime
) -> Credential:
    """The stored client certificate of ``appliance`` if ``ca`` issued it for this identity
    and more than :data:`~.store.RENEW_BEFORE` of its validity is left; otherwise a new one
    (one generation later), stored. Called at every start of an appliance whose ServiceUrl
    is https: the certificate is made on first start and renewed before it expires."""
    try:
        old: Credential | None = store.load_credential(CLIENT_CREDENTIAL)
    except PkiError:
        old = None
    want = ApplianceIdentity(site_of(ca), appliance.strip())
    if old is not None:
        cert = old.certificate
        fresh = old.not_after - utc(now) > RENEW_BEFORE
        if identity_of(cert) == want and issued_by(cert, ca.certificate) and fresh:
            return old
    generation = old.generation + 1 if old is not None else 1
    credential = issue_appliance(ca, appliance, now, generation=generation)
    store.save_credential(credential)
    return credential
