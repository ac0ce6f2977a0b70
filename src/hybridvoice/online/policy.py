"""The online service's routing: who may call, and where each request goes.

The policy of the online service's transaction-stateful proxy (:mod:`hybridvoice.net.proxy`),
following Cloud Connector Edition's cloud side (docs/reference.md):

* ``REGISTER`` goes to the registrar (RFC 3261 §10.3, digest authenticated).
* Requests from a registered appliance's edge (its top Via sent-by is the edge address the
  appliance registered, and the packet comes from that host; certificate trust replaces this
  once the CA role lands) are *inbound PSTN calls*: reverse number lookup of the called
  number, then parallel forking to every registered contact of that user (RFC 3261 §16.6,
  first 2xx wins and the proxy cancels the rest).
* Requests from users must carry valid digest credentials (407, RFC 3261 §22.3) for the From
  user. A From that is not a tenant user is challenged and refused (403) exactly as a user
  with a wrong password, whatever the method (INVITE, OPTIONS to a user, SUBSCRIBE, MESSAGE,
  ...): nobody learns who exists before authenticating (see the registrar). Once the caller
  has authenticated, the tenant's directory is no secret from it: an unknown callee is 404.
* ``[Online] TrustedPeers`` are not challenged: such a peer authenticates its own users and
  may act for any user of the tenant (RFC 3325's trust domain). It gets 403 for a caller that
  is not a tenant user and 404 for an unknown callee, as an authenticated user would; this
  answers nobody else, because trust is by the packet's source address (a spoofed UDP source
  never sees the answer) and REGISTER is challenged even from trusted peers.
* A SIP URI of a tenant user goes to that user's contacts (user-to-user: media flows
  directly between clients). A dialled number is normalised by the tenant dial plan; a line
  URI of a user goes to that user (reverse number lookup); any other number is a PSTN call
  for the caller's hybrid PSTN site: its online appliances in random order, moving on after
  408/503/504 or when an appliance does not answer in time (never to one that is offline or
  in maintenance), or the tenant's PeerDestination when the user has no site. International
  numbers are refused (403) for users not allowed them.

Every refusal says why (reason phrase and a ``Warning: 399``), because that is what an admin
reads in a SIP trace.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import unquote

from hybridvoice.net.proxy import Forward, Target
from hybridvoice.net.transport import Destination, Source
from hybridvoice.sip.message import Request, Response, make_response
from hybridvoice.sip.uri import SipUri, TelUri, parse_uri

from .dialplan import e164_of, is_international, normalise
from .models import Appliance, User, canonical_aor
from .registrar import Binding, Registrar
from .store import TenantStore

__all__ = ["OnlinePolicy"]

#: final responses after which the next appliance of the site is tried (CCE)
APPLIANCE_FAILOVER: Final = frozenset({408, 503, 504})
#: methods whose request starts a dialog that later requests may be routed in (RFC 3261
#: §12, RFC 6665 §4.1, RFC 3515 §2.4.4)
_DIALOG_CREATING: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
_WARN_AGENT: Final = "hybridvoice-online"


def _refuse(request: Request, status: int, reason: str, why: str) -> Response:
    warning = f'399 {_WARN_AGENT} "{why}"'
    return make_response(request, status, reason, headers=[("Warning", warning)])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class OnlinePolicy:
    """Routing decisions for the online proxy; ``now`` comes from ``clock`` (monotonic, for
    registrations) and appliance order from ``rng``."""

    def __init__(
        self,
        store: TenantStore,
        registrar: Registrar,
        *,
        appliance_timeout: float = 2.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        trusted_peers: Sequence[str] = (),
        max_dialogs: int = 100_000,
    ) -> None:
        self.store = store
        self.registrar = registrar
        #: sources not challenged: peers that authenticate their own users (RFC 3325 §2)
        self.trusted_peers = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_peers)
        self._trust: dict[str, bool] = {}  # source host -> trusted, memo
        #: an appliance that sends no provisional response within this is skipped
        self.appliance_timeout = appliance_timeout
        self._rng = rng or random.Random()
        self._clock = clock
        self._edges: dict[tuple[str, int], Appliance] = {}  # edge SIP address -> appliance
        #: (edge FQDN, source host, port) -> appliance: an edge that names itself over TLS
        self._named_edges: dict[tuple[str, str, int], Appliance] = {}
        #: edge FQDN -> the address of an appliance of its pool (:meth:`edge_address`)
        self._edge_names: dict[str, str] = {}
        #: (edge FQDN, appliance name) -> that appliance's address
        self._edge_named: dict[tuple[str, str], str] = {}
        self._edges_version = -1
        #: Call-IDs of the dialogs this proxy routed, least recently used first (admit)
        self._dialogs: OrderedDict[str, None] = OrderedDict()
        self.max_dialogs = max_dialogs

    # --- ProxyPolicy ---------------------------------------------------------------------------
    def route(self, request: Request, source: Source) -> Forward | Response:
        """Where an initial request goes, or the local answer to it; the Call-ID of a
        dialog-creating request that goes on is remembered for :meth:`admit`."""
        decision = self._route(request, source)
        if isinstance(decision, Forward) and request.method in _DIALOG_CREATING:
            call_id = request.call_id
            if call_id is not None:
                self._remember(call_id)
        return decision

    def _route(self, request: Request, source: Source) -> Forward | Response:
        method = request.method
        if method == "REGISTER":
            where = (source.transport.kind, source.host, source.port)
            return self.registrar.handle(request, self._clock(), where)
        if self._from_appliance(request, source) is not None:
            return self._inbound(request)
        if method == "OPTIONS" and self._addressed_to_us(request):
            return make_response(request, 200)
        if not self._trusted(source.host):
            challenge = self.registrar.authenticate(request, self._clock(), source.host)
            if challenge is not None:
                return challenge
        request.headers.remove("Proxy-Authorization")  # ours: not for the next hop (§22.3)
        caller = self._caller(request)
        if caller is None:
            return _refuse(request, 403, "Forbidden", "the caller is not a user of this tenant")
        return self._outbound(request, caller)

    def _trusted(self, host: str) -> bool:
        if not self.trusted_peers:
            return False
        trusted = self._trust.get(host)
        if trusted is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            trusted = any(address in network for network in self.trusted_peers)
            if len(self._trust) >= 4096:  # bounded: hosts come from the network
                self._trust.clear()
            self._trust[host] = trusted
        return trusted

    def admit(self, request: Request, source: Source) -> Response | None:
        """Requests inside a dialog this proxy routed are let through (and ACKs for its
        2xx); so are those of trusted peers and appliances' edges. Anything else that looks
        in-dialog (a To tag, a Route that is not ours) is refused with 481 (RFC 3261
        §12.2.2): forwarded, it would reach any address without a digest challenge (an open
        relay). The memory is bounded (`max_dialogs`, least recently used out; every
        in-dialog request refreshes its dialog) and lost at restart: a dialog older than
        that gets 481, which tells its user agents the dialog is gone."""
        call_id = request.call_id
        if call_id is not None and call_id in self._dialogs:
            self._dialogs.move_to_end(call_id)
            return None
        if self._trusted(source.host) or self._from_appliance(request, source) is not None:
            return None
        why = "no dialog with this Call-ID goes through this proxy"
        return _refuse(request, 481, "Call/Transaction Does Not Exist", why)

    def _remember(self, call_id: str) -> None:
        dialogs = self._dialogs
        dialogs[call_id] = None
        dialogs.move_to_end(call_id)
        if len(dialogs) > self.max_dialogs:
            dialogs.popitem(last=False)

    # --- inbound: an appliance's edge calls a user ----------------------------------------------
    def _from_appliance(self, request: Request, source: Source) -> Appliance | None:
        """The registered appliance whose edge sent ``request``: its top Via sent-by is the
        edge address the appliance registered and the packet came from that host."""
        via = request.top_via
        if via is None:
            return None
        if self._edges_version != self.store.version:  # rebuilt when the tenant changes
            self._index_edges()
        if via.host != source.host:  # over TLS the edge names itself by its FQDN (RFC 5922)
            key = (via.host.lower(), source.host, via.port or 5061)
            return self._named_edges.get(key) if self._named_edges else None
        return self._edges.get((via.host, via.port or 5060))

    def _index_edges(self) -> None:
        appliances = self.store.appliances()
        self._edges = {(a.edge_sip_host, a.edge_sip_port): a for a in appliances}
        self._named_edges = {
            (a.edge_fqdn.lower(), a.edge_sip_host, a.edge_sip_port): a for a in appliances
        }
        names: dict[str, str] = {}
        for a in sorted(appliances, key=lambda a: a.status != "online"):  # online ones first
            if _is_ip(a.edge_sip_host):
                names.setdefault(a.edge_fqdn.lower(), a.edge_sip_host)
        self._edge_names = names
        self._edge_named = {(a.edge_fqdn.lower(), a.name): a.edge_sip_host
                            for a in appliances if _is_ip(a.edge_sip_host)}  # fmt: skip
        self._edges_version = self.store.version

    def edge_address(self, uri: SipUri) -> str | None:
        """Where an in-dialog request routed by an edge's Record-Route over TLS goes (the
        proxy's ``names``): the appliance the URI's user part names (the edge puts its
        appliance's name there, ``cms.edge_names``) among those whose edge pool FQDN is its
        host; without one, the first online appliance of that pool."""
        if self._edges_version != self.store.version:
            self._index_edges()
        host = uri.host_bare.rstrip(".").lower()
        if uri.user:
            named = self._edge_named.get((host, unquote(uri.user)))
            if named is not None:
                return named
        return self._edge_names.get(host)

    def _inbound(self, request: Request) -> Forward | Response:
        number = e164_of(str(request.uri))
        if number is None:
            return _refuse(request, 404, "Not Found", "the called number is not an E.164 number")
        user = self.store.user_by_number(number)
        if user is None:
            return _refuse(request, 404, "Not Found", f"no user has the number {number}")
        return self._to_user(request, user)

    # --- outbound: a user calls -------------------------------------------------------------------
    def _caller(self, request: Request) -> User | None:
        address = request.from_
        if address is None:
            return None
        try:
            return self.store.get_user(canonical_aor(str(address.uri), self.registrar.values))
        except ValueError:
            return None

    def _outbound(self, request: Request, caller: User) -> Forward | Response:
        uri = request.uri
        if self._names_a_user(uri):
            assert isinstance(uri, SipUri)
            callee = self.store.get_user(f"sip:{uri.user}@{uri.host.lower()}")
            if callee is None:
                return _refuse(request, 404, "Not Found", f"no user {uri.user}@{uri.host}")
            return self._to_user(request, callee)
        dialled = (
            uri.number if isinstance(uri, TelUri) else uri.user if isinstance(uri, SipUri) else None
        )
        if not dialled:
            return _refuse(request, 404, "Not Found", "nothing to dial in the Request-URI")
        number = normalise(dialled, self.store.dialplan())
        if number is None:
            return _refuse(request, 484, "Address Incomplete", f"cannot normalise {dialled!r}")
        callee = self.store.user_by_number(number)
        if callee is not None:
            return self._to_user(request, callee)
        return self._to_pstn(request, caller, number)

    def _names_a_user(self, uri: object) -> bool:
        """A SIP URI in one of our domains whose user part is a name, not a number."""
        if (
            not isinstance(uri, SipUri)
            or not uri.user
            or uri.host.lower() not in self.store.domains()
        ):
            return False
        return e164_of(str(uri)) is None and not uri.user.isdigit()

    def _to_user(self, request: Request, user: User) -> Forward | Response:
        bindings = self.registrar.lookup(user.sip_uri, self._clock())
        if not bindings:
            why = f"{user.sip_uri} has no registered device"
            return _refuse(request, 480, "Temporarily Unavailable", why)
        return Forward(groups=[[self._contact_target(b) for b in bindings]])

    @staticmethod
    def _contact_target(binding: Binding) -> Target:
        """The contact as Request-URI; sent to where the REGISTER came from, so that clients
        behind NAT or on a TCP connection they opened are reached (RFC 5626's idea)."""
        destination = None
        if binding.source is not None:
            kind, host, port = binding.source
            destination = Destination(kind, host, port)
        return Target(binding.contact.uri, destination)

    def _to_pstn(self, request: Request, caller: User, number: str) -> Forward | Response:
        if not caller.enterprise_voice_enabled:
            why = f"{caller.sip_uri} is not enabled for enterprise voice"
            return _refuse(request, 403, "Forbidden", why)
        site = self.store.get_site(caller.hybrid_pstn_site) if caller.hybrid_pstn_site else None
        if (
            site is not None
            and site.country_code
            and not caller.international_calls_allowed
            and is_international(number, site.country_code)
        ):
            why = f"{caller.sip_uri} may not call international numbers"
            return _refuse(request, 403, "Forbidden", why)
        headers = self._identity(caller)
        if site is None:
            peer = self.store.hybrid_config().peer_destination
            if peer is None:
                why = f"{caller.sip_uri} has no hybrid PSTN site and the tenant no PeerDestination"
                return _refuse(request, 403, "Forbidden", why)
            return Forward(groups=[[self._peer_target(peer, number)]], headers=headers)
        appliances = self.store.routable_appliances(site.name)
        if not appliances:
            why = f"no appliance of site {site.name} is online"
            return _refuse(request, 503, "Service Unavailable", why)
        self._rng.shuffle(appliances)
        return Forward(
            groups=[[self._appliance_target(a, number)] for a in appliances],
            failover=APPLIANCE_FAILOVER,
            provisional_timeout=self.appliance_timeout,
            exhausted=503,
            headers=headers,
        )

    @staticmethod
    def _identity(caller: User) -> Sequence[tuple[str, str]]:
        """P-Asserted-Identity (RFC 3325 §9.1) toward the trusted appliance: the user's SIP
        URI and, when it has one, its line URI (what the PSTN shows as caller id)."""
        name = caller.display_name.replace('"', "")
        out = [
            (
                "P-Asserted-Identity",
                f'"{name}" <{caller.sip_uri}>' if name else f"<{caller.sip_uri}>",
            )
        ]
        if caller.line_uri:
            out.append(("P-Asserted-Identity", f"<{caller.line_uri}>"))
        return out

    @staticmethod
    def _appliance_target(appliance: Appliance, number: str) -> Target:
        host, port, kind = (
            appliance.edge_sip_host,
            appliance.edge_sip_port,
            appliance.edge_sip_transport,
        )
        params: tuple[tuple[str, str | None], ...] = (("user", "phone"),)
        if kind != "UDP":
            params += (("transport", kind.lower()),)
        uri = SipUri(host, number, None, port, params)
        destination = Destination(kind, host, port, appliance.edge_fqdn) if _is_ip(host) else None
        return Target(uri, destination)

    @staticmethod
    def _peer_target(peer: str, number: str) -> Target:
        parsed = parse_uri(peer if ":" in peer.partition(".")[0] else f"sip:{peer}")
        host = parsed.host if isinstance(parsed, SipUri) else peer
        port = parsed.port if isinstance(parsed, SipUri) else None
        uri = SipUri(host, number, None, port, (("user", "phone"),))
        return Target(uri)

    def _addressed_to_us(self, request: Request) -> bool:
        uri = request.uri
        return isinstance(uri, SipUri) and uri.user is None
