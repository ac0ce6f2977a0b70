"""Per-trunk header policy of the mediation B2BUA (sans-IO).

A B2BUA starts a new dialog on its second leg (RFC 7092 §3.1), so no header crosses unless
the policy says so:

- ``ForwardPAI``: P-Asserted-Identity and Privacy (RFC 3325 §9.1, RFC 3323 §4.2) are copied
  from the incoming INVITE to the outgoing one. Without it they are dropped: the trust domain
  (RFC 3325 §2.3) ends at the mediation role.
- ``ForwardCallHistory``: History-Info (RFC 7044 §4) and Referred-By (RFC 3892 §3) are copied.
- Toward the cloud side the Request-URI is ``sip:+E164@host;user=phone``
  (:func:`hybridvoice.mediation.translate.cloud_request_uri`, RFC 3966 §5.1.4 global numbers).

The gateway's own ``ForwardPAI``/``ForwardCallHistory`` (Direct Routing style) win over the
``[TrunkConfiguration]`` defaults when set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hybridvoice.cms.settings import Gateway, TrunkConfiguration
from hybridvoice.sip.message import Request
from hybridvoice.sip.uri import SipUri

from .translate import cloud_request_uri

__all__ = ["CALL_HISTORY_HEADERS", "PAI_HEADERS", "HeaderPolicy", "e164_request_uri"]

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
