"""Mutual TLS contexts from the site's certificate files, renewed without a restart.

SIP over TLS between the roles (RFC 3261 §26.2.1, RFC 5630 §3: TLS 1.2 minimum, TLS 1.3
preferred) with a certificate on both sides (RFC 8446 §4.3.2 CertificateRequest, RFC 5246
§7.4.4): a server context that requires and verifies the client's certificate, a client context
that verifies the server's certificate and its name (RFC 6125 §6; an IP address literal is
matched against the certificate's IP SANs, RFC 5280 §4.2.1.6), both trusting the site root and
the roots imported for gateways.

:class:`MtlsContexts` keeps one server context and one client context for the listeners and
transports of a process, built from a :class:`TlsMaterial` that a loader gives (the assembly
reads it from the ``hybridvoice.pki`` store: ``net`` sits below ``pki`` and does not import it).
When the loader reports a higher generation, :meth:`MtlsContexts.reload` builds a fresh server
context; the server context the listeners hold picks it in its ``sni_callback`` (OpenSSL runs
it for every ClientHello, with or without SNI) so every new handshake presents the new
certificate, while connections already up keep their session. The client context is renewed in
place: OpenSSL copies the certificate into each connection when it starts, so open connections
keep theirs and the next one presents the new one. :func:`watch` polls the loader.

Every context built here is a :class:`SiteContext`: it knows the identity of the certificate
it presents (:class:`~hybridvoice.net.identity.PeerIdentity`), which an in-process pipe
carries to the other side in place of a handshake (:mod:`.pipe`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from .identity import PeerIdentity

__all__ = [
    "RELOAD_INTERVAL",
    "MtlsContexts",
    "SiteContext",
    "TlsMaterial",
    "client_context",
    "identity_of",
    "server_context",
    "watch",
]

_log = logging.getLogger(__name__)

#: how often :func:`watch` asks for a new generation (seconds)
RELOAD_INTERVAL: Final = 30.0


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """What a TLS context is built from: one PEM file holding key, certificate and chain (as
    ``hybridvoice.pki`` writes it), the trusted roots in PEM, and the credential's generation."""

    cert_file: Path
    cadata: bytes
    generation: int


class SiteContext(ssl.SSLContext):
    """An ``SSLContext`` that knows whose certificate it presents (None: none loaded)."""

    identity: PeerIdentity | None = None


def identity_of(context: ssl.SSLContext | None) -> PeerIdentity | None:
    """The identity ``context`` presents, when it is a :class:`SiteContext` that knows it."""
    return context.identity if isinstance(context, SiteContext) else None


def _common(context: SiteContext, material: TlsMaterial) -> SiteContext:
    context.identity = PeerIdentity.from_pem_file(material.cert_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # 1.3 is negotiated when both can
    context.load_cert_chain(material.cert_file)
    context.load_verify_locations(cadata=material.cadata.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def server_context(material: TlsMaterial, *, require_client: bool = True) -> SiteContext:
    """A listener's context: presents the credential, requires a client certificate that
    chains to a trusted root (``require_client`` False: verifies one when the client sends it,
    for a listener that softphones reach too)."""
    context = _common(SiteContext(ssl.PROTOCOL_TLS_SERVER), material)
    if not require_client:
        context.verify_mode = ssl.CERT_OPTIONAL
    context.num_tickets = 0  # sipsak and other SIP stacks stumble on TLS 1.3 tickets
    return context


def client_context(material: TlsMaterial) -> SiteContext:
    """A connecting side's context: presents the credential, verifies the server's chain and
    its name (or IP address)."""
    context = _common(SiteContext(ssl.PROTOCOL_TLS_CLIENT), material)
    context.check_hostname = True
    return context


class MtlsContexts:
    """The server and client context of a process's TLS listeners and connections, following
    the generation of the credential they are built from (see the module docstring)."""

    __slots__ = (
        "_current",
        "_derived",
        "_digest",
        "_load",
        "client",
        "material",
        "reloads",
        "require_client",
        "server",
    )

    def __init__(self, load: Callable[[], TlsMaterial], *, require_client: bool = True) -> None:
        self._load = load
        self.material = load()
        self._digest = _digest(self.material.cert_file)
        self.require_client = require_client
        #: what listeners hold for their whole life; it hands each handshake the newest context
        self.server = server_context(self.material, require_client=require_client)
        self.server.sni_callback = self._pick
        self._current = self.server
        #: what transports connect with; renewed in place
        self.client = client_context(self.material)
        #: how many times a new generation (or new trust) was taken
        self.reloads = 0
        #: contexts from the same credential with more roots (:meth:`widened`), reloaded
        #: with these
        self._derived: list[MtlsContexts] = []

    def widened(self, roots: bytes, *, require_client: bool) -> MtlsContexts:
        """Contexts from the same credential that also trust ``roots`` (PEM; a listener that
        gateways with their own chains reach), reloaded whenever these are."""
        load = self._load

        def widened_load() -> TlsMaterial:
            material = load()
            return replace(material, cadata=material.cadata + roots)

        derived = MtlsContexts(widened_load, require_client=require_client)
        self._derived.append(derived)
        return derived

    @property
    def current_server(self) -> ssl.SSLContext:
        """The context new handshakes on the listeners use."""
        return self._current

    def _pick(
        self, connection: ssl.SSLSocket | ssl.SSLObject, _name: str | None, used: ssl.SSLContext
    ) -> None:
        if used is not self._current:
            connection.context = self._current

    def reload(self) -> bool:
        """Take the loader's material when its generation, its roots or the credential file's
        content changed (``hybridvoice ca renew``, or the file replaced by hand); True then."""
        for derived in self._derived:
            derived.reload()
        material = self._load()
        old = self.material
        digest = _digest(material.cert_file)
        if (material.generation, material.cadata, digest) == (
            old.generation,
            old.cadata,
            self._digest,
        ):
            return False
        self._current = server_context(material, require_client=self.require_client)
        self.server.identity = self.client.identity = self._current.identity
        self.client.load_cert_chain(material.cert_file)
        self.client.load_verify_locations(cadata=material.cadata.decode("ascii"))
        self.material = material
        self._digest = digest
        self.reloads += 1
        _log.info(
            "TLS: %s generation %d for new handshakes",
            material.cert_file.name,
            material.generation,
        )
        return True


def _digest(path: Path) -> bytes:
    """What the credential file holds, in 32 bytes (a file replaced by hand is new material
    although its generation stayed)."""
    return hashlib.sha256(path.read_bytes()).digest()


async def watch(
    contexts: MtlsContexts,
    interval: float = RELOAD_INTERVAL,
    *,
    tolerate: tuple[type[Exception], ...] = (),
) -> None:
    """Reload ``contexts`` every ``interval`` seconds until cancelled; a loader failure (a
    file being replaced by hand, say; ``tolerate``: the loader's own errors too) is logged and
    the contexts stay as they are."""
    errors: tuple[type[Exception], ...] = (OSError, ValueError, KeyError, ssl.SSLError, *tolerate)
    while True:
        await asyncio.sleep(interval)
        try:
            contexts.reload()
        except errors as exc:
            _log.warning("TLS: keeping the current certificate, cannot reload: %s", exc)
