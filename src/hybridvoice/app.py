"""The one place where long-lived objects are built from settings and wired together.

Today it builds the lab SIP responder behind ``hybridvoice sip serve``: the real endpoint
(transports, transaction layer) with a small UA core that runs the RFC 3261 §8.2 request
checks, answers OPTIONS (§11.2) and turns calls away with 480. The roles (online service,
edge, mediation) are built here as they land.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.transport import DEFAULT_PORTS
from hybridvoice.sip.message import Request, Response, make_response
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction
from hybridvoice.sip.validate import UasPolicy, check_request, options_response

__all__ = ["ListenSpec", "Responder", "parse_listen", "run_responder"]


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


class Responder:
    """A UA core that answers what reaches it: OPTIONS 200, calls 480, the rest per §8.2."""

    def __init__(self, policy: UasPolicy | None = None) -> None:
        self.policy = policy or UasPolicy()
        self.answered: dict[int, int] = {}

    def _answer(self, endpoint: Endpoint, tx: ServerTransaction, response: Response) -> None:
        self.answered[response.status] = self.answered.get(response.status, 0) + 1
        endpoint.send_response(tx, response)

    def on_request(
        self, endpoint: Endpoint, transaction: ServerTransaction, request: Request
    ) -> None:
        tag = secrets.token_hex(6)
        error = check_request(request, policy=self.policy, to_tag=tag)
        if error is not None:
            self._answer(endpoint, transaction, error)
        elif request.method == "OPTIONS":
            self._answer(
                endpoint, transaction, options_response(request, policy=self.policy, to_tag=tag)
            )
        elif request.method == "INVITE":
            self._answer(
                endpoint,
                transaction,
                make_response(
                    request,
                    480,
                    to_tag=tag,
                    headers=[("Warning", '399 hybridvoice "lab responder: no calls here"')],
                ),
            )
        else:  # BYE, CANCEL of nothing we know
            self._answer(endpoint, transaction, make_response(request, 481, to_tag=tag))

    def on_ack(self, endpoint: Endpoint, request: Request) -> None:
        """ACKs for 2xx: we never send a 2xx to an INVITE, so there is nothing to do."""

    def on_response(
        self, endpoint: Endpoint, transaction: ClientTransaction, response: Response
    ) -> None:
        """We send no requests."""

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        """Dropped: nothing of ours is pending."""

    def on_timeout(
        self, endpoint: Endpoint, transaction: ClientTransaction | ServerTransaction, reason: str
    ) -> None:
        """A final response went unacknowledged (Timer H): nothing to clean up."""


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
) -> None:
    """Listen on every address of ``listen`` and answer until SIGINT/SIGTERM."""
    specs = [parse_listen(text) for text in listen]
    server_ssl = (
        _server_context(tls_cert, tls_key) if any(s.transport == "TLS" for s in specs) else None
    )
    responder = Responder()
    endpoint = Endpoint(responder)
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
        await stop.wait()
    finally:
        await endpoint.close()
        if console is not None and responder.answered:
            summary = ", ".join(f"{n}x {s}" for s, n in sorted(responder.answered.items()))
            console.print(f"answered: {summary}")
