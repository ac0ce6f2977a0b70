"""A one-machine lab whose addresses tell the network segments apart (``hybridvoice init
--segments``; ``docs/planning.md``).

On loopback every role shares 127.0.0.1, so an address cannot say whether it is the cloud's
or the customer's. Linux answers on the whole of 127.0.0.0/8, so the lab can place the online
service on 127.64.0.1, named as the cloud (``[Segments] CloudAddresses``), keep the customer's
network to 127.0.0.0/16 (the appliance's edge, mediation, the lab gateway and internal
clients on 127.0.0.1), and leave the rest of 127/8 to the internet: ``hybridvoice plan
verify`` places its internet client on 127.128.0.1. The edge's media relay is on, so that
the internet client's media is anchored at the edge as in production.
"""

from __future__ import annotations

from typing import Final

from .settings import Settings, parse_settings
from .settings_raw import settings_raw

__all__ = ["CLOUD_ADDRESS", "CUSTOMER_SUBNET", "segmented_lab"]

CLOUD_ADDRESS: Final = "127.64.0.1"
"""The online service's SIP address in the segmented lab: the cloud."""

CUSTOMER_SUBNET: Final = "127.0.0.0/16"
"""The customer's network in the segmented lab; the rest of 127/8 is the internet."""


def segmented_lab(settings: Settings) -> Settings:
    """``settings`` (the lab's) with the online service in the cloud, the customer's network
    narrowed to :data:`CUSTOMER_SUBNET` and the edge's media relay on."""
    raw = settings_raw(settings)  # a listener switched off stays off
    raw["Online"]["SIPAddresses"] = CLOUD_ADDRESS
    raw["MediationServer"]["InternalSubnets"] = CUSTOMER_SUBNET
    edge = raw.setdefault("EdgeServer", {})
    edge["ExternalMRIPs"] = edge.get("ExternalSIPIPs") or "127.0.0.1"
    edge["ExternalMRPortRange"] = "45000-45999"
    raw["MediaRelay"] = {**raw.get("MediaRelay", {}), "TCPPort": False,
                         "AllowInternalPeers": True}  # fmt: skip
    raw["Segments"] = {"CustomerSubnets": CUSTOMER_SUBNET, "PeeringPrefixes": "",
                       "CloudAddresses": CLOUD_ADDRESS}  # fmt: skip
    return parse_settings(raw)
