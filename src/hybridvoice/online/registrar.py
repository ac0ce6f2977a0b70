"""The online service's registrar and its proxy authentication, sans-IO.

Implements the REGISTER procedure of RFC 3261 §10.3 for the tenant's users, with Digest
authentication (RFC 3261 §22.4, RFC 7616, RFC 8760: SHA-256 and MD5 challenges from
:class:`hybridvoice.sip.auth.DigestServer`), and the proxy's challenge of requests from users
(RFC 3261 §22.3, 407 Proxy-Authenticate).

The steps of :meth:`Registrar.handle`, in order, and what each answers:

1. the method is REGISTER (405 otherwise); the Request-URI is a sip/sips URI (416);
2. ``Require`` names no extension we support: 420 with ``Unsupported`` (§10.3 step 2);
3. From and To name the same address of record: 403 otherwise (third-party registration is
   not allowed, §10.3 step 4; decided on the request alone, before any user is looked up);
4. Digest credentials (§10.3 step 3) for the realm of the user's HA1s (for users without
   one, the realm the tenant makes passwords in: its first domain), so HA1s made for another
   realm keep working: none, a stale, foreign or replayed nonce
   -> 401 with one ``WWW-Authenticate`` per algorithm (SHA-256 first, then MD5); a wrong
   password, a user without a password in this realm, or a username other than the To user
   -> 403; malformed credentials -> 400. While the source or the user is blocked by the
   :class:`~hybridvoice.online.guard.AuthGuard` (too many failures) the same 403 comes
   without the digest work;
5. the To address of record names a user of the tenant enabled for enterprise voice. An
   address that is not a user (unknown name, a domain not served, a user without enterprise
   voice or without a password) is challenged and refused exactly as a user with a wrong
   password (Asterisk's ``alwaysauthreject``): same status, headers, realm and nonce, the same
   hash work, the same failure counting; so that REGISTER (and the proxy's challenge below)
   cannot tell who exists (sipvicious ``svwar``). Only a client that has authenticated learns
   that its user lacks enterprise voice (403 saying so). The one visible difference left: a
   user whose HA1s were imported for another realm is challenged in that realm;
6. the contacts (§10.3 steps 6-8): ``Contact: *`` with ``Expires: 0`` removes every binding;
   each contact's lifetime is its ``expires`` parameter, else the ``Expires`` header, else
   `default_expires`, capped at `max_expires`; a non-zero lifetime below `min_expires` fails
   the whole request with 423 and ``Min-Expires``; zero removes the binding; a binding with
   the same Call-ID and a CSeq not below the request's aborts the request (500, §10.3 step 7
   "the update MUST be aborted"); contacts compare by RFC 3261 §19.1.4; a new contact of a
   user at `max_contacts` replaces the binding that expires first (the one refreshed longest
   ago, usually a device that went away: Kamailio usrloc's max-contacts overwrite), with a
   log line naming both;
7. 200 lists every current binding of the address of record with its remaining ``expires``.

Bindings live in memory: a restart loses them and clients re-register within their expiry
(as after any registrar failover). Instances sharing a tenant on etcd also write each binding
as a key under a lease and merge the others' (:attr:`Registrar.observer`,
:meth:`Registrar.merge`, :mod:`.registrar_shared`). Time is `now`, a monotonic clock in
seconds.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from hybridvoice.sip.auth import (
    HA1,
    AuthError,
    Credentials,
    DigestServer,
    Password,
    UnsupportedSchemeError,
    VerifyResult,
)
from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.headers import Address
from hybridvoice.sip.message import Request, Response, make_response
from hybridvoice.sip.uri import SipUri, parse_uri, uri_equal
from hybridvoice.sip.value_cache import ValueCache

from .guard import AuthGuard
from .models import User, canonical_aor
from .store import TenantStore

__all__ = ["Binding", "BindingObserver", "Registrar"]

_log = logging.getLogger(__name__)

_MAX_DELTA: Final = 2**32 - 1  # delta-seconds beyond this are taken as this (RFC 3261 §20.19)
#: results answered with a fresh challenge: the client can succeed by simply retrying
_RECHALLENGE: Final = frozenset(
    {
        VerifyResult.STALE,
        VerifyResult.BAD_NONCE,
        VerifyResult.REPLAYED,
        VerifyResult.BAD_ALGORITHM,
        VerifyResult.BAD_QOP,
    }
)
_UNCHALLENGEABLE: Final = frozenset({"ACK", "CANCEL"})  # RFC 3261 §22.1
#: the refusal of every failed authentication, whatever failed (alwaysauthreject)
_AUTH_FAILED: Final = "authentication failed"


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact registered for an address of record (RFC 3261 §10.3).

    `source` is (transport kind, host, port) the REGISTER came from: requests for the contact
    are sent there, which reaches clients behind NAT and on the connection they opened (the
    idea of RFC 5626 flows).
    """

    aor: str
    contact: Address  # as registered, without its expires parameter
    expires_at: float
    call_id: str
    cseq: int
    q: float
    source: tuple[str, str, int] | None

    def expires_in(self, now: float) -> int:
        """Whole seconds left, rounded up; 0 once expired."""
        return max(0, math.ceil(self.expires_at - now))


