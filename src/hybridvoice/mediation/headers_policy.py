"""Per-trunk header policy of the mediation B2BUA (sans-IO).

A B2BUA starts a new dialog on its second leg (RFC 7092 §3.1), so no header crosses unless
the policy says so:

- ``ForwardPAI``: P-Asserted-Identity and Privacy (RFC 3325 §9.1, RFC 3323 §4.2) are copied
  from the incoming INVITE to the outgoing one. Without it they are dropped: the trust domain
  (RFC 3325 §2.3) ends at the mediation role.
- ``ForwardCallHistory``: History-Info (RFC 7044 §4) and Referred-By (RFC 3892 §3) are copied.
- Toward the cloud side the Request-URI is ``sip:+E164@host;user=phone``
  (:func:`hybridvoice.mediation.translate.cloud_request_uri`, RFC 3966 §5.1.4 global numbers).
- Toward a gateway the From is the calling number as the PSTN needs it, whatever ``ForwardPAI``
  says (:func:`calling_party`, :func:`gateway_from`): ``"Alice" <sip:+15550100@gateway;user=phone>``
  with the user's line URI that the online service asserts (P-Asserted-Identity, RFC 3325 §9.1),
  the display name kept (RFC 3261 §20.20, RFC 3966 §5.1.4 for ``user=phone``).

The gateway's own ``ForwardPAI``/``ForwardCallHistory`` (Direct Routing style) win over the
``[TrunkConfiguration]`` defaults when set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hybridvoice.cms.settings import Gateway, TrunkConfiguration
from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.headers import Address, parse_address
from hybridvoice.sip.message import Request
from hybridvoice.sip.uri import SipUri, TelUri

from .translate import cloud_request_uri, number_of

__all__ = [
    "CALL_HISTORY_HEADERS",
    "PAI_HEADERS",
    "HeaderPolicy",
    "calling_party",
    "e164_request_uri",
    "gateway_from",
]

#: RFC 3325 §9.1 and RFC 3323 §4.2.
PAI_HEADERS: Final = ("P-Asserted-Identity", "Privacy")
#: RFC 7044 §4 and RFC 3892 §3.
CALL_HISTORY_HEADERS: Final = ("History-Info", "Referred-By")


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """Which identity and history headers cross the B2BUA for one gateway's calls."""

    forward_pai: bool = False
    forward_call_history: bool = False

    @classmethod
    def for_gateway(cls, gateway: Gateway, trunk: TrunkConfiguration) -> HeaderPolicy:
        """The gateway's settings, else the trunk defaults."""
        pai = trunk.forward_pai if gateway.forward_pai is None else gateway.forward_pai
        history = gateway.forward_call_history
        if history is None:
            history = trunk.forward_call_history
        return cls(forward_pai=pai, forward_call_history=history)

    @property
    def names(self) -> tuple[str, ...]:
        """The header names this policy forwards."""
        return (PAI_HEADERS if self.forward_pai else ()) + (
            CALL_HISTORY_HEADERS if self.forward_call_history else ()
        )

    def forwarded(self, request: Request) -> list[tuple[str, object]]:
        """(name, value) pairs of ``request`` to put on the other leg's INVITE, in order."""
        out: list[tuple[str, object]] = []
        headers = request.headers
        for name in self.names:
            out.extend((name, value) for value in headers.get_all(name))
        return out


def e164_request_uri(number: str, host: str, port: int | None = None) -> SipUri:
    """The cloud-side Request-URI ``sip:+E164@host;user=phone`` (raises ``NumberError``)."""
    return cloud_request_uri(number, host, port)


def calling_party(request: Request) -> tuple[str | None, str | None]:
    """The caller's number and display name (raw, as quoted on the wire) for a gateway.

    The number: a telephone-number identity the cloud asserted (RFC 3325 §9.1: a ``tel:``
    P-Asserted-Identity, or a SIP one with ``user=phone``; the online service adds the user's
    line URI), else the user part of From. The display name: the first of those identities'
    (P-Asserted-Identity, then From) that has one. Malformed identities are skipped.
    """
    identities: list[Address] = []
    for value in request.headers.values("P-Asserted-Identity"):
        try:
            identities.append(parse_address(value))
        except ParseError:
            continue
    from_ = request.from_
    number = next((number_of(a.uri) for a in identities if _is_phone(a)), None)
    if number is None and from_ is not None:
        number = number_of(from_.uri)
    if from_ is not None:
        identities.append(from_)
    display = next((a.display for a in identities if a.display), None)
    return number, display


def _is_phone(address: Address) -> bool:
    uri = address.uri
    return isinstance(uri, TelUri) or (isinstance(uri, SipUri) and uri.param("user") == "phone")


def gateway_from(gateway: SipUri, number: str, display: str | None) -> Address:
    """The From toward a gateway: ``display <sip:number@gateway-host;user=phone>``."""
    uri = SipUri(host=gateway.host, user=number, params=(("user", "phone"),))
    return Address(uri, display)
