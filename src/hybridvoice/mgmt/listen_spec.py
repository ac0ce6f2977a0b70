"""``transport:host:port`` listen addresses of the command line (``hybridvoice sip serve``,
``--proxy``)."""

from __future__ import annotations

from dataclasses import dataclass

from hybridvoice.net.transport import DEFAULT_PORTS

__all__ = ["ListenSpec", "parse_listen"]


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One ``transport:host:port`` listen address."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"


def parse_listen(text: str) -> ListenSpec:
    """Parse ``udp:127.0.0.1:5060``, ``tls:[::1]:5061`` or ``tcp:127.0.0.1`` (default port).

    Raises ``ValueError`` naming the setting and what is wrong with it.
    """
    kind, sep, rest = text.partition(":")
    kind = kind.upper()
    if not sep or kind not in DEFAULT_PORTS:
        raise ValueError(f"listen {text!r}: start with udp:, tcp: or tls:")
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = rest.partition(":")
    if not host:
        raise ValueError(f"listen {text!r}: no host")
    if port_text and (not port_text.isdigit() or not 0 <= int(port_text) <= 65535):
        raise ValueError(f"listen {text!r}: port must be a number from 0 to 65535")
    return ListenSpec(kind, host, int(port_text) if port_text else DEFAULT_PORTS[kind])
