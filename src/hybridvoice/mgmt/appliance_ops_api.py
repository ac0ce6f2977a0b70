"""The appliance API's operations for an admin of a remote appliance: its site CA and test calls.

What ``hybridvoice ca status``, ``ca export-root``, ``ca renew`` and ``test-call`` do on the
machine itself, over the appliance's management API (JSON over HTTP, RFC 9110), so that an
admin who reaches the appliance only through its API can do it too:

- ``GET /v1/ca/certificates``: every certificate of the site PKI (RFC 5280 §4.1.2.5
  ``notAfter``), soonest expiry first, with its days left and ``warn`` 30 days before;
- ``GET /v1/ca/root``: the site root in PEM (``Export-CcRootCertificate``), for gateways;
- ``POST /v1/ca/renew`` ``{"name": ROLE | null, "ca": bool}``: ``Renew-CcServerCertificate``
  (every certificate, or the one named) or, with ``ca``, ``Update-CcCertificationAuthority``;
  a running appliance presents the new certificate on its next handshakes;
- ``POST /v1/test-calls`` ``{"from", "to", "password", "proxy", "duration"}``: the test call
  of :mod:`.testcall` placed by the appliance (register as the user at ``proxy``, call, send a
  tone, check it comes back, hang up), its result as JSON; the media path comes from this
  appliance's own call records. A failed call is a result (``ok`` false, ``error``, ``hint``),
  not an error answer.

The site PKI is the one ``hybridvoice up`` gave the appliance (``--state-dir``'s ``pki``), or
``<[Management] StateDirectory>/pki``; an appliance with neither answers 409. Changes are in
the audit log (:mod:`hybridvoice.cms.guard`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from hybridvoice.cms.guard import audit_change, short_text
from hybridvoice.net.transport import Destination
from hybridvoice.pki import PkiError, PkiStore, expiry_report

from .ca_ops import renew_certificates
from .listen_spec import parse_listen
from .testcall import TestCallResult, place_test_call

if TYPE_CHECKING:
    from .appliance import Appliance

__all__ = ["CertificateOut", "RenewIn", "TestCallIn", "add_ops_routes"]

#: the longest tone a test call sends, seconds (the request is held that long and a bit)
MAX_DURATION: Final = 30.0


def _error(status: int, error: str, hint: str, field: str | None = None) -> HTTPException:
    return HTTPException(status, detail={"error": error, "field": field, "hint": hint})


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CertificateOut(BaseModel):
    """One certificate of the site PKI."""

    name: str
    subject: str
    not_after: datetime
    days_left: int
    warn: bool
    expired: bool


class CertificatesOut(BaseModel):
    directory: str
    certificates: list[CertificateOut]


class RootOut(BaseModel):
    root: str = Field(description="the site root certificate, PEM")


class RenewIn(_In):
    name: StrictStr | None = Field(None, description="the certificate to renew; none: all")
    ca: StrictBool = Field(False, description="renew the site CA itself instead")


class RenewedOut(BaseModel):
    name: str
    generation: int | None = None
    not_after: datetime


class RenewOut(BaseModel):
    renewed: list[RenewedOut]


class TestCallIn(_In):
    __test__ = False  # not a pytest test class, despite the name

    from_: StrictStr = Field(alias="from", min_length=1, max_length=256,
                             description="the calling user: alice@contoso.com")  # fmt: skip
    to: StrictStr = Field(min_length=1, max_length=64, description="the number to call")
    password: StrictStr = Field("hybridvoice", max_length=256, description="its SIP password")
    proxy: StrictStr = Field("udp:127.0.0.1:5060", max_length=300,
                             description="the online service's SIP address")  # fmt: skip
    duration: float = Field(2.0, gt=0, le=MAX_DURATION, description="seconds of media")


class TestCallOut(BaseModel):
    __test__ = False

    ok: bool
    caller: str
    number: str
    call_id: str | None
    status: int | None
    reason: str | None
    error: str | None
    hint: str | None
    setup_ms: float | None
    ladder: list[str]
    rtp_sent: int
    rtp_received: int
    tone_intact: bool
    remote_media: str | None
    media_path: str | None
    media_reason: str | None


def _pki(appliance: Appliance) -> PkiStore:
    where = appliance.options.pki_dir
    if where is None and appliance.state_dir is not None:
        where = Path(appliance.state_dir) / "pki"
    store = None if where is None else PkiStore(where)
    if store is None or not store.has_ca():
        raise _error(409, "this appliance has no site CA",
                     "hybridvoice up makes one in its state directory; or restore one: "
                     "hybridvoice ca restore on the appliance")  # fmt: skip
    return store


def add_ops_routes(app: FastAPI, appliance: Appliance) -> None:
    """The routes of the module docstring on ``app``."""

    @app.get("/v1/ca/certificates")
    def certificates() -> CertificatesOut:
        store = _pki(appliance)
        report = expiry_report(store.certificates(), datetime.now(UTC))
        rows = [CertificateOut(name=e.name, subject=e.subject, not_after=e.not_after,
                               days_left=e.days_left, warn=e.warn, expired=e.expired)
                for e in report]  # fmt: skip
        return CertificatesOut(directory=str(store.directory), certificates=rows)

    @app.get("/v1/ca/root")
    def root() -> RootOut:
        return RootOut(root=_pki(appliance).root_pem().decode())

    @app.post("/v1/ca/renew")
    def renew(body: RenewIn, request: Request) -> RenewOut:
        store, now = _pki(appliance), datetime.now(UTC)
        known = store.names()
        if body.name is not None and body.name not in known:
            raise _error(404, f"no certificate {short_text(body.name)!r}",
                         f"known: {', '.join(known) or 'none'} (GET /v1/ca/certificates)",
                         "name")  # fmt: skip
        if body.name is not None and body.ca:
            hint = 'send {"ca": true} alone, then renew the certificates'
            raise _error(422, "name and ca together: renew the CA or certificates", hint, "ca")
        target = "ca" if body.ca else body.name or "*"
        audit_change(request, "ca.renew", target, {"names": list(known)})
        try:
            done = renew_certificates(store, now, name=body.name, ca=body.ca)
        except PkiError as exc:
            raise _error(
                409, short_text(str(exc)), "GET /v1/ca/certificates shows the PKI"
            ) from exc
        renewed = [RenewedOut(name=r.name, generation=r.generation, not_after=r.not_after)
                   for r in done]  # fmt: skip
        after = {"renewed": [r.name for r in renewed]}
        audit_change(request, "ca.renew", target, {"names": list(known)}, after)
        return RenewOut(renewed=renewed)

    @app.post("/v1/test-calls")
    async def test_call(body: TestCallIn, request: Request, response: Response) -> TestCallOut:
        user, _, domain = body.from_.removeprefix("sip:").partition("@")
        if not user or not domain:
            raise _error(422, f"from {short_text(body.from_)!r} is not user@domain",
                         "e.g. {\"from\": \"alice@contoso.com\"}", "from")  # fmt: skip
        try:
            spec = parse_listen(body.proxy)
        except ValueError as exc:
            raise _error(
                422,
                f"proxy: {short_text(str(exc))}",
                "e.g. udp:127.0.0.1:5060 or tls:sip.contoso.com:5061",
                "proxy",
            ) from exc
        audit_change(request, "test-call", body.to, None, {"from": body.from_, "to": body.to})
        result = await place_test_call(
            user=user, domain=domain, password=body.password, number=body.to,
            proxy=Destination(spec.transport, spec.host, spec.port), duration=body.duration,
        )  # fmt: skip
        _media_path(appliance, result)
        return TestCallOut(**result.to_json())


def _media_path(appliance: Appliance, result: TestCallResult) -> None:
    """The media path this appliance's mediation role chose for the call, from its records."""
    mediation = appliance.mediation
    if result.call_id is None or mediation is None or mediation.records is None:
        return
    store = mediation.records
    record: Any = store.live(result.call_id) or store.by_call_id(result.call_id)
    mode = getattr(record, "media_mode", None)
    if mode:
        result.media_path = str(mode).lower()
        result.media_reason = getattr(record, "media_reason", None)
