"""The online service's tenant model: users, sites, tenant configuration, appliances, dial plan.

Frozen pydantic models that validate on construction and serialise with
``model_dump(mode="json")``; those values travel in the replication feed
(:class:`hybridvoice.cms.changes.Change`). The fields follow Cloud Connector Edition's cloud-side
cmdlets: ``Set-CsUserPstnSettings`` (HybridPSTNSite, AllowInternationalCalls) and the user's
LineURI (RFC 3966 ``tel:`` global number, E.164 per ITU-T E.164 §6: at most 15 digits),
``New-CsHybridPSTNSite``, ``Set-CsTenantHybridConfiguration`` (HybridConfigServiceInternalUrl,
PeerDestination), ``Set-CsNetworkConfiguration`` (MediaBypassSettings), ``Register-CcAppliance``
and the online dial plan's normalisation rules.

Secrets: a user's password is never stored. :meth:`User.with_password` keeps the Digest HA1s
(RFC 7616 §3.4.2: H(username ":" realm ":" password), MD5 and SHA-256) with the realm they were
computed for; :func:`replicated` drops them from what the feed carries.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.uri import SipUri, parse_uri
from hybridvoice.sip.value_cache import ValueCache

__all__ = [
    "SECRET_USER_FIELDS",
    "Appliance",
    "ApplianceStatus",
    "DialPlanRule",
    "HybridConfig",
    "NetworkConfig",
    "Site",
    "User",
    "canonical_aor",
    "canonical_fqdn",
    "ha1",
    "replicated",
]

_LABEL: Final = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_FQDN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_SEPARATORS: Final = str.maketrans("", "", "-.() ")
_HEX_MD5: Final = re.compile(r"[0-9a-f]{32}")
_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_GROUP_REF: Final = re.compile(r"\$(\d+)|\\(\d+)")

#: user fields kept in the store but never put in a replicated change value
SECRET_USER_FIELDS: Final = frozenset({"ha1_md5", "ha1_sha256", "ha1_realm"})

ApplianceStatus = Literal["online", "offline", "maintenance"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


# --- shared validation ---------------------------------------------------------------------------


def canonical_fqdn(value: str, what: str = "host name") -> str:
    """A DNS name in lower case without the trailing dot; ValueError names the problem."""
    host = value.strip().lower().rstrip(".")
    if not host or len(host) > 253 or not _FQDN.fullmatch(host):
        raise ValueError(f"{what} {value!r} is not a valid DNS name (letters, digits, '-', '.')")
    return host


def canonical_aor(value: str, cache: ValueCache | None = None) -> str:
    """``sip:user@host`` with the host in lower case and no port, parameters or headers.

    Accepts ``sips:`` (kept as ``sip:``: one address of record per user) and the bare
    ``user@host`` form. ValueError when there is no user part or the URI is malformed.
    ``cache``: the caller's memo of parsed values (:mod:`hybridvoice.sip.value_cache`).
    """
    text = value.strip()
    if "@" in text and ":" not in text.partition("@")[0]:
        text = "sip:" + text
    try:
        uri = parse_uri(text, cache)
    except ParseError as exc:
        raise ValueError(f"{value!r} is not a SIP URI like sip:alice@contoso.com") from exc
    if not isinstance(uri, SipUri) or not uri.user:
        raise ValueError(f"{value!r} is not a SIP URI with a user part like sip:alice@contoso.com")
    return f"sip:{uri.user}@{canonical_fqdn(uri.host, 'SIP domain')}"


def _canonical_e164(value: str, what: str) -> str:
    number = value.strip().translate(_SEPARATORS)
    if not _E164.fullmatch(number):
        raise ValueError(
            f"{what} {value!r} is not an E.164 number: '+', country code, at most 15 digits"
        )
    return number


def ha1(algorithm: Literal["MD5", "SHA-256"], username: str, realm: str, password: str) -> str:
    """H(username ":" realm ":" password) in hex (RFC 7616 §3.4.2)."""
    name = "md5" if algorithm == "MD5" else "sha256"
    return hashlib.new(name, f"{username}:{realm}:{password}".encode()).hexdigest()


# --- users ---------------------------------------------------------------------------------------


class User(_Model):
    """A cloud user: SIP address, PSTN settings, and Digest HA1s instead of a password."""

    sip_uri: str
    display_name: str = ""
    enterprise_voice_enabled: bool = False
    line_uri: str | None = None  # tel:+E.164, stored without visual separators
    hybrid_pstn_site: str | None = None
    international_calls_allowed: bool = True
    ha1_md5: str | None = Field(default=None, repr=False)
    ha1_sha256: str | None = Field(default=None, repr=False)
    ha1_realm: str | None = None  # the realm the HA1s were computed for

    @field_validator("sip_uri")
    @classmethod
    def _sip_uri(cls, value: str) -> str:
        return canonical_aor(value)

    @field_validator("line_uri")
    @classmethod
    def _line_uri(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.lower().startswith("tel:"):
            raise ValueError(f"line URI {value!r} must be a tel: URI like tel:+46812345678")
        if ";" in value:
            raise ValueError(f"line URI {value!r}: parameters (;ext=...) are not supported")
        return "tel:" + _canonical_e164(value[4:], "line URI")

    @field_validator("hybrid_pstn_site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else _check_name(value, "site name")

    @field_validator("ha1_md5", "ha1_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()

    @model_validator(mode="after")
    def _secrets(self) -> User:
        if self.ha1_md5 is not None and not _HEX_MD5.fullmatch(self.ha1_md5):
            raise ValueError("ha1_md5 must be 32 hex digits (use User.with_password)")
        if self.ha1_sha256 is not None and not _HEX_SHA256.fullmatch(self.ha1_sha256):
            raise ValueError("ha1_sha256 must be 64 hex digits (use User.with_password)")
        if (self.ha1_md5 or self.ha1_sha256) and not self.ha1_realm:
            raise ValueError("HA1s need the realm they were computed for (ha1_realm)")
        return self

    @property
    def username(self) -> str:
        """The Digest username: the user part of the SIP URI, unescaped."""
        return unquote(self.sip_uri[4:].rpartition("@")[0])

    @property
    def domain(self) -> str:
        return self.sip_uri.rpartition("@")[2]

    @property
    def e164(self) -> str | None:
        """The line URI's number, ``+46812345678``, or None."""
        return None if self.line_uri is None else self.line_uri[4:]

    @property
    def has_password(self) -> bool:
        return self.ha1_md5 is not None or self.ha1_sha256 is not None

    def with_password(self, password: str, realm: str) -> User:
        """A copy holding the HA1s of `password` in `realm` (the registrar's realm)."""
        if not password:
            raise ValueError("the password must not be empty")
        return self.model_copy(
            update={
                "ha1_md5": ha1("MD5", self.username, realm, password),
                "ha1_sha256": ha1("SHA-256", self.username, realm, password),
                "ha1_realm": realm,
            }
        )

    def without_password(self) -> User:
        return self.model_copy(update={"ha1_md5": None, "ha1_sha256": None, "ha1_realm": None})


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


