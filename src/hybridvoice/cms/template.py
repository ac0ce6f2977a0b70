"""Write a settings file: a commented TOML document whose keys mirror CloudConnector.ini.

``hybridvoice init`` uses :func:`render_settings` on either the lab defaults
(:func:`lab_settings`: one site, a lab gateway on loopback) or on settings imported from a
real CloudConnector.ini (:func:`hybridvoice.cms.ini.import_ini`), in which case the keys that
could not be carried over are listed at the top of the file too. The output always loads
back with :func:`hybridvoice.cms.settings.load_settings` to the same settings (tested).
tomlkit writes the document so that values are quoted and escaped correctly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import tomlkit
from tomlkit.items import Table

from .settings import MediaRelay, MediationServer, Settings, parse_settings

if TYPE_CHECKING:
    from .ini import ImportNote

__all__ = ["LAB_GATEWAY_PORT", "lab_settings", "render_settings"]

#: where the built-in lab gateway of ``hybridvoice up`` listens (UDP, loopback)
LAB_GATEWAY_PORT: Final = 5080

_SECTION_NOTES: Final[Mapping[str, str]] = {
    "Common": "The appliance and its site (CloudConnector.ini [Common]).",
    "EdgeServer": (
        "The access edge: external side toward the online service, internal side toward this\n"
        "appliance's mediation role. CCE used MTLS on 5061 on both sides (one VM each); on one\n"
        "host no two listeners may share an address (docs/reference.md, Ports). TLS: MTLS with\n"
        "certificates the site CA issues (docs/pki.md). TCP: labs."
    ),
    "MediationServer": (
        "The mediation role: gateway-side listeners (TCP 5068 / TLS 5067, UDP when a gateway\n"
        "needs it), the RTP relay port range (4 ports per anchored call) and the media bypass\n"
        "web service (internal interface only)."
    ),
    "Online": "How this appliance reaches the online service (registration, heartbeats, "
    "replication).",
    "Management": "This appliance's management API (status, calls) and its state directory\n"
    "(hybridvoice up keeps its state in --state-dir, default the per-user data directory).",
    "TrunkConfiguration": "Trunk-wide behaviour; a gateway's own keys override these.",
    "SipLimits": (
        "What one peer may hold on the SIP TCP/TLS listeners (slow or hostile peers); every\n"
        "time a limit bites it is counted in hybridvoice_sip_dropped_total."
    ),
    "MediaRelay": (
        "The edge's media relay (TURN: UDP 3478, TCP 443 in production) and MRAS, on when\n"
        "[EdgeServer] ExternalMRIPs is set or Enabled = true (docs/edge-media.md)."
    ),
    "Segments": (
        "The network segments of call paths (docs/planning.md): the customer's subnets, the\n"
        "cloud prefixes over a private peering link, the online service's addresses; every\n"
        "other address is the internet."
    ),
    "HybridVoiceRoutes": (
        "Voice routes: name = regular expression on the dialled number (+E.164).\n"
        "A gateway takes the calls of the routes listed in its VoiceRoutes."
    ),
}

_KEY_NOTES: Final[Mapping[str, str]] = {
    "SIPDomains": "space-separated; the first is the default domain",
    "HardwareType": "Normal = 500 concurrent calls, Minimum = 50",
    "OnlineSipFederationFqdn": "the online service's SIP name (edge external next hop)",
    "InternalServerIPs": "where the edge listens for its mediation role",
    "ExternalSIPIPs": "where the edge listens for the online service",
    "MediationTimeoutSeconds": "no answer from mediation within this: 503 to the cloud",
    "BypassServicePort": "80 as in the original (needs privilege); >= 1024 runs as any user",
    "InternalSubnets": "clients in these subnets are internal (media bypass applies)",
    "ServiceURL": "the online service's API; https: appliances authenticate with a client "
    "certificate from the site CA (made on first start), bearer tokens are for admins",
    "OtherServiceURLs": "the tenant's other online instances, tried when ServiceURL fails",
    "DigestAlgorithms": "MD5 for SIPp and baresip 1.0; 'SHA-256 MD5' for RFC 8760 clients",
    "TrustedPeers": "networks not challenged (an SBC that authenticates its own users)",
    "AuthFailureLimit": "failed logins per source or per user before a block (0: off)",
    "AuthFailureWindowSeconds": "the window AuthFailureLimit counts failures in",
    "AuthBlockSeconds": "the first block; each repeat offence doubles it",
    "AuthBlockMaxSeconds": "the longest block",
    "SIPAddresses": "the online service's SIP addresses the edge accepts requests from",
    "OptionsIntervalSeconds": "SIP OPTIONS health checks toward every gateway",
    "EnableFastFailoverTimer": "an unanswered outbound call moves on after 10 s",
    "HeadTimeoutSeconds": "a message must be complete this long after its first byte",
    "IdleTimeoutSeconds": "a connection carrying nothing (not even keep-alives) is closed",
    "MaxConnectionsPerSource": "accepted connections from one IP address at a time",
    "MaxConnections": "accepted connections of one listener at a time",
    "MaxRequestBytes": "larger API request bodies get 413 before they are read",
    "OnlineToken": "bearer token for ServiceURL: hybridvoice token create --scope appliance",
    "MRASPort": "TURN credentials for the online service (POST /mras/v1/credentials)",
    "AllowInternalPeers": "labs: relay to loopback, link-local and this appliance's addresses",
}


def lab_settings(*, domain: str = "contoso.example", site: str = "Lab") -> Settings:
    """Settings for a one-machine lab: loopback everywhere, TCP between the roles, the
    built-in lab gateway (UDP :data:`LAB_GATEWAY_PORT`) taking every number."""
    return parse_settings(
        {
            "Common": {"SIPDomains": domain, "SiteName": site, "ServerName": "appliance1"},
            "EdgeServer": {
                "InternalServerIPs": "127.0.0.1",
                "InternalPort": 5071,
                "InternalProtocol": "TCP",
                "ExternalSIPIPs": "127.0.0.1",
                "ExternalSIPPort": 5061,
                "ExternalProtocol": "TCP",
            },
            "MediationServer": {
                "IP": "127.0.0.1",
                "TCPPort": 5068,
                "TLSPort": None,
                "UDPPort": 5069,
                "InternalPort": 5062,
                "InternalProtocol": "TCP",
                "BypassServicePort": 8471,
                "InternalSubnets": "127.0.0.0/8",
            },
            "Online": {
                "ServiceURL": "http://127.0.0.1:8470",
                "SIPAddresses": "127.0.0.1",
                "SIPPort": 5060,
                "SIPProtocol": "TCP",
                "DigestAlgorithms": "MD5",
            },
            "Gateway1": {
                "IP": "127.0.0.1",
                "Port": LAB_GATEWAY_PORT,
                "Protocol": "UDP",
                "VoiceRoutes": "LocalRoute",
                "MediaBypass": True,  # the tenant's media bypass setting decides
            },
            "HybridVoiceRoutes": {"LocalRoute": ".*"},
            "TrunkConfiguration": {"OptionsIntervalSeconds": 5},
        }
    )


def _value(value: Any) -> Any:
    """Settings values as TOML values: lists of words become one space-separated string, as
    CloudConnector.ini writes them (the schema reads both)."""
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return " ".join(str(v) for v in value)
    return value


def _table(
    values: Mapping[str, Any],
    note: str | None,
    defaults: Mapping[str, Any] | None = None,
    changed: Mapping[str, str] | None = None,
) -> Table:
    table = tomlkit.table()
    if note:
        for line in note.splitlines():
            table.add(tomlkit.comment(line))
    for key, raw in values.items():
        off = raw is None and defaults is not None and defaults.get(key) is not None
        if not off and (raw is None or raw in ([], {})):
            continue  # unset: the schema's default applies
        item = tomlkit.item(False if off else _value(raw))  # False: a listener switched off
        if changed and key in changed:
            item.comment(changed[key])  # what the import changed says more than the default
        elif key in _KEY_NOTES:
            item.comment(_KEY_NOTES[key])
        table.add(key, item)
    return table


def render_settings(
    settings: Settings,
    *,
    source: str | None = None,
    unmapped: Sequence[str] = (),
    notes: Sequence[ImportNote] = (),
) -> str:
    """``settings`` as a commented TOML document; ``source``, ``unmapped`` (keys of an
    imported CloudConnector.ini that have no hybridvoice setting) and ``notes`` (what the
    import changed: key, old value, new value, why) go into the header, and each note's
    old value beside its key too."""
    data = settings.model_dump(by_alias=True, mode="json")
    doc = tomlkit.document()
    doc.add(tomlkit.comment("hybridvoice appliance settings. Keys mirror CloudConnector.ini;"))
    doc.add(tomlkit.comment("check with `hybridvoice up --config FILE` (errors name the key)."))
    if source:
        doc.add(tomlkit.comment(f"Imported from {source}."))
    if unmapped:
        doc.add(tomlkit.comment(f"{len(unmapped)} key(s) of the ini file were not carried over:"))
        for key in unmapped:
            doc.add(tomlkit.comment(f"  {key}"))
    if notes:
        doc.add(
            tomlkit.comment(f"{len(notes)} value(s) changed by the import (key: old -> new: why):")
        )
        for change in notes:
            doc.add(tomlkit.comment(f"  {change}"))
    for line in _tls_header(settings):
        doc.add(tomlkit.comment(line))
    doc.add(tomlkit.nl())
    changed: dict[str, dict[str, str]] = {}
    for change in notes:
        section, _, key = change.key.partition(".")
        changed.setdefault(section, {})[key] = f"was {change.old} (see the notes at the top)"
    defaults = MediationServer().model_dump(by_alias=True, mode="json")
    sections = ("Common", "EdgeServer", "MediationServer", "Online", "Management")
    for section in (*sections, "TrunkConfiguration"):
        known = defaults if section == "MediationServer" else None
        note = _SECTION_NOTES.get(section)
        doc.add(section, _table(data[section], note, known, changed.get(section)))
    doc.add("SipLimits", _table(data["SipLimits"], _SECTION_NOTES["SipLimits"]))
    relay_defaults = MediaRelay().model_dump(by_alias=True, mode="json")
    doc.add("MediaRelay", _table(data["MediaRelay"], _SECTION_NOTES["MediaRelay"], relay_defaults,
                                 changed.get("MediaRelay")))  # fmt: skip
    for section, values in _other_sections(settings, data):  # [Traces], [Logging]...
        doc.add(section, _table(values, _SECTION_NOTES.get(section)))
    routes = data.get("HybridVoiceRoutes") or {}
    doc.add("HybridVoiceRoutes", _table(routes, _SECTION_NOTES["HybridVoiceRoutes"]))
    for index, gateway in enumerate(data.get("Gateways") or (), start=1):
        note = "A PSTN gateway, SBC or IP-PBX." if index == 1 else None
        values = {k: v for k, v in gateway.items() if k != "Name"}
        doc.add(f"Gateway{index}", _table(values, note, changed=changed.get(gateway["Name"])))
    return tomlkit.dumps(doc)


#: the sections render_settings writes itself (always, with notes), and the lists
_WRITTEN: Final = frozenset({
    "Common", "EdgeServer", "MediationServer", "Online", "Management", "TrunkConfiguration",
    "SipLimits", "MediaRelay", "HybridVoiceRoutes", "Gateways",
})  # fmt: skip


def _other_sections(settings: Settings, data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every other section (``[HealthMonitor]``, ``[Traces]``, ``[Logging]``, ...) whose
    values are not all the defaults: a file written from settings says all they say."""
    out = []
    for name, field in type(settings).model_fields.items():
        key = field.validation_alias
        if not isinstance(key, str) or key in _WRITTEN or not isinstance(data.get(key), dict):
            continue
        default = type(getattr(settings, name))().model_dump(by_alias=True, mode="json")
        if data[key] != default:
            out.append((key, data[key]))
    return out


def _tls_header(settings: Settings) -> tuple[str, ...]:
    """What the header says about certificates when a hop between the roles speaks TLS."""
    s, edge = settings, settings.edge_server
    hops = {"Online.SIPProtocol": s.online.sip_protocol,
            "EdgeServer.ExternalProtocol": edge.external_protocol,
            "EdgeServer.InternalProtocol": edge.internal_protocol,
            "MediationServer.InternalProtocol": s.mediation_server.internal_protocol}  # fmt: skip
    tls = [key for key, protocol in hops.items() if protocol == "TLS"]
    if not tls:
        return ()
    return (
        f"MTLS between the roles ({', '.join(tls)} = TLS): the site CA issues the",
        "certificates. `hybridvoice up` creates the CA at its first start (in <state dir>/pki,",
        "shared by the site's appliances: hybridvoice ca backup / restore) and issues each",
        "role's certificate for the FQDNs and IPs of these settings; hybridvoice ca status.",
    )
