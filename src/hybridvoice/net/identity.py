"""Who is at the other end of a TLS connection (or of an in-process pipe), and why a TLS peer
was refused.

A peer's identity is what its certificate says (RFC 5922 §7.1): the DNS names of its
subjectAltName (the subject CN only when there are none, RFC 5922 §7.1 and RFC 6125 §6.4.4)
and its IP addresses. :meth:`PeerIdentity.matches` checks a name against it as RFC 5922 §7.2
says for SIP: exact, case-insensitive, no wildcards; an IP literal against the IP SANs
(RFC 5280 §4.2.1.6). A pipe between roles of one process carries the identity of the
listener it reached (:mod:`.pipe`), so that the same check runs as over a socket.

:func:`refusal_reason` names why a handshake failed, from the ``ssl`` error: a fixed set of
label values (:data:`RefusalReason`), never text from the wire. It is the one classifier of
the project: SIP listeners and connections (``hybridvoice_tls_refused_total``), the HTTPS
servers (:mod:`.http_tls`: the online API's
``hybridvoice_online_appliance_auth_refused_total``, MRAS's
``hybridvoice_mras_tls_refused_total``) all count with it.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

from cryptography import x509

__all__ = [
    "MAX_REFUSED_PEERS",
    "REFUSAL_REASONS",
    "PeerIdentity",
    "RefusalReason",
    "count_refusal",
    "refusal_detail",
    "refusal_reason",
]

_log = logging.getLogger("hybridvoice.net.tls")

#: distinct ``peer`` labels of one transport's refusal counter; more count as "other"
MAX_REFUSED_PEERS: Final = 256

#: Why a TLS peer was refused (the ``reason`` label): ``untrusted-chain`` (no trusted root
#: signs it), ``bad-certificate`` (a chain that fails otherwise: a bad signature, a key usage
#: or purpose that does not allow this use, a certificate OpenSSL cannot use),
#: ``name-mismatch`` (its certificate does not name the host we asked for, or the gateway it
#: claims to be), ``expired`` / ``not-yet-valid``, ``no-certificate`` (MTLS: the peer sent
#: none), ``refused-by-peer`` (the peer's alert: it did not accept ours),
#: ``protocol-version`` (below TLS 1.2), ``handshake-timeout``, ``handshake-failed`` (any
#: other handshake error: a plain TCP client on a TLS port, a reset).
RefusalReason = Literal[
    "untrusted-chain",
    "bad-certificate",
    "name-mismatch",
    "expired",
    "not-yet-valid",
    "no-certificate",
    "refused-by-peer",
    "protocol-version",
    "handshake-timeout",
    "handshake-failed",
]
REFUSAL_REASONS: Final[tuple[RefusalReason, ...]] = get_args(RefusalReason)

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h); any other verify error is "bad-certificate"
_VERIFY_CODES: Final[Mapping[int, RefusalReason]] = {
    2: "untrusted-chain",  # UNABLE_TO_GET_ISSUER_CERT
    9: "not-yet-valid",  # CERT_NOT_YET_VALID
    10: "expired",  # CERT_HAS_EXPIRED
    18: "untrusted-chain",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "untrusted-chain",  # SELF_SIGNED_CERT_IN_CHAIN
    20: "untrusted-chain",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "untrusted-chain",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    27: "untrusted-chain",  # CERT_UNTRUSTED
    30: "untrusted-chain",  # AKID_SKID_MISMATCH
    31: "untrusted-chain",  # AKID_ISSUER_SERIAL_MISMATCH
    32: "untrusted-chain",  # KEYUSAGE_NO_CERTSIGN
    62: "name-mismatch",  # HOSTNAME_MISMATCH
    63: "name-mismatch",  # EMAIL_MISMATCH
    64: "name-mismatch",  # IP_ADDRESS_MISMATCH
}
# OpenSSL reason strings (ssl.SSLError.reason)
_REASONS: Final[Mapping[str, RefusalReason]] = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no-certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "refused-by-peer",
    "SSLV3_ALERT_BAD_CERTIFICATE": "refused-by-peer",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "refused-by-peer",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "refused-by-peer",
    "TLSV1_ALERT_UNKNOWN_CA": "refused-by-peer",
    "TLSV1_ALERT_DECRYPT_ERROR": "refused-by-peer",
    "UNSUPPORTED_PROTOCOL": "protocol-version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol-version",
    "NO_PROTOCOLS_AVAILABLE": "protocol-version",
    "WRONG_VERSION_NUMBER": "protocol-version",
}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors behind it, outermost first."""
    seen: set[int] = set()
    found: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        found.append(cause)
        cause = cause.__cause__ or cause.__context__
    return found