# --- sites ---------------------------------------------------------------------------------------


class Site(_Model):
    """A hybrid PSTN site: appliances at one location sharing gateways (name + edge FQDN)."""

    name: str
    edge_fqdn: str
    country_code: str | None = None  # E.164 country calling code: "46", "1"
    description: str = ""
    #: Set-CsHybridPSTNSite -EnableAutoUpdate: rollouts of a new version may run here
    enable_auto_update: bool = True
    #: -TenantUpdateTimeWindow: names of the tenant's update windows (:mod:`.update_windows`)
    update_time_windows: tuple[str, ...] = ()
    #: sites stored before tenant windows hold ``update_windows`` (inline windows, never acted
    #: on, always written): read, then dropped (never written again)
    update_windows: tuple[object, ...] | None = Field(default=None, exclude=True, repr=False)

    @field_validator("update_windows")
    @classmethod
    def _stored_before_windows(cls, value: object) -> None:
        return None  # read and forgotten: see the field

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "site name")

    @field_validator("edge_fqdn")
    @classmethod
    def _edge(cls, value: str) -> str:
        return canonical_fqdn(value, "edge FQDN")

    @field_validator("update_time_windows")
    @classmethod
    def _windows(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_check_name(v, "update window name") for v in value))

    @field_validator("country_code")
    @classmethod
    def _cc(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        code = value.lstrip("+")
        if not re.fullmatch(r"[1-9][0-9]{0,2}", code):
            raise ValueError(f"country code {value!r} must be an E.164 calling code like 46 or 1")
        return code


# --- tenant configuration ------------------------------------------------------------------------


class HybridConfig(_Model):
    """Set-CsTenantHybridConfiguration: the bypass service URL and the fallback PeerDestination."""

    hybrid_config_service_internal_url: str | None = None
    peer_destination: str | None = None  # a host[:port] or SIP URI of the fallback pool
    use_onprem_dialplan: bool = False

    @field_validator("hybrid_config_service_internal_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"hybrid config service URL {value!r} must be http(s)://host/path, like "
                "https://hybridvoice.contoso.com/hybridconfig/hybridconfigservice.svc"
            )
        return value

    @field_validator("peer_destination")
    @classmethod
    def _peer(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.lower().startswith(("sip:", "sips:")):
            try:
                uri = parse_uri(value)
            except ParseError as exc:
                raise ValueError(f"peer destination {value!r} is not a valid SIP URI") from exc
            if not isinstance(uri, SipUri):
                raise ValueError(f"peer destination {value!r} is not a SIP URI")
            return value
        host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"peer destination {value!r}: port must be 1-65535")
        canonical_fqdn(host or value, "peer destination")
        return value.lower()


class NetworkConfig(_Model):
    """Set-CsNetworkConfiguration MediaBypassSettings plus the internal subnets."""

    media_bypass_enabled: bool = False
    always_bypass: bool = True
    internal_subnets: tuple[str, ...] = ()

    @field_validator("internal_subnets")
    @classmethod
    def _subnets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for text in value:
            try:
                out.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError as exc:
                raise ValueError(f"internal subnet {text!r} is not like 10.0.0.0/16") from exc
        return tuple(out)


# --- appliances ----------------------------------------------------------------------------------


class Appliance(_Model):
    """A registered appliance (Register-CcAppliance) and its last reported status."""

    name: str
    site: str
    mediation_fqdn: str
    edge_fqdn: str  # the site's external access edge pool FQDN
    edge_sip_host: str  # where the online service sends SIP: a host name or an IP address
    edge_sip_port: int = Field(default=5061, ge=1, le=65535)
    edge_sip_transport: Literal["TLS", "TCP", "UDP"] = "TLS"
    #: the edge's MRAS service (TURN credentials, ``docs/edge-media.md``); "": no media relay
    mras_url: str = Field(default="", max_length=300, pattern=r"^(https?://\S+)?$")
    version: str = ""
    status: ApplianceStatus = "online"
    last_heartbeat: float = 0.0  # epoch seconds
    registered_at: float = 0.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "appliance name")

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return _check_name(value, "site name")

    @field_validator("mediation_fqdn")
    @classmethod
    def _mediation(cls, value: str) -> str:
        return canonical_fqdn(value, "mediation FQDN")

    @field_validator("edge_fqdn")
    @classmethod
    def _edge(cls, value: str) -> str:
        return canonical_fqdn(value, "edge FQDN")

    @field_validator("edge_sip_host")
    @classmethod
    def _sip_host(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            return canonical_fqdn(value, "edge SIP host")

    @field_validator("edge_sip_transport", mode="before")
    @classmethod
    def _transport(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


# --- dial plan -----------------------------------------------------------------------------------


class DialPlanRule(_Model):
    """A normalisation rule: a dialled string fully matching `pattern` becomes `translation`,
    where ``$1`` or ``\\1`` stands for the first group. Lower `priority` is tried first."""

    name: str
    pattern: str
    translation: str
    priority: int = 0
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "dial plan rule name")

    @model_validator(mode="after")
    def _regex(self) -> DialPlanRule:
        try:
            groups = re.compile(self.pattern).groups
        except re.error as exc:
            raise ValueError(f"dial plan pattern {self.pattern!r} is not a regex: {exc}") from exc
        for m in _GROUP_REF.finditer(self.translation):
            ref = int(m.group(1) or m.group(2))
            if ref > groups:
                raise ValueError(
                    f"translation {self.translation!r} uses group {ref} but pattern "
                    f"{self.pattern!r} has {groups} group(s)"
                )
        return self

    def apply(self, dialled: str) -> str | None:
        """The translation when `dialled` fully matches, else None."""
        m = re.fullmatch(self.pattern, dialled)
        if m is None:
            return None
        return _GROUP_REF.sub(
            lambda r: m.group(int(r.group(1) or r.group(2))) or "", self.translation
        )


# --- replication values --------------------------------------------------------------------------


def replicated(model: BaseModel) -> dict[str, Any]:
    """The JSON value a change carries: ``model_dump(mode="json")`` without user secrets."""
    exclude = set(SECRET_USER_FIELDS) if isinstance(model, User) else None
    return model.model_dump(mode="json", exclude=exclude)
