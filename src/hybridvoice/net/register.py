"""Client-side Digest authentication and registration (RFC 3261 §10.2, §22.2, §22.3, §8.1.3.5;
RFC 7616 §3.4 nonce counting; RFC 8760 §2.4 algorithm choice).

:class:`DigestAuth` answers the 401/407 challenges of one stream of requests (one INVITE and
its retries, one registration): once per realm, SHA-256 before MD5
(:func:`~hybridvoice.sip.auth.choose_challenge`), again only when the server says the nonce
is stale; the challenges it answered are kept so later requests of the stream send
credentials at once with the nonce-count increased (RFC 7616 §3.4 "nc").

:class:`Registration` binds one Contact to an address-of-record at a registrar (§10.2): every
REGISTER of the registration has the same Call-ID and From tag and an increasing CSeq
(§10.2.4), a 423 raises the asked expiry to the registrar's Min-Expires (§10.2.8, §10.3 step
7), the granted expiry is our Contact's ``expires`` in the 2xx, else its Expires header
(§10.2.4), and a refresh runs at half the granted time. Unregistering sends our Contact with
Expires 0 (§10.2.2), so other contacts of the same AOR stay bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from hybridvoice.sip.auth import (
    AuthError,
    Challenge,
    authorize,
    choose_challenge,
)
from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.headers import Address, CSeq, Headers, parse_address
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.uri import SipUri, Uri, parse_uri

from .endpoint import Endpoint
from .transport import Destination, NetError

if TYPE_CHECKING:
    from .ua import UserAgent

__all__ = [
    "DigestAuth",
    "DigestCredentials",
    "Registration",
    "RegistrationError",
    "RegistrationState",
]

_log = logging.getLogger("hybridvoice.net.register")

#: 401 -> (challenge header, credentials header); 407 the proxy's (§22.2, §22.3).
_AUTH_HEADERS: Final = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}
#: Stale-nonce rounds answered for one request before giving up (a server looping on stale).
_MAX_ROUNDS: Final = 4


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """A user name and password; ``realm`` None answers any realm, else only that one."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None


