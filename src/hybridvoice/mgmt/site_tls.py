"""The site CA in use by ``hybridvoice up``: MTLS between the roles (RFC 5246 §7.4.4, RFC 8446
§4.3.2), certificates from the site PKI (``docs/pki.md``).

:class:`SiteTls` makes the site CA on the first start (or loads it), issues the credentials of
:func:`tls_names` (renewed 30 days before expiry), builds their
:class:`~hybridvoice.net.tls.MtlsContexts` and reloads them when the store changes
(``hybridvoice ca renew``, a file replaced): new handshakes present the new certificate, open
connections go on. Assembly code: ``app.py`` builds it, the roles receive its contexts.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
from collections.abc import Callable
from pathlib import Path

from hybridvoice.cms.settings import Settings
from hybridvoice.edge.tls_names import runs_mras, speaks_tls, tls_names
from hybridvoice.net.tls import MtlsContexts, TlsMaterial, watch
from hybridvoice.pki import PkiError, PkiStore

__all__ = ["SiteTls", "runs_mras", "speaks_tls", "tls_names"]


def _material(store: PkiStore, name: str) -> Callable[[], TlsMaterial]:
    return lambda: TlsMaterial(store.credential_path(name), store.trust_store().bundle_pem(),
                               store.load_credential(name).generation)  # fmt: skip


class SiteTls:
    """The site CA in use: made on first start, the credentials of :func:`tls_names` issued
    (renewed 30 days before expiry), their MTLS contexts reloaded when the store changes
    (``hybridvoice ca renew``). No state directory: a temporary one, gone at :meth:`stop`."""

    __slots__ = ("_temp", "_watchers", "contexts", "store")

    def __init__(self, store: PkiStore, contexts: dict[str, MtlsContexts],
                 temp: tempfile.TemporaryDirectory[str] | None = None) -> None:  # fmt: skip
        self.store, self.contexts, self._temp = store, contexts, temp
        self._watchers: list[asyncio.Task[None]] = []

    @classmethod
    def ensure(cls, settings: Settings, directory: Path | None) -> SiteTls:
        temp = None if directory else tempfile.TemporaryDirectory(prefix="hybridvoice-pki-")
        store = PkiStore(Path(temp.name) if temp is not None else Path(directory or "."))
        ca = store.ensure_ca(settings.common.site_name, now := datetime.datetime.now(datetime.UTC))
        contexts = {}
        for name, (dns_names, ips) in tls_names(settings).items():
            store.ensure_server(ca, name, now, dns_names=dns_names, ips=ips)
            # the online listener takes softphones too: their certificate is optional there
            contexts[name] = MtlsContexts(_material(store, name), require_client=name != "online")
        return cls(store, contexts, temp)

    def watch(self, interval: float) -> None:
        """Reload every context each ``interval`` seconds (new handshakes, new certificate)."""
        self._watchers = [asyncio.create_task(watch(c, interval, tolerate=(PkiError,)))
                          for c in self.contexts.values()]  # fmt: skip

    def follow(self, contexts: MtlsContexts, interval: float) -> None:
        """Reload ``contexts`` (another credential of the store, such as the online API's)
        each ``interval`` seconds too, until :meth:`stop`."""
        self._watchers.append(asyncio.create_task(watch(contexts, interval,
                                                        tolerate=(PkiError,))))  # fmt: skip

    async def stop(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None
