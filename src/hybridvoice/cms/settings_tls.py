"""The TLS keys of a ``[GatewayN]``: transport TCP, TLS or MTLS, and whom to trust (RFC 5630
§3, RFC 5922 §7, RFC 5280 §4.2.1.9).

- ``Protocol = "MTLS"``: TLS with certificates on both sides (the mediation role presents its
  site certificate and requires the gateway's, on ``[MediationServer] TLSPort`` 5067 as in
  CCE). It is read as ``Protocol = "TLS"`` plus ``MutualTls = true``; without a ``Port`` the
  gateway is reached on 5067.
- ``TrustedRootsFile``: a PEM file of the root (CA) certificates the gateway's own chain ends
  in (a public CA, the carrier's CA). Without it the gateway's certificate must come from the
  site CA (``hybridvoice ca issue-gateway``) or a root imported into the site PKI.
- The name checked against the gateway's certificate (RFC 5922 §7.2: a subjectAltName,
  exact, no wildcards) is its ``FQDN``, else its ``IP`` (an IP subjectAltName).

Each problem names its key and the reason. The file is read when the settings are validated
(so a wrong path stops the start with the key named) and again when the TLS contexts are built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from pydantic import field_validator, model_validator

from .settings_values import _Section

__all__ = ["MTLS_PORT", "GatewayTls", "read_roots"]

#: where a gateway speaking MTLS is reached when its section gives no ``Port`` (CCE: 5067)
MTLS_PORT = 5067


def read_roots(path: Path) -> bytes:
    """The CA certificates of a ``TrustedRootsFile`` in PEM; ``ValueError`` naming what is
    wrong (unreadable, no certificate, a certificate that is not a CA)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate (BEGIN CERTIFICATE)") from None
    for cert in certs:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            raise ValueError(
                f"{cert.subject.rfc4514_string()} in {path} is not a CA certificate: give the "
                "root of the gateway's chain, not the gateway's own certificate"
            )
    return data


class GatewayTls(_Section):
    """The TLS keys of a gateway section (mixed into ``cms.settings.Gateway``)."""

    #: TLS with our certificate presented and the gateway's required (``Protocol = "MTLS"``)
    mutual_tls: bool = False
    #: the roots the gateway's own chain ends in; None: the site CA and its imported roots
    trusted_roots_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _mtls(cls, value: Any) -> Any:
        """``Protocol = "MTLS"`` is TLS with ``MutualTls = true`` (and Port 5067 by default)."""
        if not isinstance(value, dict):
            return value
        key = "Protocol" if "Protocol" in value else "protocol"
        protocol = value.get(key)
        if not isinstance(protocol, str) or protocol.upper() != "MTLS":
            return value
        fixed = {**value, key: "TLS", "MutualTls": True}
        fixed.pop("mutual_tls", None)
        if "Port" not in value and "port" not in value:
            fixed["Port"] = MTLS_PORT
        return fixed

    @field_validator("trusted_roots_file")
    @classmethod
    def _roots(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_roots(value)
        return value

    @model_validator(mode="after")
    def _tls_only(self) -> GatewayTls:
        protocol = getattr(self, "protocol", "TLS")
        if protocol != "TLS":
            for key, given in (("MutualTls", self.mutual_tls),
                               ("TrustedRootsFile", self.trusted_roots_file)):  # fmt: skip
                if given:
                    raise ValueError(
                        f'{key} is for TLS gateways: set Protocol = "TLS" or "MTLS" '
                        f"(it is {protocol})"
                    )
        return self

    @property
    def tls_name(self) -> str:
        """The name the gateway's certificate must hold (RFC 5922 §7.2): FQDN, else IP."""
        return str(getattr(self, "fqdn", None) or getattr(self, "ip", None) or "")
