"""Client TLS contexts per peer: a gateway that brings its own chain is verified against its
own roots, for its own name (RFC 5922 §7.2, RFC 5630 §3).

A :class:`PeerContexts` is what a stream transport's ``peer_ssl`` asks for the context toward
a peer name: the process's client context (:class:`~hybridvoice.net.tls.MtlsContexts`: the site
roots, our certificate) for peers without roots of their own, else a context trusting only that
peer's roots and presenting the same certificate of ours. Those are built from the newest
material of the process's contexts on first use after each renewal, so the next connection
presents the renewed certificate while open ones keep theirs (as ``MtlsContexts`` does).
Without site contexts (``base`` None) the transport's own client context stays for peers
without roots, and peers with roots get a context trusting those roots and presenting nothing.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .tls import MtlsContexts, SiteContext, TlsMaterial, client_context

__all__ = ["PeerContexts", "PeerTrust"]


@dataclass(frozen=True, slots=True)
class PeerTrust:
    """One TLS peer: the name its certificate is checked for and its own roots (PEM; None:
    the site's)."""

    name: str
    roots: bytes | None = None


class PeerContexts:
    """``peer_ssl`` of the transports toward TLS peers (see the module docstring)."""

    __slots__ = ("_base", "_built", "_roots")

    def __init__(self, base: MtlsContexts | None, peers: Iterable[PeerTrust] = ()) -> None:
        self._base = base
        self._roots: dict[str, bytes] = {}
        #: name -> (generation it was built for, context)
        self._built: dict[str, tuple[int, ssl.SSLContext]] = {}
        self.set(peers)

    def set(self, peers: Iterable[PeerTrust]) -> None:
        """The peers from now on (a gateway added or changed at run time); the next
        connection to each uses its context."""
        self._roots = {p.name.lower(): p.roots for p in peers if p.roots is not None}
        self._built.clear()

    @property
    def roots(self) -> Mapping[str, bytes]:
        return self._roots

    def __call__(self, name: str) -> ssl.SSLContext | None:
        """The client context toward ``name`` (None: the transport's own)."""
        roots = self._roots.get(name.lower())
        if roots is None:
            return None if self._base is None else self._base.client
        generation = 0 if self._base is None else self._base.material.generation
        built = self._built.get(name.lower())
        if built is not None and built[0] == generation:
            return built[1]
        context = self._context(roots)
        self._built[name.lower()] = (generation, context)
        return context

    def _context(self, roots: bytes) -> ssl.SSLContext:
        if self._base is None:
            context = SiteContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_verify_locations(cadata=roots.decode("ascii"))
            return context
        material = self._base.material
        return client_context(TlsMaterial(material.cert_file, roots, material.generation))
