"""Free loopback ports for tests that must name a port before they bind it (settings files,
programs started by the test).

Racy by nature: the port is free when returned and may be taken before the test binds it. The
races that are ours to close are closed here:

- the kernel hands ports out too (every ``bind(host, 0)`` and every outgoing connection takes
  one from its ephemeral range, 32768-60999 by default), so the ports named here come from a
  pool below that range (10000 up to it), which only this module hands out;
- pytest-xdist runs several test processes side by side: each worker (``PYTEST_XDIST_WORKER``
  ``gwN`` of ``PYTEST_XDIST_WORKER_COUNT``) takes its ports from its own slice of the pool, so
  two workers never name the same port;
- two listeners of one settings file must not get one port: a process walks its slice and
  names a port again only after going round all of it (by then the old test is long over);
- ranges (a relay's port range, a media block) are handed out whole with
  :func:`free_port_block`, so no later :func:`free_port` names a port inside them;
- programs bind neighbours of the port they are given (coturn its alternate port P+1, SIPp
  its video port P+2, RTCP on P+1): the walk leaves ``GUARD`` ports after each hand-out.

Every port is checked bindable (TCP and UDP) before it is named, and the walk through the slice
starts at a random place, so another test run on the same machine at the same time rarely meets
the same port either."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Sequence
from pathlib import Path

__all__ = ["POOL", "free_port", "free_port_block", "free_port_pair", "worker_slice"]


def _pool() -> tuple[int, int]:
    """10000 up to the kernel's ephemeral range, or above it where it starts too low."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return (10000, low - 1) if low > 20000 else (high + 1, 65535)


POOL = _pool()  # inclusive
GUARD = 3
_rng = random.Random()
_cursor: list[int] = []  # the next port to try; empty: not started


def worker_slice(
    worker: str | None = None, count: str | None = None, pool: tuple[int, int] = POOL
) -> tuple[int, int]:
    """This process's slice of ``pool`` (inclusive): the whole pool outside xdist, else the
    ``N``-th of ``count`` equal parts for worker ``gwN``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") if count is None else count
    low, high = pool
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return low, high
    n, parts = int(worker[2:]), max(1, int(count or "1"))
    size = (high - low + 1) // parts
    if size < 1 or n >= parts:
        raise RuntimeError(f"no port slice for xdist worker {worker} of {count}")
    return low + n * size, low + (n + 1) * size - 1


def _bindable(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int) -> bool:
    with socket.socket(family, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free(hosts: Sequence[str], port: int) -> bool:
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            if not _bindable(family, kind, host, port):
                return False
    return True


def free_port_block(count: int, host: str | Sequence[str] = "127.0.0.1", align: int = 2) -> int:
    """The first port P of ``count`` consecutive ports P..P+count-1, each free for TCP and UDP
    on every host in ``host`` now; P is a multiple of ``align``.

    A cursor walks the slice from a random start (another test run on the machine starts
    elsewhere), hands out the ports it passes and wraps around at the slice's end: a port is
    named again only after the walk went round the whole slice (hundreds of tests later)."""
    hosts = [host] if isinstance(host, str) else list(host)
    low, high = worker_slice()
    size = high - low + 1
    if count + align + GUARD > size // 2:
        raise RuntimeError(f"no block of {count} ports in the slice {low}-{high}")
    if not _cursor:
        _cursor.append(_rng.randrange(low, high + 1))
    walked = 0
    while walked < 2 * size:
        start = _cursor[0] if low <= _cursor[0] <= high else low
        port = -(-start // align) * align
        if port + count - 1 > high:
            walked += high + 1 - start
            _cursor[0] = low
            continue
        taken = next((p for p in range(port, port + count) if not _free(hosts, p)), None)
        if taken is None:
            _cursor[0] = port + count + GUARD
            return port
        walked += taken + 1 - start
        _cursor[0] = taken + 1
    raise RuntimeError(f"no free block of {count} ports on {', '.join(hosts)} in {low}-{high}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` now, and not returned before by this process."""
    return free_port_block(1, host, align=1)


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port P with P and P+1 free on TCP and UDP (baresip puts TLS on P+1)."""
    return free_port_block(2, host, align=1)
