"""``[Segments]`` (hybridvoice): the deployment's network segments, by address.

Seed 002 divides a call's path into four network segments (the customer's network, the
internet, a private peering link to the cloud such as ExpressRoute, the cloud provider's
network). Classifying the addresses a call actually used (``hybridvoice plan verify``,
``docs/planning.md``) needs to know which addresses are which:

- ``CustomerSubnets``: the customer's network (offices, DMZ, data centres); left out: the
  site's ``[MediationServer] InternalSubnets``;
- ``PeeringPrefixes``: the cloud prefixes the customer reaches over its private peering
  link; left out or empty: no peering, the cloud is reached over the internet;
- ``CloudAddresses``: the online service's addresses (single addresses or prefixes); left
  out: ``[Online] SIPAddresses``.

Every other address is on the internet. Lists are space or comma separated networks
(``10.0.0.0/8 192.168.0.0/16``; a bare address is a /32 or /128). A bad value names its key
and the reason (``Segments.PeeringPrefixes: '10.0.0.0/33' is not an IP network``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from .settings_values import Subnet, _Section, _words

__all__ = ["Segments"]

Subnets = Annotated[tuple[Subnet, ...], BeforeValidator(_words)]


class Segments(_Section):
    """``[Segments]``: see the module docstring."""

    customer_subnets: Subnets = ()
    peering_prefixes: Subnets = ()
    cloud_addresses: Subnets = ()
