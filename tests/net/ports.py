"""Free loopback ports for tests that must name a port before they bind it (settings files,
programs started by the test).

Racy by nature: the port is free when returned and may be taken before the test binds it. One
race is ours to close: the kernel hands a just-closed ephemeral port out again, so two calls in a
row could name the same port for two listeners of one settings file. This module remembers what
it handed out and never returns a port twice in one test process."""

from __future__ import annotations

import socket

_handed_out: set[tuple[str, int]] = set()


def _bindable(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int) -> bool:
    with socket.socket(family, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` now, and not returned before by this process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
        if (host, port) in _handed_out or not _bindable(family, socket.SOCK_STREAM, host, port):
            continue
        _handed_out.add((host, port))
        return port
    raise RuntimeError(f"no free port on {host}")


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port P with P and P+1 free on TCP and UDP (baresip puts TLS on P+1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = free_port(host)
        if (host, port + 1) in _handed_out or port >= 65535:
            continue
        if all(
            _bindable(family, kind, host, port + 1)
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)
        ):
            _handed_out.add((host, port + 1))
            return port
    raise RuntimeError(f"no free port pair on {host}")
