"""The value checks of the appliance settings, the INI key names, and the section base.

Each check raises ``ValueError`` with the reason (pydantic adds the key); a section refuses
unknown keys and is frozen. Related RFCs: RFC 3261 §19.1 (hosts), §18 (ports).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import AfterValidator, AliasGenerator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_pascal

_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
# $1, ${1}, ${name} (Direct Routing / .NET style) and $$ for a literal dollar sign
_DOLLAR_REF: Final = re.compile(r"\$(?:(\d+)|\{(\w+)\}|(\$))")

# --- value checks (each raises ValueError with the reason; pydantic adds the key) --------------


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"must be 1-65535, got {value}")
    return value


def _listen_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"must be 0-65535 (0 = any free port), got {value}")
    return value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"not an IP address, got {value!r}") from None


def _hostname(value: str) -> str:
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(f"not a valid host name, got {value!r}")
    return value.rstrip(".").lower()


def _network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        return ipaddress.ip_network(str(value))
    except ValueError as exc:
        raise ValueError(f"not a subnet ({exc}), got {value!r}") from None


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"regular expression does not compile ({exc}), got {value!r}") from None
    return value


def _words(value: object) -> object:
    """A list as written in CloudConnector.ini: space or comma separated."""
    if isinstance(value, str):
        return [w for w in re.split(r"[\s,;]+", value) if w]
    return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _capitalised(value: object) -> object:
    return value.capitalize() if isinstance(value, str) else value


def python_template(replacement: str) -> str:
    """A replacement in Python ``re`` syntax: ``$1``/``${1}``/``${name}`` (Direct Routing and
    .NET style) become ``\\g<1>``/``\\g<name>``; ``$$`` is a literal ``$``; ``\\1`` stays."""

    def convert(m: re.Match[str]) -> str:
        if m.group(3):
            return "$"
        return f"\\g<{m.group(1) or m.group(2)}>"

    return _DOLLAR_REF.sub(convert, replacement)


Port = Annotated[int, AfterValidator(_port)]
ListenPort = Annotated[int, AfterValidator(_listen_port)]


def _off(value: object) -> object:
    """``false`` or ``"off"`` switch an optional listener off (TOML has no null)."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "")):
        return None
    return value


OptionalListenPort = Annotated[ListenPort | None, BeforeValidator(_off)]
IPAddress = Annotated[str, AfterValidator(_ip)]
HostName = Annotated[str, AfterValidator(_hostname)]
Regex = Annotated[str, AfterValidator(_regex)]
Subnet = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]
Words = Annotated[tuple[str, ...], BeforeValidator(_words)]


#: Field names whose CloudConnector.ini key is not simply their PascalCase form.
_KEYS: Final[Mapping[str, str]] = {
    "sip_domains": "SIPDomains",
    "ip": "IP",
    "fqdn": "FQDN",
    "tcp_port": "TCPPort",
    "tls_port": "TLSPort",
    "udp_port": "UDPPort",
    "forward_pai": "ForwardPAI",
    "bypass_service_ip": "BypassServiceIP",
    "max_concurrent_calls_override": "MaxConcurrentCalls",
    "internal_server_ips": "InternalServerIPs",
    "external_sip_ips": "ExternalSIPIPs",
    "external_sip_pool_name": "ExternalSIPPoolName",
    "external_sip_port": "ExternalSIPPort",
    "external_mr_fqdn_pool_name": "ExternalMRFQDNPoolName",
    "external_mr_ips": "ExternalMRIPs",
    "external_mr_public_ips": "ExternalMRPublicIPs",
    "external_mr_port_range": "ExternalMRPortRange",
    "service_url": "ServiceURL",
    "other_service_urls": "OtherServiceURLs",
    "sip_addresses": "SIPAddresses",
    "sip_port": "SIPPort",
    "sip_protocol": "SIPProtocol",
}


def ini_key(field_name: str) -> str:
    """The settings-file key of a model field: ``sip_domains`` -> ``SIPDomains``."""
    return _KEYS.get(field_name) or to_pascal(field_name)


class _Section(BaseModel):
    """Frozen, no unknown keys; read by CloudConnector.ini-style key or by field name (the
    keys come from an alias generator so that type checkers see the field names)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=ini_key, serialization_alias=ini_key),
    )