def _timed_out(exc: BaseException) -> bool:
    # asyncio's words when ssl_handshake_timeout expires
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc)
    )


def refusal_reason(exc: BaseException) -> RefusalReason:
    """The label value for a failed handshake (``exc`` or the ``ssl`` error behind it), on
    either side of the connection."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _VERIFY_CODES.get(cause.verify_code, "bad-certificate")
        if isinstance(cause, ssl.SSLError):
            reason = str(getattr(cause, "reason", "") or "")
            known = _REASONS.get(reason)
            if known is not None:
                return known
            if "ALERT" in reason:  # the peer's alert: it did not accept the handshake
                return "refused-by-peer"
            return "bad-certificate" if "CERTIFICATE" in reason else "handshake-failed"
        if _timed_out(cause):
            return "handshake-timeout"
    return "handshake-failed"


def refusal_detail(exc: BaseException, timeout: float | None = None) -> str:
    """What the log line says about a failed handshake: OpenSSL's verify message or reason,
    else the error (a timeout: the limit, when known)."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause.reason)
        if isinstance(cause, ssl.SSLError):
            return str(getattr(cause, "reason", "") or cause)
        if _timed_out(cause) and timeout is not None:
            return f"no handshake within {timeout:g} s"
    return str(exc) or type(exc).__name__


def count_refusal(
    refused: dict[tuple[str, str], int], peer: str, reason: RefusalReason, detail: str
) -> None:
    """Count a refused TLS peer in ``refused`` (a transport's ``counters.tls_refused``) under
    (``peer``, ``reason``) and log why."""
    key = (peer, reason)
    if key not in refused and len({p for p, _ in refused}) >= MAX_REFUSED_PEERS:
        key = ("other", reason)
    refused[key] = refused.get(key, 0) + 1
    _log.warning("TLS peer %s refused (%s): %s", peer, reason, detail)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The names (lower case DNS names) and IP addresses a certificate holds."""

    names: frozenset[str] = frozenset()
    ips: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str] = (), ips: Iterable[str] = ()) -> PeerIdentity:
        found = {_ip(a) for a in ips}
        return cls(
            frozenset(n.strip().rstrip(".").lower() for n in names if n),
            frozenset(a for a in found if a is not None),
        )

    @classmethod
    def from_peercert(cls, cert: Mapping[str, Any] | None) -> PeerIdentity | None:
        """From :meth:`ssl.SSLSocket.getpeercert` (a verified certificate); None without one."""
        if not cert:
            return None
        sans = cert.get("subjectAltName", ())
        names = [v for k, v in sans if k == "DNS"]
        ips = [v for k, v in sans if k == "IP Address"]
        if not names and not ips:  # RFC 5922 §7.1: the CN only without subjectAltName
            names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        return cls.of(names, ips)

    @classmethod
    def from_pem_file(cls, path: Path) -> PeerIdentity:
        """The identity of the first certificate in a PEM file (key, certificate, chain)."""
        return cls.from_pem(path.read_bytes())

    @classmethod
    def from_pem(cls, data: bytes) -> PeerIdentity:
        """The identity of the first certificate in PEM ``data`` (``ValueError``: none)."""
        cert = x509.load_pem_x509_certificates(_certificates_only(data))[0]
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            return cls.of([str(a.value) for a in common])
        return cls.of(
            san.get_values_for_type(x509.DNSName),
            [str(a) for a in san.get_values_for_type(x509.IPAddress)],
        )

    def matches(self, host: str) -> bool:
        """Whether ``host`` (a DNS name or an IP literal) is one of this identity's."""
        ip = _ip(host)
        if ip is not None:
            return ip in self.ips
        return host.strip().rstrip(".").lower() in self.names

    def __str__(self) -> str:
        return ", ".join([*sorted(self.names), *sorted(self.ips)]) or "(no names)"


def _certificates_only(data: bytes) -> bytes:
    start = data.find(b"-----BEGIN CERTIFICATE-----")
    return data[start:] if start >= 0 else data
