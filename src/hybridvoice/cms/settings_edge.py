"""``[MediaRelay]``: the edge's media relay (TURN, RFC 8656) and its MRAS service.

The original Edge Server's media relay listened on UDP 3478 and TCP 443 of its external
interface (``[EdgeServer] ExternalMRIPs``), relayed on ``ExternalMRPortRange`` and advertised
``ExternalMRPublicIPs`` behind NAT; its Media Relay Authentication Service (MRAS) handed out
time-limited credentials from a secret the site shares. CloudConnector.ini fixes the ports;
this section names them so that labs can move them, and holds the relay's policy:

- ``Enabled``: on, off, or (left out) on when ``[EdgeServer] ExternalMRIPs`` is set;
- ``UDPPort`` (3478) and ``TCPPort`` (443 in production; ``false`` switches TCP off);
- ``MRASPort``: the MRAS HTTP listener the online service asks for credentials (on
  ``MRASIP``, default the first ``ExternalSIPIPs``);
- ``SecretFile``: the MRAS secret shared by the site's appliances (none: ``hybridvoice up``
  makes one in ``[Management] StateDirectory``, or keeps one in memory);
- ``AllowInternalPeers`` (labs): relay to loopback, link-local and the appliance's own
  addresses, which RFC 8656 §21.3 otherwise refuses;
- ``UserQuota``, ``RequestsPerSecond``/``RequestBurst`` (per source address),
  ``CredentialLifetimeSeconds``, ``Realm``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from .settings_values import IPAddress, ListenPort, OptionalListenPort, _Section

if TYPE_CHECKING:
    from .settings import EdgeServer

__all__ = ["MediaRelay", "relay_addresses"]


class MediaRelay(_Section):
    """``[MediaRelay]`` (hybridvoice): the edge's TURN relay and MRAS."""

    enabled: bool | None = None
    udp_port: ListenPort = 3478
    tcp_port: OptionalListenPort = 443
    mras_ip: IPAddress | None = Field(
        default=None, validation_alias="MRASIP", serialization_alias="MRASIP"
    )
    mras_port: ListenPort = Field(
        default=8474, validation_alias="MRASPort", serialization_alias="MRASPort"
    )
    secret_file: str | None = None
    allow_internal_peers: bool = False
    user_quota: int = Field(default=10, ge=1, le=100_000)
    requests_per_second: float = Field(default=20.0, gt=0, le=1_000_000)
    request_burst: int = Field(default=50, ge=1, le=1_000_000)
    credential_lifetime_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 86_400)
    realm: str | None = None

    @field_validator("secret_file")
    @classmethod
    def _secret_file(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a file (or be left out), got an empty string")
        return value

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str | None) -> str | None:
        if value is not None and (not value or len(value) > 127 or not value.isprintable()):
            raise ValueError(f"must be 1-127 printable characters, got {value!r}")
        return value


def relay_addresses(relay: MediaRelay, edge: EdgeServer) -> tuple[bool, str, str, str]:
    """Whether the relay runs, where it listens, what it advertises, where MRAS listens:
    ``ExternalMRIPs`` (else the first ``ExternalSIPIPs``), ``ExternalMRPublicIPs`` (else the
    listen address), ``MRASIP`` (else the first ``ExternalSIPIPs``)."""
    mr_ips, sip_ips = edge.external_mr_ips, edge.external_sip_ips
    on = relay.enabled if relay.enabled is not None else bool(mr_ips)
    host = mr_ips[0] if mr_ips else sip_ips[0]
    public = edge.external_mr_public_ips[0] if edge.external_mr_public_ips else host
    return on, host, public, relay.mras_ip or sip_ips[0]
