"""Settings that need another switched on: refused at load with both keys named.

Every gateway speaks one transport (``[GatewayN] Protocol``: TCP, UDP, TLS, or MTLS read as
TLS with ``MutualTls``) and calls in on the mediation role's listener of that transport
(``[MediationServer] TCPPort``, ``UDPPort``, ``TLSPort``; RFC 3261 §18.2.1). With that listener
switched off the role could still dial the gateway from an ephemeral port, but the gateway's
own calls, OPTIONS and (MTLS) certificate check have nowhere to arrive: refused, naming the
gateway's key, the listener's key and what to set. A disabled gateway (``Enabled = false``)
is not checked: it is neither dialled nor expected to call.

(The other "X needs Y" keys are checked where they are read: ``MutualTls`` and
``TrustedRootsFile`` need ``Protocol = "TLS"`` in :mod:`.settings_tls`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["unmet_needs"]

#: a gateway's transport -> the mediation listener key it calls in on, and its CCE default
_LISTENER: Final = {"TCP": ("TCPPort", 5068), "UDP": ("UDPPort", 5069), "TLS": ("TLSPort", 5067)}


def unmet_needs(settings: Settings) -> list[tuple[str, str]]:
    """(key, reason) for every setting whose prerequisite is switched off."""
    ms = settings.mediation_server
    ports = {"TCP": ms.tcp_port, "UDP": ms.udp_port, "TLS": ms.tls_port}
    out: list[tuple[str, str]] = []
    for gw in settings.gateways:
        if not gw.enabled:
            continue
        key, default = _LISTENER[gw.protocol]
        if ports[gw.protocol] is not None:
            continue
        spoken = "MTLS" if gw.mutual_tls else gw.protocol
        out.append((
            f"{gw.name}.Protocol",
            f"{spoken} needs [MediationServer] {key} switched on (it is false): the gateway "
            f"calls in there; set {key} = {default}, or give {gw.name} another Protocol",
        ))  # fmt: skip
    return out
