"""The key layout of hybridvoice's state in a store (sans-IO): where each record lives.

``hv/t/<tenant>/<kind>/<name>``: the cloud tier's records of one tenant (the change feed's
kinds: domain, user, site, hybrid_config, network_config, appliance, dialplan; and ``reg``,
registrations, each under a lease). ``hv/s/<site>/<kind>/<name>``: a site's CMS (appliances,
gateways, routes, trunk settings, the CA's encrypted material, settings pushed from the cloud).
docs/fleet.md has the whole map. One prefix per tenant or site, so a watch of
``tenant_prefix(t)`` is the tenant's change feed and a range read of it a snapshot.

Segments are escaped (``%`` and ``/`` as ``%25`` and ``%2F``) so a name with a slash (a
gateway's FQDN never has one, a SIP URI may) cannot reach into another record's key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .kv import StoreError

__all__ = ["KeyRef", "parse_key", "site_key", "site_prefix", "tenant_key", "tenant_prefix"]

ROOT: Final = "hv"
_SCOPES: Final = {"t": "tenant", "s": "site"}
_KIND: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class KeyRef:
    scope: str  # "tenant" or "site"
    owner: str  # the tenant's or site's name
    kind: str
    name: str


def _segment(text: str, what: str) -> str:
    if not isinstance(text, str) or not text:
        raise StoreError(f"{what} {text!r}: must be non-empty text")
    return text.replace("%", "%25").replace("/", "%2F")


def _unescape(text: str) -> str:
    return text.replace("%2F", "/").replace("%25", "%")


def _kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise StoreError(f"kind {kind!r}: lowercase letters, digits and _ (at most 32)")
    return kind


def tenant_prefix(tenant: str, kind: str | None = None) -> str:
    base = f"{ROOT}/t/{_segment(tenant, 'tenant')}/"
    return base if kind is None else f"{base}{_kind(kind)}/"


def site_prefix(site: str, kind: str | None = None) -> str:
    base = f"{ROOT}/s/{_segment(site, 'site')}/"
    return base if kind is None else f"{base}{_kind(kind)}/"


def tenant_key(tenant: str, kind: str, name: str) -> str:
    return tenant_prefix(tenant, kind) + _segment(name, f"{kind} name")


def site_key(site: str, kind: str, name: str) -> str:
    return site_prefix(site, kind) + _segment(name, f"{kind} name")


def parse_key(key: str) -> KeyRef:
    """The record a key names; StoreError naming the key when it is not one of ours."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[1] not in _SCOPES or not all(parts[2:]):
        raise StoreError(f"key {key!r}: not hv/t|s/<owner>/<kind>/<name>")
    return KeyRef(_SCOPES[parts[1]], _unescape(parts[2]), _kind(parts[3]), _unescape(parts[4]))
