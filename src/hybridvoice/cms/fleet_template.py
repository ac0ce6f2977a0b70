"""The example fleet description ``hybridvoice init --fleet`` writes: the seed's two sites
(Amsterdam: 4 appliances, Seattle: 3) on one host, each with a lab gateway and a user. It is
the ``FLEET.toml`` of ``docs/fleet.md`` (a test keeps the two equal) and loads with
:func:`hybridvoice.cms.fleet_plan.load_fleet`."""

from __future__ import annotations

from typing import Final

__all__ = ["FLEET_EXAMPLE"]

FLEET_EXAMPLE: Final = """\
# fleet.toml: the seed's two sites on one host
[Fleet]
SIPDomains = "contoso.example"
BasePort = 21000                # appliance N (from 0, site by site) listens on BasePort+10N .. +6
MediaPortStart = 40000          # and relays RTP on MediaPortStart + MediaPortsPerAppliance*N ..
MediaPortsPerAppliance = 400    # a multiple of 4: 4 ports per anchored call
UserPassword = "hybridvoice"    # users without a Password of their own
HeartbeatTimeoutSeconds = 5     # the detection window: an appliance silent this long is offline
ApplianceTimeoutSeconds = 2     # no provisional response from an appliance within this: the next

[Online]                        # as in a site's file; defaults: http 127.0.0.1:8470, TCP, MD5
SIPPort = 5060

[Appliance.HealthMonitor]       # optional: any section of a site's file, for every appliance
IntervalSeconds = 10

[[Site]]
Name = "Amsterdam"
Appliances = 4                  # 1-16 (the original's limit per PSTN site)
CountryCode = "31"
[[Site.Gateway]]                # the keys of a [GatewayN]; every appliance of the site trunks to it
Name = "ams-gw"
IP = "127.0.0.3"
Port = 5080
Protocol = "UDP"
Lab = true                      # up runs a lab gateway here (answers, echoes media)
[[Site.User]]
Name = "alice"                  # alice@contoso.example, a user of this site
Number = "+31205550100"

[[Site]]
Name = "Seattle"
Appliances = 3
[[Site.Gateway]]
Name = "sea-gw"
IP = "127.0.0.2"                # a mediation role knows its gateways by address: each site's
Port = 5080                     # gateways need their own (any 127.x address is loopback)
Protocol = "UDP"
Lab = true
[[Site.User]]
Name = "bob"
Number = "+12065550101"
"""
