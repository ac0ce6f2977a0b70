"""The one place where long-lived objects are built from settings and wired together.

Today it builds the lab SIP responder behind ``hybridvoice sip serve``: the real endpoint
(transports, transaction layer) with the UA core (dialogs, INVITE sessions) that runs the
RFC 3261 §8.2 request checks, answers OPTIONS (§11.2) and turns calls away with 480, or with
``--answer`` answers them (RFC 3264 offer/answer) and echoes their RTP until the BYE.
The roles (online service, edge, mediation) are built here as they land.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.labgw import Responder, RtpEcho
from hybridvoice.net.transport import DEFAULT_PORTS
from hybridvoice.net.ua import UserAgent

__all__ = ["ListenSpec", "parse_listen", "run_responder"]


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


def _server_context(cert: str | None, key: str | None) -> ssl.SSLContext:
    if cert is None:
        raise ValueError("tls listeners need --tls-cert (and --tls-key unless the PEM holds it)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.num_tickets = 0  # sipsak and other SIP stacks stumble on TLS 1.3 tickets
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls-cert/tls-key: cannot load {cert}: {exc}") from exc
    return context


async def run_responder(
    listen: Sequence[str],
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    console: Console | None = None,
    answer: bool = False,
) -> None:
    """Listen on every address of ``listen`` and answer until SIGINT/SIGTERM; with
    ``answer`` calls are answered and their media echoed instead of refused with 480."""
    specs = [parse_listen(text) for text in listen]
    server_ssl = (
        _server_context(tls_cert, tls_key) if any(s.transport == "TLS" for s in specs) else None
    )
    echo = await RtpEcho.open(specs[0].host) if answer and specs else None
    responder = Responder(answer=answer, echo=echo)
    endpoint = Endpoint()
    ua = UserAgent(endpoint, responder)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in specs:
            try:
                transport = await endpoint.listen(
                    spec.transport,
                    spec.host,
                    spec.port,
                    server_ssl=server_ssl if spec.transport == "TLS" else None,
                )
            except OSError as exc:
                raise ValueError(f"listen {spec}: {exc.strerror or exc}") from exc
            if console is not None:
                host, port = transport.local
                console.print(f"listening on {spec.transport.lower()} {host}:{port}")
        if console is not None and echo is not None:
            console.print(f"echoing media on udp {specs[0].host}:{echo.port}")
        await stop.wait()
    finally:
        ua.close()
        await endpoint.close()
        if echo is not None:
            echo.close()
        answered = endpoint.counters.responses_out
        if console is not None and answered:
            summary = ", ".join(f"{n}x {s}" for s, n in sorted(answered.items()))
            console.print(f"answered: {summary}")
            if answer:
                console.print(
                    f"calls: {responder.calls_answered} answered, {responder.calls_ended} ended"
                )