BindingObserver = Callable[[str, list[Binding], list[Binding], float], None]
"""``(aor, bindings before, bindings after, now)`` after a REGISTER changed them."""


class _RejectedError(Exception):
    """A request fails with this response (internal control flow)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Registrar:
    """The tenant's registrar and location service, and Digest checks for the proxy."""

    __slots__ = (
        "_algorithms",
        "_bindings",
        "_digest",
        "_nonce_lifetime",
        "_rng",
        "_secret",
        "answers",
        "default_expires",
        "guard",
        "max_contacts",
        "max_expires",
        "min_expires",
        "observer",
        "realm",
        "store",
        "values",
    )

    def __init__(
        self,
        store: TenantStore,
        realm: str,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        secret: bytes | None = None,
        rng: random.Random | None = None,
        nonce_lifetime: float = 300.0,
        max_contacts: int = 16,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        guard: AuthGuard | None = None,
        values: ValueCache | None = None,
    ) -> None:
        if not 0 < min_expires <= max_expires:
            raise ValueError("expiry limits must satisfy 0 < min_expires <= max_expires")
        self.store = store
        self.realm = realm
        #: the memo of parsed values it shares with its transports (:mod:`.assembly`)
        self.values = values
        #: challenge algorithms, strongest first (RFC 8760 §2.4); ("MD5",) for clients that
        #: give up at the first challenge they cannot answer (SIPp 3.6, libre/baresip 1.0)
        self._algorithms = tuple(algorithms)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = min(max(default_expires, min_expires), max_expires)
        self.max_contacts = max_contacts
        #: failure limits per source and per user (None: no limits)
        self.guard = guard
        self._rng = rng if rng is not None else random.Random(secrets.randbits(64))
        if secret is None:
            secret = self._rng.randbytes(32) if rng is not None else secrets.token_bytes(32)
        self._secret = secret
        self._nonce_lifetime = nonce_lifetime
        self._digest: dict[str, DigestServer] = {}
        self._server(realm)  # checks the secret and the realm now
        self._bindings: dict[str, list[Binding]] = {}
        #: told of every REGISTER that changed an address of record's bindings, as
        #: ``observer(aor, before, after, now)`` (:mod:`.registrar_shared`: other instances)
        self.observer: BindingObserver | None = None
        #: REGISTERs answered, by status (200 accepted, 401 challenged, others refused)
        self.answers: dict[int, int] = {}

    # --- location service ------------------------------------------------------------------------

    @property
    def bindings(self) -> int:
        """How many bindings are held (expired ones count until :meth:`expire`)."""
        return sum(len(b) for b in self._bindings.values())

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of `aor`, highest q first (then oldest registration first).

        A user removed from the store or no longer enabled for enterprise voice has none.
        """
        try:
            key = canonical_aor(aor, self.values)
        except ValueError:
            return []
        found = self._bindings.get(key)
        if not found:
            return []
        user = self.store.get_user(key)
        if user is None or not user.enterprise_voice_enabled:
            del self._bindings[key]
            return []
        live = [b for b in found if b.expires_at > now]
        return sorted(live, key=lambda b: -b.q)

    def merge(self, aor: str, same: Callable[[Binding], bool], binding: Binding | None) -> None:
        """A binding another registrar made (or removed): drop the bindings of `aor` for
        which `same` holds, then add `binding` (None: only drop)."""
        kept = [b for b in self._bindings.get(aor, ()) if not same(b)]
        if binding is not None:
            kept.append(binding)
        if kept:
            self._bindings[aor] = kept
        else:
            self._bindings.pop(aor, None)

    def expire(self, now: float) -> int:
        """Drop expired bindings; return how many were dropped."""
        dropped = 0
        for aor in list(self._bindings):
            kept = [b for b in self._bindings[aor] if b.expires_at > now]
            dropped += len(self._bindings[aor]) - len(kept)
            if kept:
                self._bindings[aor] = kept
            else:
                del self._bindings[aor]
        return dropped

    # --- REGISTER (RFC 3261 §10.3) ---------------------------------------------------------------

    def handle(
        self, request: Request, now: float, source: tuple[str, str, int] | None = None
    ) -> Response:
        """Answer a REGISTER (see the module docstring for the steps), counted by status."""
        try:
            response = self._register(request, now, source)
        except _RejectedError as reject:
            response = reject.response
        except ParseError as exc:
            response = self._answer(request, 400, reason="Bad Request", warning=str(exc))
        self.answers[response.status] = self.answers.get(response.status, 0) + 1
        return response

    def _register(
        self, request: Request, now: float, source: tuple[str, str, int] | None
    ) -> Response:
        if request.method != "REGISTER":
            raise _RejectedError(
                self._answer(request, 405, headers=[("Allow", "REGISTER")], warning="not REGISTER")
            )
        if not isinstance(request.uri, SipUri):
            raise _RejectedError(self._answer(request, 416, warning="register with a sip: URI"))
        required = request.headers.values("Require")
        if required:
            raise _RejectedError(
                self._answer(request, 420, headers=[("Unsupported", ", ".join(required))])
            )
        user = self._to_user(request)
        host = None if source is None else source[1]
        self._check_credentials(request, user, now, proxy=False, source=host)
        if not user.enterprise_voice_enabled:  # only an authenticated client learns this
            why = f"{user.sip_uri} is not enabled for enterprise voice"
            raise _RejectedError(self._answer(request, 403, warning=why))
        call_id, cseq = request.call_id, request.cseq
        if call_id is None or cseq is None:
            raise _RejectedError(
                self._answer(request, 400, warning="Call-ID and CSeq are required")
            )
        current = [b for b in self._bindings.get(user.sip_uri, []) if b.expires_at > now]
        if request.contact_star:
            updated = self._unregister_all(request, current, call_id, cseq.seq)
        else:
            updated = self._update(
                request,
                current,
                user.sip_uri,
                call_id=call_id,
                cseq=cseq.seq,
                now=now,
                source=source,
            )
        if updated:
            self._bindings[user.sip_uri] = updated
        else:
            self._bindings.pop(user.sip_uri, None)
        if self.observer is not None:
            self.observer(user.sip_uri, current, updated, now)
        contacts = [
            ("Contact", b.contact.with_param("expires", str(b.expires_in(now))))
            for b in sorted(updated, key=lambda b: -b.q)
        ]
        return self._answer(request, 200, headers=contacts)

    def _to_user(self, request: Request) -> User:
        """The user the REGISTER is for: a tenant user, or a stand-in without a password for
        an address that is not one (challenged and refused like a wrong password, step 5)."""
        to, from_ = request.to, request.from_
        if to is None or from_ is None:
            raise _RejectedError(self._answer(request, 400, warning="To and From are required"))
        try:
            aor = canonical_aor(str(to.uri), self.values)
        except ValueError as exc:
            raise _RejectedError(self._answer(request, 404, warning=str(exc))) from exc
        try:
            from_aor = canonical_aor(str(from_.uri), self.values)
        except ValueError:
            from_aor = str(from_.uri)
        if from_aor != aor:
            why = f"{from_aor} may not register {aor}: third-party registration is not allowed"
            raise _RejectedError(self._answer(request, 403, warning=why))
        return self.account(aor)

    def account(self, aor: str) -> User:
        """The tenant user of the canonical `aor`, else a stand-in with no password and no
        enterprise voice, which never authenticates (the same path as a user without a
        password, so the same answers and work)."""
        user = self.store.get_user(aor)
        return user if user is not None else User.model_construct(sip_uri=aor)

    def _unregister_all(
        self, request: Request, current: list[Binding], call_id: str, cseq: int
    ) -> list[Binding]:
        """``Contact: *`` (§10.3 step 6): only with ``Expires: 0``, as the only contact."""
        if request.headers.get("Expires") != "0" or request.headers.count("Contact") != 1:
            why = "Contact: * needs Expires: 0 and no other contact"
            raise _RejectedError(self._answer(request, 400, warning=why))
        for binding in current:
            self._check_order(request, binding, call_id, cseq)
        return []

    def _update(
        self,
        request: Request,
        current: list[Binding],
        aor: str,
        *,
        call_id: str,
        cseq: int,
        now: float,
        source: tuple[str, str, int] | None,
    ) -> list[Binding]:
        """Apply every contact of the request to `current`, or none of them (§10.3 step 7)."""
        header_expires = request.headers.get("Expires")
        updated = list(current)
        for contact in request.contact:
            expires = self._expires(request, contact.param("expires") or header_expires)
            if 0 < expires < self.min_expires:
                raise _RejectedError(
                    self._answer(
                        request, 423, headers=[("Min-Expires", self.min_expires)], warning=None
                    )
                )
            index = next(
                (i for i, b in enumerate(updated) if uri_equal(b.contact.uri, contact.uri)), None
            )
            if index is not None:
                self._check_order(request, updated[index], call_id, cseq)
                del updated[index]
            if expires == 0:
                continue
            if len(updated) >= self.max_contacts:
                self._replace_oldest(request, updated, aor, contact, (call_id, cseq))
            updated.append(
                Binding(
                    aor=aor,
                    contact=_without(contact, "expires"),
                    expires_at=now + min(expires, self.max_expires),
                    call_id=call_id,
                    cseq=cseq,
                    q=self._q(request, contact),
                    source=source,
                )
            )
        return updated

    def _replace_oldest(
        self,
        request: Request,
        updated: list[Binding],
        aor: str,
        contact: Address,
        this: tuple[str, int],
    ) -> None:
        """Make room for `contact` at the limit: drop the binding that expires first (the one
        refreshed longest ago: usually a device that went away without unregistering), as
        Kamailio usrloc's max-contacts overwrite does. Bindings this request adds are kept:
        a request with more new contacts than the limit fails (403). `this` is the request's
        (Call-ID, CSeq)."""
        older = [b for b in updated if (b.call_id, b.cseq) != this]
        if not older:
            why = f"at most {self.max_contacts} contacts per address of record"
            raise _RejectedError(self._answer(request, 403, warning=why))
        oldest = min(older, key=lambda b: b.expires_at)
        updated.remove(oldest)
        _log.info(
            "registrar: %s has %d bindings (the limit): replaced %s (the oldest) by %s",
            aor, self.max_contacts, oldest.contact.uri, contact.uri,
        )  # fmt: skip

    def _check_order(self, request: Request, binding: Binding, call_id: str, cseq: int) -> None:
        if binding.call_id == call_id and cseq <= binding.cseq:
            why = f"CSeq {cseq} is not above {binding.cseq} of the binding's last REGISTER"
            raise _RejectedError(
                self._answer(request, 500, reason="Out Of Order CSeq", warning=why)
            )

    def _expires(self, request: Request, text: str | None) -> int:
        if text is None:
            return self.default_expires
        text = text.strip()
        if not text.isdigit() or not text.isascii():
            raise _RejectedError(self._answer(request, 400, warning=f"bad expires value {text!r}"))
        return min(int(text), _MAX_DELTA)

    def _q(self, request: Request, contact: Address) -> float:
        text = contact.param("q")
        if text is None:
            return 1.0
        try:
            q = float(text)
        except ValueError:
            q = -1.0
        if not 0.0 <= q <= 1.0:
            raise _RejectedError(self._answer(request, 400, warning=f"bad q value {text!r}"))
        return q

    # --- Digest (RFC 3261 §22) -------------------------------------------------------------------

    def authenticate(
        self, request: Request, now: float, source: str | None = None
    ) -> Response | None:
        """For the proxy (RFC 3261 §22.3): None when ``Proxy-Authorization`` holds valid
        credentials of the From user; otherwise 407 with ``Proxy-Authenticate`` challenges,
        or 403 for credentials that fail. A From that is not a tenant user is challenged and
        refused the same way (step 5 of the module docstring); `source` is the sender's
        address for the failure limits. ACK and CANCEL cannot be challenged (§22.1) and
        pass."""
        if request.method in _UNCHALLENGEABLE:
            return None
        try:
            from_ = request.from_
            if from_ is None:
                return self._answer(request, 400, warning="From is required")
            try:
                aor = canonical_aor(str(from_.uri), self.values)
            except ValueError as exc:
                return self._answer(request, 403, warning=str(exc))
            self._check_credentials(request, self.account(aor), now, proxy=True, source=source)
        except _RejectedError as reject:
            return reject.response
        except ParseError as exc:
            return self._answer(request, 400, reason="Bad Request", warning=str(exc))
        return None

    def _check_credentials(
        self, request: Request, user: User, now: float, *, proxy: bool, source: str | None
    ) -> None:
        """Return when the request carries valid credentials of `user`; raise _RejectedError with
        the challenge or refusal otherwise. The realm is the one the user's HA1s were computed
        for (see _password_realm for a user without a password). Every refusal of credentials
        is the same 403; failures count toward the guard's limits, and a blocked source or
        user is refused before the digest work."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        realm = user.ha1_realm or self._password_realm()
        credentials: Credentials | None = None
        for value in request.headers.get_all(header):
            try:
                parsed = Credentials.parse(value)
            except UnsupportedSchemeError:
                continue  # a scheme we do not offer: challenge with ours
            except AuthError as exc:
                raise _RejectedError(
                    self._answer(request, 400, warning=f"bad {header}: {exc}")
                ) from exc
            if parsed.realm == realm:
                credentials = parsed
                break
        if credentials is None:
            raise _RejectedError(self._challenge(request, now, realm, proxy=proxy, stale=False))
        guard = self.guard
        if guard is not None and guard.check(source, user.sip_uri, now) is not None:
            raise _RejectedError(self._answer(request, 403, warning=_AUTH_FAILED))
        if credentials.username != user.username:
            self._failed(source, user, now)
            why = f"credentials of {credentials.username!r} cannot act for {user.sip_uri}"
            raise _RejectedError(self._answer(request, 403, warning=why))
        try:
            uri_matches = uri_equal(parse_uri(credentials.uri, self.values), request.uri)
        except ParseError:
            uri_matches = False
        if not uri_matches:
            why = "the digest uri differs from the Request-URI"
            raise _RejectedError(self._answer(request, 400, warning=why))
        result = self._server(realm).verify(
            credentials,
            method=request.method,
            body=request.body,
            now=now,
            lookup=_Lookup(user),
        )
        if result.ok:
            if guard is not None:
                guard.succeeded(source, user.sip_uri)
            return
        if result in _RECHALLENGE:
            stale = result is VerifyResult.STALE
            raise _RejectedError(self._challenge(request, now, realm, proxy=proxy, stale=stale))
        if result is VerifyResult.MALFORMED:
            raise _RejectedError(self._answer(request, 400, warning=f"malformed {header}"))
        # BAD_RESPONSE, UNKNOWN_USER (no password for this realm, or no such user), BAD_URI
        self._failed(source, user, now)
        raise _RejectedError(self._answer(request, 403, warning=_AUTH_FAILED))

    def _failed(self, source: str | None, user: User, now: float) -> None:
        """A failed authentication: logged (as Asterisk logs a failed registration, for the
        operator and external tools such as fail2ban) and counted toward the limits."""
        _log.info("authentication failed for %s from %s", user.sip_uri, source)
        if self.guard is not None:
            self.guard.failed(source, user.sip_uri, now)

    def _password_realm(self) -> str:
        """The realm of a user without HA1s (or of no user): the one the tenant makes
        passwords for (its first domain, as the API does), else the registrar's; so that
        such a challenge looks like every user's."""
        domains = self.store.domains()
        return domains[0] if domains else self.realm

    def _challenge(
        self, request: Request, now: float, realm: str, *, proxy: bool, stale: bool
    ) -> Response:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges = self._server(realm).challenges(now, stale=stale)
        return self._answer(
            request, 407 if proxy else 401, headers=[(name, str(c)) for c in challenges]
        )

    def _server(self, realm: str) -> DigestServer:
        """The Digest server of `realm`: one per realm, all sharing the nonce secret."""
        server = self._digest.get(realm)
        if server is None:
            server = DigestServer(
                realm, self._secret, algorithms=self._algorithms,
                nonce_lifetime=self._nonce_lifetime,
            )  # fmt: skip
            self._digest[realm] = server
        return server

    # --- responses -------------------------------------------------------------------------------

    def _answer(
        self,
        request: Request,
        status: int,
        *,
        reason: str | None = None,
        headers: Sequence[tuple[str, object]] = (),
        warning: str | None = None,
    ) -> Response:
        """A response with a To tag and, for refusals, a ``Warning: 399`` saying why."""
        extra = list(headers)
        if warning is not None and status >= 300:
            text = warning.replace('"', "'").replace("\\", "/")
            extra.append(("Warning", f'399 hybridvoice-registrar "{text}"'))
        tag = f"{self._rng.getrandbits(64):016x}"
        return make_response(request, status, reason, to_tag=tag, headers=extra)


def _without(address: Address, name: str) -> Address:
    params = tuple((n, v) for n, v in address.params if n.lower() != name)
    return address.replace(params=params)


class _Lookup:
    """The CredentialLookup for one user: the stored HA1 of the asked algorithm and realm."""

    __slots__ = ("user",)

    def __init__(self, user: User) -> None:
        self.user = user

    def __call__(self, username: str, realm: str, algorithm: str, /) -> Password | HA1 | None:
        user = self.user
        if username != user.username or realm != user.ha1_realm:
            return None
        digest = user.ha1_sha256 if algorithm == "SHA-256" else user.ha1_md5
        return None if digest is None else HA1(digest)
