"""The replication vocabulary shared by the online service and every appliance's replica.

The online service keeps tenant settings as rows of a few *kinds* (users, sites, ...), each
row named by a *key* and holding a JSON object. Every write gets the next *version* of the
tenant's change feed; a deletion is a change whose ``value`` is ``None``. An appliance's
replica (its "LocalStore") applies changes in version order and remembers the last version
it applied, so it can resume from there after a restart or a lost connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["KINDS", "Change"]

#: what the feed carries; an appliance skips a change of any other kind (a newer online
#: service's, :mod:`.replicator`), and :class:`Change` refuses one
KINDS: Final = frozenset(
    {
        "domain",  # key: the SIP domain; value: {}
        "user",  # key: the SIP URI (sip:alice@example.com); value: the user's fields
        "site",  # key: the site name; value: edge FQDN, auto update, its update windows
        "hybrid_config",  # key: "global"; value: HybridConfigServiceInternalUrl, PeerDestination
        "network_config",  # key: "global"; value: media bypass Enabled, AlwaysBypass, subnets
        "appliance",  # key: the appliance name; value: site, FQDNs, version, status, heartbeat
        "dialplan",  # key: the rule name; value: pattern, translation, priority
        "update_window",  # key: the window's name; value: recurrence, start, duration, zone
    }
)


@dataclass(frozen=True, slots=True)
class Change:
    """One write to the tenant's settings, as it travels from the cloud to appliances."""

    version: int
    kind: str
    key: str
    value: Mapping[str, Any] | None  # None: the row was deleted

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}")
        if self.version < 1:
            raise ValueError(f"change versions start at 1, got {self.version}")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "key": self.key,
            "value": None if self.value is None else dict(self.value),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        """Build from :meth:`to_json` output; ``ValueError`` on anything malformed."""
        try:
            version, kind, key = data["version"], data["kind"], data["key"]
            value = data.get("value")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed change: {exc}") from exc
        if not isinstance(version, int) or not isinstance(kind, str) or not isinstance(key, str):
            raise ValueError("malformed change: version must be an integer, kind and key text")
        if value is not None and not isinstance(value, Mapping):
            raise ValueError("malformed change: value must be an object or null")
        return cls(version, kind, key, value)
