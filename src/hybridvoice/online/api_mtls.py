"""Appliances authenticate to the online API with their site certificate (mutual TLS).

When the online API is served over HTTPS (``[Online] ServiceURL`` https), the routes only
appliances use (:data:`APPLIANCE_ROUTES`: register, heartbeat, the change feed and the
snapshot) need the client certificate the appliance's site CA issued it
(:mod:`hybridvoice.pki.identity`), presented in the TLS handshake (RFC 8446 §4.4.2) and
verified by the server against the trusted site roots; bearer tokens are not accepted there.
The HTTP server hands the verified certificate to the app in the ASGI TLS extension
(``scope["extensions"]["tls"]``, :mod:`hybridvoice.net.http_tls`), never in a header.

:func:`require_certificates` puts the check in front of the token guard of
:mod:`hybridvoice.cms.guard` (the admin routes keep their bearer tokens, scopes and audit log):

- no certificate: 401 ``no-certificate`` (a token alone is not enough);
- a certificate naming no appliance (no ``urn:hybridvoice:appliance:`` URI SAN): 403
  ``no-identity``; naming a site the service trusts no CA for: 403 ``unknown-site``; not
  issued by the CA of the site it names, or naming a site other than the one the request is
  about (the body's ``site`` at registration, the registered site afterwards): 403
  ``wrong-site``; naming another appliance than the request's: 403 ``wrong-appliance``;
  outside its validity: 401 ``expired`` / ``not-yet-valid``.
- a client certificate the handshake refuses (another CA: ``untrusted-chain``; ``expired``...:
  the reasons of :data:`hybridvoice.net.identity.RefusalReason`, as every TLS listener
  counts them) is counted by :meth:`ApplianceAuth.tls_refused`, which the server adapter
  calls.

Every refusal is logged with its reason and the peer's address and counted in
``hybridvoice_online_appliance_auth_refused_total{reason=...}``; the JSON answer says what to
do next. An accepted appliance acts as a :class:`~hybridvoice.cms.guard.Caller` whose token
row is made from its certificate (``id`` ``x509:<serial>``, scope ``appliance``), so the audit
log names it as it named its token before.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from hybridvoice.cms.guard import Caller, short_text
from hybridvoice.cms.tokens import Token
from hybridvoice.net.identity import REFUSAL_REASONS
from hybridvoice.pki.identity import ApplianceIdentity, identity_of, issued_by

from .store import TenantStore

__all__ = [
    "APPLIANCE_ROUTES",
    "REASONS",
    "ApplianceAuth",
    "ApplianceRefusedError",
    "own_certificate",
    "require_certificates",
]

_log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]

#: (method, path regex) of the routes only appliances use
APPLIANCE_ROUTES: Final = (
    ("POST", re.compile(r"/v1/appliances")),
    ("POST", re.compile(r"/v1/appliances/[^/]+/heartbeat")),
    ("GET", re.compile(r"/v1/changes")),
    ("GET", re.compile(r"/v1/snapshot")),
)
#: every refusal reason, counted from 0: the handshake's (the TLS vocabulary of every
#: listener, :data:`~hybridvoice.net.identity.RefusalReason`), then the app's own
REASONS: Final = tuple(dict.fromkeys((
    *(r for r in REFUSAL_REASONS if r != "name-mismatch"),  # a server checks no client name
    "no-identity", "unknown-site", "wrong-site", "wrong-appliance",
)))  # fmt: skip
_RENEW: Final = (
    "the appliance makes its certificate from the site CA at start when [Online] ServiceURL "
    "is https (certs/online-client.pem in its pki directory): restart it"
)
_HINTS: Final[Mapping[str, tuple[int, str]]] = {
    "no-certificate": (401, "this route is for appliances: present the client certificate the "
                       "site CA issued to the appliance (mutual TLS); bearer tokens are not "
                       f"accepted here. {_RENEW}"),
    "no-identity": (403, "use the appliance's own client certificate, the one whose subject "
                    "alternative name is urn:hybridvoice:appliance:<site>:<appliance>"),
    "unknown-site": (403, "the online service trusts the root of each site it serves: give it "
                     "this site's root (`hybridvoice ca export-root` on the site's appliance, "
                     "then `hybridvoice online trust-site --site SITE --root root.pem`)"),
    "wrong-site": (403, "an appliance speaks for its own site only: use the certificate its "
                   "own site CA issued, and register it with that site"),
    "wrong-appliance": (403, "an appliance registers and reports as itself only: use the name "
                        "in its certificate ([Online] ApplianceName, else [Common] ServerName)"),
    "expired": (401, f"the client certificate is out of its validity. {_RENEW}"),
    "bad-certificate": (403, "delete certs/online-client.pem in the appliance's pki directory "
                        "and restart it: a new certificate is made from the site CA"),
    "not-yet-valid": (401, "the client certificate is not valid yet: check the clocks of the "
                      "appliance and the online service"),
}  # fmt: skip


class ApplianceRefusedError(Exception):
    """An appliance request refused for ``reason`` (one of :data:`REASONS`)."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason, self.error = reason, error
        self.status, self.hint = _HINTS[reason]


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: ApplianceIdentity
    certificate: x509.Certificate


