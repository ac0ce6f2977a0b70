"""Line numbers claimed in the tenant's store, so that two online instances cannot give one
number to two users (docs/fleet.md, "Two online instances on etcd").

A user's line URI must be unique in the tenant. One instance checks that on its cache; two
instances writing two users with the same number within the few milliseconds their watches
take would both pass that check. So the number is claimed first, as a key of its own,
``hv/t/<tenant>/number/<+E164>`` holding the user's SIP URI, created only when it does not
exist (compare-and-swap on ``mod_revision`` 0): of two instances claiming one number, one
wins and the other is refused with the owner's name. The claim is released when the user
gives the number up or is removed (and when writing the user fails).
"""

from __future__ import annotations

from hybridvoice.store.keys import tenant_key

from .kv_bridge import KvBridge
from .store_feed import StoreError

__all__ = ["NumberClaims"]


class NumberClaims:
    """The tenant's claimed numbers, through the bridge's store."""

    __slots__ = ("bridge", "tenant")

    def __init__(self, bridge: KvBridge, tenant: str) -> None:
        self.bridge = bridge
        self.tenant = tenant

    def claim(self, number: str, sip_uri: str) -> bool:
        """Claim `number` for `sip_uri`: True when this call created the claim, False when
        `sip_uri` held it already; StoreError naming the owner when another user holds it."""
        kv, key = self.bridge.kv, tenant_key(self.tenant, "number", number)
        for _ in range(3):
            held = self.bridge.call(lambda: kv.get(key))
            if held is not None:
                owner = held.value.decode()
                if owner == sip_uri:
                    return False
                raise StoreError(
                    f"{sip_uri}: line URI tel:{number} already belongs to {owner}: "
                    "free it there first"
                )
            done = self.bridge.call(lambda: kv.put_if(key, sip_uri.encode(), mod_revision=0))
            if done.succeeded:
                return True
        raise StoreError(f"{sip_uri}: line URI tel:{number} keeps changing; try again")

    def release(self, number: str, sip_uri: str) -> None:
        """Give `number` up, if `sip_uri` holds it."""
        kv, key = self.bridge.kv, tenant_key(self.tenant, "number", number)
        held = self.bridge.call(lambda: kv.get(key))
        if held is not None and held.value.decode() == sip_uri:
            self.bridge.call(lambda: kv.delete_if(key, mod_revision=held.mod_revision))
