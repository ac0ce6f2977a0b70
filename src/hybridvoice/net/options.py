"""``hybridvoice sip options URI``: one OPTIONS request (RFC 3261 §11) and its round-trip time.

The probe a gateway health check sends (ARCHITECTURE.md: mediation marks gateways down on
unanswered OPTIONS). Any final response counts as an answer (§11.2: a UAS answers OPTIONS as
it would an INVITE, so 200, 403, 404 or 486 all show the peer is alive).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import ssl
import time
from dataclasses import dataclass

from hybridvoice.sip.headers import CSeq, Headers
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.uri import SipUri, parse_uri

from .endpoint import Endpoint, RequestTimeoutError
from .transport import DEFAULT_PORTS, Destination, TransportError, bare_host, via_host

__all__ = ["OptionsResult", "RequestTimeoutError", "TransportError", "options_request", "ping"]


@dataclass(frozen=True, slots=True)
class OptionsResult:
    """The final response and the time from sending the request to receiving it."""

    response: Response
    rtt_ms: float


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _resolve(host: str, port: int, transport: str) -> str:
    """An IP literal for ``host`` (A/AAAA via the system resolver; RFC 3263 NAPTR/SRV is
    ``hybridvoice.net.dns``'s job and not needed for a URI with an explicit target)."""
    if _is_ip(host):
        return host
    kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kind)
    if not infos:
        raise TransportError(f"cannot resolve {host}")
    return str(infos[0][4][0])


def _source_address(host: str, port: int) -> str:
    """The local address the kernel would use to reach (host, port); nothing is sent."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return str(s.getsockname()[0])


def _transport_of(uri: SipUri, transport: str | None) -> str:
    if transport:
        return transport.upper()
    if uri.transport:
        return uri.transport.upper()
    return "TLS" if uri.secure else "UDP"


async def ping(
    uri: str | SipUri,
    *,
    transport: str | None = None,
    local_host: str | None = None,
    timeout: float = 5.0,
    tls_context: ssl.SSLContext | None = None,
) -> OptionsResult:
    """Send OPTIONS to ``uri`` and wait for its final response.

    ``transport`` defaults to the URI's ``transport`` parameter (TLS for ``sips:``, else UDP).
    The target is ``maddr`` or the host (§8.1.2), port from the URI or the transport's default.
    ``tls_context`` checks the peer's certificate (default: the system trust store).
    Raises :class:`RequestTimeoutError` when no final response comes within ``timeout`` s
    (or Timer F) and :class:`TransportError` when the peer cannot be reached.
    """
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    if not isinstance(parsed, SipUri):
        raise ValueError(f"not a SIP URI: {uri}")
    kind = _transport_of(parsed, transport)
    if kind not in DEFAULT_PORTS:
        raise ValueError(f"unsupported transport {kind}")
    name = bare_host(parsed.maddr or parsed.host)
    port = parsed.port or DEFAULT_PORTS[kind]
    host = await _resolve(name, port, kind)
    local = local_host or _source_address(host, port)

    endpoint = Endpoint()
    try:
        listening = await endpoint.listen(kind, local, 0, client_ssl=tls_context)
        request = options_request(parsed, listening.advertised[0], listening.sent_by, kind)
        destination = Destination(kind, host, port, None if _is_ip(name) else name)
        start = time.perf_counter()  # loop.time() is ms-grained on uvloop
        response = await endpoint.request(request, destination, timeout=timeout)
        return OptionsResult(response, (time.perf_counter() - start) * 1000.0)
    finally:
        await endpoint.close()


def options_request(uri: SipUri, local_host: str, sent_by: str, kind: str) -> Request:
    """An OPTIONS request per §11.1 (the endpoint adds the Via)."""
    tag = secrets.token_hex(6)
    headers = Headers.of(
        [
            ("Max-Forwards", 70),
            ("To", f"<{uri}>"),
            ("From", f"<sip:hybridvoice@{via_host(local_host)}>;tag={tag}"),
            ("Call-ID", f"{secrets.token_hex(12)}@hybridvoice"),
            ("CSeq", CSeq(1, "OPTIONS")),
            ("Contact", f"<sip:hybridvoice@{sent_by};transport={kind.lower()}>"),
            ("Accept", "application/sdp"),
            ("User-Agent", "hybridvoice"),
            ("Content-Length", 0),
        ]
    )
    return Request("OPTIONS", uri, headers)
