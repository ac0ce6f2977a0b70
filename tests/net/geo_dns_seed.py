"""The original's geo-DNS example (Amsterdam: 4 appliances, Seattle: 3) as a policy file, shared
by the geo-DNS tests (core, settings, exports, responder, CLI)."""

from __future__ import annotations

import tomllib
from typing import Any

SEED_TOML = """\
[GeoDns]
ServiceName = "hybridvoice.adatum.biz"
TTL = 60
Unmatched = "refuse"
NameServer = "ns1.adatum.biz"
NameServerIPs = ["192.168.1.2"]

[GeoDns.Sites.Amsterdam]
ClientSubnets = ["192.168.1.0/24", "2001:db8:1::/48", "127.0.0.2/32"]
MediationIPs = ["192.168.1.45", "192.168.1.46", "192.168.1.47", "192.168.1.48"]

[GeoDns.Sites.Seattle]
ClientSubnets = ["10.10.1.0/24", "127.0.0.3/32"]
MediationIPs = ["10.10.1.8", "10.10.1.9", "10.10.1.10"]
"""

AMSTERDAM = ["192.168.1.45", "192.168.1.46", "192.168.1.47", "192.168.1.48"]
SEATTLE = ["10.10.1.8", "10.10.1.9", "10.10.1.10"]
NAME = "hybridvoice.adatum.biz"


def seed_raw(**changes: Any) -> dict[str, Any]:
    raw = tomllib.loads(SEED_TOML)
    raw["GeoDns"].update(changes)
    return raw