class DigestAuth:
    """The challenges of one request stream and their nonce-counts (§22.2, RFC 7616 §3.4).

    ``begin()`` starts a new request (a new REGISTER transaction); ``answer(response)`` takes
    a 401/407 and says whether the request may go again; ``apply(request)`` puts the
    Authorization / Proxy-Authorization values on a request about to be sent.
    """

    __slots__ = ("_answered", "_cache", "_cnonce", "_rounds", "credentials")

    class _Entry:
        """A challenge we answer and the nonce-count sent with its nonce so far."""

        __slots__ = ("challenge", "nc")

        def __init__(self, challenge: Challenge) -> None:
            self.challenge, self.nc = challenge, 0

    def __init__(
        self,
        credentials: DigestCredentials,
        *,
        cnonce: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        self.credentials = credentials
        self._cnonce = cnonce
        self._cache: dict[tuple[str, str], DigestAuth._Entry] = {}  # by (header, realm)
        self._answered: set[tuple[str, str]] = set()  # realms challenged during this request
        self._rounds = 0

    def begin(self) -> None:
        """A new request: each realm may be challenged once more."""
        self._answered.clear()
        self._rounds = 0

    def answer(self, response: Response) -> bool:
        """Take the challenges of a 401/407. True when the request should be sent again:
        a usable Digest challenge came for a realm not yet answered for this request, or
        with ``stale=true`` (RFC 7616 §3.3). False for a repeated challenge (wrong
        password), no usable challenge, or another realm than ``credentials.realm``."""
        names = _AUTH_HEADERS.get(response.status)
        if names is None or self._rounds >= _MAX_ROUNDS:
            return False
        challenge_header, credentials_header = names
        by_realm: dict[str, list[Challenge]] = {}
        for value in response.headers.get_all(challenge_header):
            try:
                challenge = Challenge.parse(value)
            except AuthError:
                continue  # another scheme, or malformed: maybe a usable one follows
            by_realm.setdefault(challenge.realm, []).append(challenge)
        wanted = self.credentials.realm
        fresh: dict[tuple[str, str], Challenge] = {}
        for realm, offered in by_realm.items():
            if wanted is not None and realm != wanted:
                continue
            try:
                chosen = choose_challenge(offered)
            except AuthError:
                continue
            key = (credentials_header, realm)
            if key in self._answered and not chosen.stale:
                return False  # §22.2: our credentials for this realm were refused
            fresh[key] = chosen
        if not fresh:
            return False
        for key, chosen in fresh.items():
            self._cache[key] = DigestAuth._Entry(chosen)
            self._answered.add(key)
        self._rounds += 1
        return True

    def apply(self, request: Request) -> None:
        """Replace the request's credentials by ours for every realm answered so far, each
        nonce's count increased (§22.3: a proxy's credentials and the UAS's both go)."""
        headers = request.headers
        headers.remove("Authorization")
        headers.remove("Proxy-Authorization")
        uri = str(request.uri)
        for (header, _), entry in self._cache.items():
            challenge = entry.challenge
            entry.nc = nc = entry.nc + 1
            try:
                value = authorize(
                    challenge,
                    method=request.method,
                    uri=uri,
                    username=self.credentials.username,
                    password=self.credentials.password,
                    body=request.body,
                    cnonce=self._cnonce(),
                    nc=nc,
                )
            except AuthError as exc:  # chosen by choose_challenge, so not expected
                _log.info("cannot answer %s: %s", challenge, exc)
                continue
            headers.add(header, value)

    @property
    def realms(self) -> tuple[str, ...]:
        """The realms we hold a challenge for."""
        return tuple(realm for _, realm in self._cache)


class RegistrationError(NetError):
    """A REGISTER failed: the final ``status`` and ``reason`` (408 for a timeout)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"registration failed: {status} {reason}")
        self.status = status
        self.reason = reason


class RegistrationState(enum.Enum):
    IDLE = "idle"  # never registered, or stopped without unregistering
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"  # the last REGISTER failed; the refresh loop tries again later
    UNREGISTERED = "unregistered"


class Registration:
    """One Contact bound to ``aor`` at ``registrar`` (§10.2), over a UserAgent or Endpoint.

    ``contact`` defaults to the UserAgent's Contact on the registrar's transport with the
    AOR's user part (a bare Endpoint: the same form). ``request_uri`` defaults to the AOR's
    domain (§10.2: no user part). ``register()`` registers once and returns the granted
    expiry; ``start()`` keeps the binding refreshed at half of it (``retry_interval`` after
    a failure); ``stop()`` ends the refreshes and removes our binding. Built inside the
    running event loop; ``state``, ``expires_at`` (loop time), ``granted`` and ``last_error``
    say where it stands.
    """

    def __init__(
        self,
        ua_or_endpoint: UserAgent | Endpoint,
        aor: str | Uri,
        registrar: Destination,
        *,
        contact: Address | str | None = None,
        credentials: DigestCredentials | None = None,
        expires: int = 600,
        request_uri: str | Uri | None = None,
        headers: Sequence[tuple[str, object]] = (),
        retry_interval: float = 60.0,
        timeout: float | None = 32.0,
    ) -> None:
        if isinstance(ua_or_endpoint, Endpoint):
            self.endpoint, ua = ua_or_endpoint, None
        else:
            self.endpoint, ua = ua_or_endpoint.endpoint, ua_or_endpoint
        self.aor = parse_uri(aor) if isinstance(aor, str) else aor
        if not isinstance(self.aor, SipUri):
            raise ValueError(f"the AOR must be a sip: or sips: URI, not {self.aor}")
        self.registrar = registrar
        transport = self.endpoint.transport_for(registrar)
        user = self.aor.user or "hybridvoice"
        if contact is None:
            if ua is not None:
                contact = ua.contact(transport, user)
            else:
                suffix = "" if transport.kind == "UDP" else f";transport={transport.kind.lower()}"
                contact = f"<sip:{user}@{transport.sent_by}{suffix}>"
        self.contact = parse_address(contact) if isinstance(contact, str) else contact
        if request_uri is None:
            request_uri = SipUri(
                host=self.aor.host, port=self.aor.port, scheme=self.aor.scheme
            )  # fmt: skip
        self.request_uri = parse_uri(request_uri) if isinstance(request_uri, str) else request_uri
        self.expires = expires
        self.retry_interval = retry_interval
        self.timeout = timeout
        self.auth = None if credentials is None else DigestAuth(credentials)
        self.state = RegistrationState.IDLE
        #: the loop time the binding expires at, while registered
        self.expires_at: float | None = None
        #: the expiry granted by the last successful REGISTER
        self.granted: int | None = None
        self.last_error: RegistrationError | None = None
        self.call_id = f"{secrets.token_hex(10)}@{transport.advertised[0]}"
        self.cseq = 0
        self._headers = tuple(headers)
        self._tag = secrets.token_hex(6)
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._bound = False  # the registrar holds (or may hold) our binding

    def __repr__(self) -> str:
        return f"<Registration {self.aor} {self.contact} {self.state.value}>"

    # --- one REGISTER exchange -----------------------------------------------------------------
    async def register(self) -> int:
        """REGISTER now (answering challenges, raising to Min-Expires on 423) and return the
        granted expiry in seconds. Raises :class:`RegistrationError`."""
        return await self._exchange(self.expires)

    async def unregister(self) -> None:
        """Remove our binding (Contact with Expires 0, §10.2.2). Raises RegistrationError."""
        await self._exchange(0)

    async def _exchange(self, expires: int) -> int:
        async with self._lock:
            self.state = RegistrationState.REGISTERING if expires else self.state
            try:
                granted = await self._transact(expires)
            except RegistrationError as exc:
                self.last_error = exc
                self.state = RegistrationState.FAILED
                raise
            self.last_error = None
            self.granted = granted
            self._bound = granted > 0
            if not self._bound:
                self.state = RegistrationState.UNREGISTERED
                self.expires_at = None
            else:
                self.state = RegistrationState.REGISTERED
                self.expires_at = self._loop.time() + granted
            return granted

    async def _transact(self, expires: int) -> int:
        auth = self.auth
        if auth is not None:
            auth.begin()
        while True:
            request = self._build(expires)
            if auth is not None:
                auth.apply(request)
            try:
                response = await self.endpoint.request(
                    request, self.registrar, timeout=self.timeout
                )
            except NetError as exc:
                raise RegistrationError(408, str(exc)) from exc
            status = response.status
            if 200 <= status < 300:
                return 0 if expires == 0 else self._granted(response, expires)
            if status in (401, 407) and auth is not None and auth.answer(response):
                continue
            if status == 423 and expires:
                minimum = _int(response.headers.get("Min-Expires"))
                if minimum is not None and minimum > expires:
                    expires = self.expires = minimum  # §10.2.8: ask again with at least it
                    if auth is not None:
                        auth.begin()  # a new request: the registrar may challenge it again
                    continue
            raise RegistrationError(status, response.reason or "")

    def _build(self, expires: int) -> Request:
        self.cseq += 1
        h = Headers()
        h.add("Max-Forwards", 70)
        h.add("To", Address(self.aor))
        h.add("From", Address(self.aor).with_tag(self._tag))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", CSeq(self.cseq, "REGISTER"))
        h.add("Contact", self.contact)
        h.add("Expires", expires)
        for name, value in self._headers:
            h.add(name, value)
        request = Request("REGISTER", self.request_uri, h)
        request.set_body(b"", None)
        return request

    def _granted(self, response: Response, asked: int) -> int:
        """Our Contact's expires in the 2xx, else its Expires header, else what we asked."""
        try:
            contacts = response.contact
        except ParseError:
            contacts = ()
        ours = _uri_key(self.contact.uri)
        for each in contacts:
            if _uri_key(each.uri) == ours:
                value = _int(each.param("expires"))
                if value is not None:
                    return value
        value = _int(response.headers.get("Expires"))
        return asked if value is None else value

    # --- the refresh loop ----------------------------------------------------------------------
    def start(self) -> None:
        """Register now unless registered, then refresh at half the granted expiry (at least
        1 s); after a failure try again every ``retry_interval``."""
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._refresh_loop())

    async def stop(self, unregister: bool = True) -> None:
        """Stop refreshing; with ``unregister``, remove our binding (errors in ``last_error``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        in_flight = self.state is RegistrationState.REGISTERING  # the refresh was cut short
        if unregister and (self._bound or in_flight):
            with contextlib.suppress(RegistrationError):
                await self.unregister()
        elif in_flight:
            self.state = RegistrationState.IDLE

    async def _refresh_loop(self) -> None:
        delay = self._refresh_delay()
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                granted = await self.register()
            except RegistrationError as exc:
                _log.info("%r: %s", self, exc)
                delay = self.retry_interval
                continue
            if granted <= 0:  # the registrar bound nothing: nothing to refresh
                return
            delay = max(1.0, granted / 2)

    def _refresh_delay(self) -> float:
        """Until half the granted time has passed; 0 (now) unless registered."""
        if self.state is not RegistrationState.REGISTERED or not self.granted:
            return 0.0
        assert self.expires_at is not None
        return max(0.0, self.expires_at - self.granted / 2 - self._loop.time())


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _uri_key(uri: Uri) -> tuple[str, ...]:
    """A Contact URI's identity for matching our binding in a 2xx (§10.3 step 6, §19.1.4:
    scheme, user, host, port and transport)."""
    if not isinstance(uri, SipUri):
        return (str(uri),)
    return (
        uri.scheme.lower(),
        uri.user or "",
        uri.host_bare.lower(),
        str(uri.port or ""),
        (uri.transport or "").lower(),
    )
