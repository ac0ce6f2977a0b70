"""``[Online] StoreEtcd``: the etcd cluster an online instance keeps its tenant on
(docs/fleet.md, "Two online instances on etcd").

Empty (the default): the tenant lives in the instance's own SQLite file, as for
``hybridvoice up``. A list of etcd members' client addresses, ``host:port`` separated by commas
or spaces (``127.0.0.1:2379, 127.0.0.1:2479``): the tenant store, the change feed, the
registrations and the API tokens live in that cluster, shared by every instance that names
it. A malformed member is refused with the key and the reason
(``Online.StoreEtcd: 'db1' is not host:port``).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import BeforeValidator

__all__ = ["EtcdMembers", "etcd_members"]

_MEMBER: Final = re.compile(r"(?:http://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})/?")


def etcd_members(value: object) -> tuple[str, ...]:
    """``host:port`` members from a string (comma or space separated) or a list."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = [w for w in re.split(r"[,\s]+", value) if w]
    elif isinstance(value, list | tuple):
        items = [str(w) for w in value]
    else:
        raise ValueError(f"{value!r}: give etcd members as host:port, separated by commas")
    out = []
    for item in items:
        match = _MEMBER.fullmatch(item)
        if match is None:
            raise ValueError(f"{item!r} is not host:port (an etcd member's client address)")
        port = int(match.group(2))
        if not 0 < port < 65536:
            raise ValueError(f"{item!r}: port {port} is not between 1 and 65535")
        out.append(f"{match.group(1)}:{port}")
    if len(set(out)) != len(out):
        raise ValueError(f"{', '.join(out)}: a member is named twice")
    return tuple(out)


EtcdMembers = Annotated[tuple[str, ...], BeforeValidator(etcd_members)]
"""The type of ``[Online] StoreEtcd``."""
