"""hybridvoice.pki: the site certificate authority and the certificate rules (RFC 5280).

- ``ca``: the site CA, made once and shared by export/import (PKCS #12, RFC 7292);
- ``issue``: server certificates of the roles and gateways, renewal (:class:`Credential`);
- ``trust``: the site root plus imported gateway roots;
- ``bundle`` and ``external``: reading an admin's PEM/PKCS #12 file and checking the access
  edge's external certificate; ``lab``: a correct one for labs;
- ``expiry``: days left per certificate; ``store`` and ``files``: the state directory.

No sockets, no event loop, no ``ssl``: time is a parameter (``now``, an aware UTC datetime),
randomness comes from ``cryptography``. TLS adapters build their contexts from the PEM this
package writes. See ``docs/pki.md``.
"""

from .bundle import CertificateBundle, load_bundle
from .ca import CA_LIFETIME, SiteCa, create_ca, export_ca, import_ca
from .errors import (
    CaFileCorruptError,
    CaImportError,
    CaPassphraseError,
    CertificateFileError,
    IssueError,
    NoSiteCaError,
    PkiError,
    SiteCaDamagedError,
    TrustError,
)
from .expiry import WARN_DAYS, Expiry, expiry_report
from .external import RULES, Problem, check_external
from .issue import SERVER_LIFETIME, Credential, issue_from_csr, issue_server, renew
from .lab import LabExternal, make_lab_external
from .store import RENEW_BEFORE, PkiStore
from .trust import TrustStore

__all__ = [
    "CA_LIFETIME",
    "RENEW_BEFORE",
    "RULES",
    "SERVER_LIFETIME",
    "WARN_DAYS",
    "CaFileCorruptError",
    "CaImportError",
    "CaPassphraseError",
    "CertificateBundle",
    "CertificateFileError",
    "Credential",
    "Expiry",
    "IssueError",
    "LabExternal",
    "NoSiteCaError",
    "PkiError",
    "PkiStore",
    "Problem",
    "SiteCa",
    "SiteCaDamagedError",
    "TrustError",
    "TrustStore",
    "check_external",
    "create_ca",
    "expiry_report",
    "export_ca",
    "import_ca",
    "issue_from_csr",
    "issue_server",
    "load_bundle",
    "make_lab_external",
    "renew",
]