class ApplianceAuth:
    """The site roots the online service trusts for appliances (site name -> CA
    certificate: ``site_cas`` from its own site PKI, fixed; ``added`` by an admin at run
    time, :mod:`.site_roots`) and the refusal counters; ``clock`` gives epoch seconds."""

    __slots__ = ("_listeners", "added", "clock", "refused", "site_cas")

    def __init__(
        self,
        site_cas: Mapping[str, x509.Certificate],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site_cas = dict(site_cas)
        self.added: dict[str, x509.Certificate] = {}
        self.clock = clock
        #: refusals by reason since start
        self.refused: Counter[str] = Counter(dict.fromkeys(REASONS, 0))
        self._listeners: list[Callable[[], object]] = []

    # --- the roots ------------------------------------------------------------------------
    def root_for(self, site: str) -> x509.Certificate | None:
        """The CA trusted for ``site``'s appliances (its own settings' first)."""
        return self.site_cas.get(site) or self.added.get(site)

    def roots_pem(self) -> bytes:
        """Every added root in PEM, by site (the HTTPS context trusts them too)."""
        return b"".join(self.added[site].public_bytes(Encoding.PEM) for site in sorted(self.added))

    def on_change(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` after every change of the added roots (the HTTPS server's
        context is rebuilt from them)."""
        self._listeners.append(listener)

    def set_added(self, roots: Mapping[str, x509.Certificate]) -> None:
        """Trust exactly ``roots`` as the added sites' roots, then tell the listeners."""
        self.added = dict(roots)
        for listener in self._listeners:
            listener()

    # --- counting -------------------------------------------------------------------------
    def count(self, reason: str, source: str, detail: str) -> None:
        self.refused[reason] += 1
        _log.warning("appliance refused from %s (%s): %s", source, reason, detail)

    def tls_refused(self, reason: str, peer: str, detail: str) -> None:
        """What the HTTPS server calls for a refused handshake (``on_tls_refused``)."""
        self.refused[reason] += 1  # the server adapter logged it already

    def metrics(self) -> list[Metric]:
        family = CounterMetricFamily(
            "hybridvoice_online_appliance_auth_refused",
            "Appliance requests or TLS handshakes refused by the online API, by reason",
            labels=["reason"],
        )
        for reason, n in sorted(self.refused.items()):
            family.add_metric([reason], n)
        return [family]

    # --- the checks -----------------------------------------------------------------------
    def verify(self, scope: Message) -> _Verified:
        """The appliance the request's verified client certificate names, tied to its site
        CA; :class:`ApplianceRefusedError` otherwise."""
        tls = scope.get("extensions", {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or []
        if not chain:
            raise ApplianceRefusedError(
                "no-certificate", "no client certificate: this route needs the appliance's"
            )
        try:
            cert = x509.load_pem_x509_certificate(str(chain[0]).encode("ascii"))
            identity = identity_of(cert)
        except ValueError as exc:  # OpenSSL took it, cryptography cannot read it
            raise ApplianceRefusedError(
                "bad-certificate", f"the client certificate cannot be read: {exc}"
            ) from exc
        if identity is None:
            raise ApplianceRefusedError(
                "no-identity", f"the client certificate ({cert.subject.rfc4514_string()[:80]}) "
                "names no appliance",
            )  # fmt: skip
        now = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        if now > cert.not_valid_after_utc:
            raise ApplianceRefusedError(
                "expired", f"the certificate of {identity} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            )  # fmt: skip
        if now < cert.not_valid_before_utc:
            raise ApplianceRefusedError(
                "not-yet-valid", f"the certificate of {identity} is valid from "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            )  # fmt: skip
        ca = self.root_for(identity.site)
        if ca is None:
            raise ApplianceRefusedError(
                "unknown-site", f"no CA is trusted for site {short_text(identity.site, 64)!r}"
            )
        if not issued_by(cert, ca):
            raise ApplianceRefusedError(
                "wrong-site", f"the certificate naming {identity} was not issued by the CA "
                "of that site",
            )  # fmt: skip
        return _Verified(identity, cert)


def check_owner(identity: ApplianceIdentity, name: str, site: str | None) -> None:
    """The request is about appliance ``name`` of ``site`` (None: not known yet)."""
    if name != identity.appliance:
        raise ApplianceRefusedError(
            "wrong-appliance", f"{identity} may not act for appliance {short_text(name, 64)!r}"
        )
    if site is not None and site != identity.site:
        raise ApplianceRefusedError(
            "wrong-site", f"{identity} may not act for site {short_text(site, 64)!r}"
        )


def own_certificate(request: Request, name: str, site: str | None = None) -> bool:
    """Whether the caller came with an appliance certificate (mutual TLS); if so, it must
    name appliance ``name`` of ``site`` (None: not known yet), else
    :class:`ApplianceRefusedError`. False: a token caller (plain HTTP), for the token check."""
    identity = request.scope.get("state", {}).get("appliance")
    if not isinstance(identity, ApplianceIdentity):
        return False
    check_owner(identity, name, site)
    return True


def _answer(exc: ApplianceRefusedError) -> JSONResponse:
    body = {"error": exc.error, "hint": exc.hint, "reason": exc.reason}
    return JSONResponse(body, exc.status, {"Connection": "close"})


class _CertificateGate:
    """ASGI middleware in front of the token guard: the appliance routes need a verified
    appliance certificate; everything else passes to the guard untouched."""

    def __init__(self, app: Any, auth: ApplianceAuth, store: TenantStore) -> None:
        self.app, self.auth, self.store = app, auth, store

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _appliance_route(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = f"{client[0]}:{client[1]}" if client else "-"
        try:
            verified = self.auth.verify(scope)
            if scope["method"] == "GET":  # the feed: read as the site the appliance is of
                known = self.store.get_appliance(verified.identity.appliance)
                check_owner(verified.identity, verified.identity.appliance,
                            known.site if known else None)  # fmt: skip
        except ApplianceRefusedError as exc:
            self.auth.count(exc.reason, source, exc.error)
            await _answer(exc)(scope, receive, send)
            return
        identity, cert = verified.identity, verified.certificate
        token = Token(f"x509:{cert.serial_number:x}"[:21], identity.appliance, "appliance",
                      cert.not_valid_before_utc.timestamp())  # fmt: skip
        state = scope.setdefault("state", {})
        state["caller"] = Caller(token, str(client[0]) if client else "-")
        state["appliance"] = identity
        await self.app(scope, receive, send)


def _appliance_route(method: str, path: str) -> bool:
    return any(method == m and pattern.fullmatch(path) for m, pattern in APPLIANCE_ROUTES)


def require_certificates(app: FastAPI, auth: ApplianceAuth, store: TenantStore) -> None:
    """Put ``app``'s appliance routes behind ``auth`` (call after
    :func:`hybridvoice.cms.guard.protect`: the gate runs first)."""
    app.add_middleware(_CertificateGate, auth=auth, store=store)

    @app.exception_handler(ApplianceRefusedError)
    async def refused(request: Request, exc: ApplianceRefusedError) -> JSONResponse:
        client = request.client
        auth.count(exc.reason, f"{client.host}:{client.port}" if client else "-", exc.error)
        return _answer(exc)
