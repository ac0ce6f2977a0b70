"""SIP Digest authentication for both sides, sans-IO.

Implements:

* the auth-param grammar of RFC 7235 §2.1 and RFC 3261 §25.1 (tokens, quoted-strings with
  backslash escapes, LWS and line folding per RFC 3261 §7.3.1, case-insensitive names);
* Digest challenges and credentials, RFC 7616 §3.3-§3.4 as used by SIP (RFC 3261 §22.4, updated
  by RFC 8760): MD5, SHA-256 and their -sess variants, qop=auth and qop=auth-int, userhash
  (RFC 7616 §3.4.4) and the RFC 2069 path for challenges without qop (RFC 2617 §3.2.2.1);
* algorithm choice among several challenges (RFC 7616 §3.7, RFC 8760 §2.4);
* a server with stateless HMAC nonces (RFC 7616 §3.3 "nonce") and nonce-count replay detection
  (RFC 7616 §3.4 "nc", §5), answering STALE per RFC 7616 §3.3 "stale".

Everything works on header field values: the text after "WWW-Authenticate:",
"Proxy-Authenticate:", "Authorization:" or "Proxy-Authorization:" (RFC 3261 §20.44, §20.27,
§20.7, §20.28). Time (`now`) and the client nonce (`cnonce`) are parameters.

The values, the algorithm table and the client side live in ``_auth_digest`` (re-exported
here); this module holds the server side (RFC 7616 §3.3-§3.4, §5; RFC 3261 §22.4).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from ._auth_digest import (
    _ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    AuthError,
    AuthSyntaxError,
    AuthValue,
    Challenge,
    Credentials,
    UnsupportedChallengeError,
    UnsupportedSchemeError,
    _Algorithm,
    _check_text,
    _digest,
    authorize,
    choose_challenge,
)

__all__ = [
    "HA1",
    "SUPPORTED_ALGORITHMS",
    "AuthError",
    "AuthSyntaxError",
    "AuthValue",
    "Challenge",
    "CredentialLookup",
    "Credentials",
    "DigestServer",
    "Password",
    "UnsupportedChallengeError",
    "UnsupportedSchemeError",
    "VerifyResult",
    "authorize",
    "choose_challenge",
]


# --- Server side (RFC 7616 §3.3-§3.4, §5; RFC 3261 §22.4; RFC 8760 §2.3) ----------------------


@dataclass(frozen=True, slots=True)
class Password:
    """A clear-text password, as returned by a CredentialLookup."""

    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class HA1:
    """H(username ":" realm ":" password) in hex for the looked-up hash (RFC 7616 §3.4.2).

    Always the plain form: the server applies the -sess step itself.
    """

    digest: str = field(repr=False)


class CredentialLookup(Protocol):
    """Find a user's secret: called with (username, realm, hash algorithm "MD5" or "SHA-256")."""

    def __call__(self, username: str, realm: str, algorithm: str, /) -> Password | HA1 | None: ...


class VerifyResult(enum.Enum):
    """Outcome of DigestServer.verify. Only OK authenticates.

    STALE: the digest is right but the nonce expired; answer 401/407 with
    `challenges(now, stale=True)` (RFC 7616 §3.3). Answer UNKNOWN_USER and BAD_RESPONSE the
    same way on the wire so users cannot be enumerated.
    """

    OK = "ok"
    STALE = "stale"
    BAD_NONCE = "bad-nonce"  # not issued by this server (bad HMAC, realm or shape)
    WRONG_REALM = "wrong-realm"
    BAD_ALGORITHM = "bad-algorithm"  # not one this server offers
    BAD_QOP = "bad-qop"  # absent (RFC 2069) or not offered
    MALFORMED = "malformed"  # qop without cnonce or nc, nc 0, or userhash (not offered)
    BAD_URI = "bad-uri"  # uri differs from the Request-URI given to verify
    UNKNOWN_USER = "unknown-user"
    BAD_RESPONSE = "bad-response"  # wrong password
    REPLAYED = "replayed"  # this nc was already used with this nonce

    @property
    def ok(self) -> bool:
        return self is VerifyResult.OK


_NONCE_PAYLOAD = struct.Struct(">dQ")  # issued-at (now), serial: unique per challenge
_NONCE_SHAPE = re.compile(r"[A-Za-z0-9_-]{64}")  # base64url of 16 + 32 bytes
_WINDOW = 64  # nc values tracked below the highest seen, for requests arriving out of order


@dataclass(slots=True)
class _NonceUse:
    """Nonce counts seen for one nonce: the highest and a bitmap of the _WINDOW below it."""

    issued_at: float
    highest: int = 0
    seen: int = 0  # bit i set: nc == highest - i was used

    def accept(self, nc: int) -> bool:
        if nc > self.highest:
            shift = nc - self.highest
            self.seen = ((self.seen << shift) | 1) & ((1 << _WINDOW) - 1) if shift < _WINDOW else 1
            self.highest = nc
            return True
        offset = self.highest - nc
        if offset >= _WINDOW or (self.seen >> offset) & 1:
            return False
        self.seen |= 1 << offset
        return True


class DigestServer:
    """UAS / registrar / proxy side of Digest (RFC 3261 §22.1, §22.3; RFC 8760 §2.3).

    Nonces are stateless: base64url(issued-at, serial, HMAC-SHA256(secret, issued-at, serial,
    realm)). `secret` should be random per process: nonce-count state is in memory, and `now`
    is a monotonic clock. Nonce-count state is kept per used nonce, at most `max_nonces`
    entries; when they are all live, the oldest are dropped and their nonces answer STALE.
    """

    __slots__ = (
        "_dummy_ha1",
        "_floor",
        "_next_sweep",
        "_secret",
        "_serial",
        "_uses",
        "algorithms",
        "max_nonces",
        "nonce_lifetime",
        "qop",
        "realm",
    )

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        qop: Sequence[str] = ("auth",),
        nonce_lifetime: float = 300.0,
        max_nonces: int = 10_000,
    ) -> None:
        if len(secret) < 16:
            raise AuthError("the nonce secret needs at least 16 bytes")
        names = [_ALGORITHMS[a.lower()].name for a in algorithms if a.lower() in _ALGORITHMS]
        if not names or len(set(names)) != len(algorithms):
            raise AuthError(f"algorithms must be among {SUPPORTED_ALGORITHMS}: {algorithms}")
        if not qop or not set(qop) <= {"auth", "auth-int"}:
            raise AuthError(f"qop must be among ('auth', 'auth-int'): {qop}")
        if not nonce_lifetime > 0 or max_nonces < 1:
            raise AuthError("nonce_lifetime and max_nonces must be positive")
        _check_text("realm", realm)
        self.realm = realm
        self.algorithms: tuple[str, ...] = tuple(names)
        self.qop: tuple[str, ...] = tuple(qop)
        self.nonce_lifetime = nonce_lifetime
        self.max_nonces = max_nonces
        self._secret = secret
        #: the HA1 verify checks against for a user it cannot find, per hash: of the stored
        #: HA1s' length, so the work is the same; keyed by this server's secret, so no
        #: password hashes to it in practice and no other server has the same one
        self._dummy_ha1: Mapping[str, str] = MappingProxyType(
            {
                a.base: hmac.new(
                    secret, b"no such user:" + a.base.encode(), a.hash_name
                ).hexdigest()
                for a in _ALGORITHMS.values()
            }
        )
        self._serial = 0
        self._uses: dict[str, _NonceUse] = {}
        self._floor = -math.inf  # nonces issued at or before this answer STALE
        self._next_sweep = -math.inf

    @property
    def tracked_nonces(self) -> int:
        """How many nonces have nonce-count state (for metrics)."""
        return len(self._uses)

    def challenges(self, now: float, *, stale: bool = False) -> tuple[Challenge, ...]:
        """One challenge per algorithm, most preferred first (RFC 8760 §2.3), sharing a fresh
        nonce. Send each as its own WWW-Authenticate / Proxy-Authenticate header field."""
        if not math.isfinite(now):
            raise AuthError(f"now must be finite, got {now}")
        self._serial += 1
        payload = _NONCE_PAYLOAD.pack(now, self._serial)
        nonce = base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")
        return tuple(
            Challenge(self.realm, nonce, algorithm=a, qop=self.qop, stale=stale)
            for a in self.algorithms
        )

    def verify(
        self,
        credentials: Credentials,
        *,
        method: str,
        body: bytes = b"",
        now: float,
        lookup: CredentialLookup,
        uri: str | None = None,
    ) -> VerifyResult:
        """Check `credentials` sent with a request (RFC 7616 §3.4, RFC 3261 §22.4).

        `method` and `body` are the request's; pass the Request-URI as `uri` to require the
        digest-uri to equal it exactly. Response and HMAC comparisons are constant-time. The
        nonce-count is recorded only once the digest is right and the nonce is fresh. A user
        `lookup` does not find costs the same digest computation as a wrong password before
        UNKNOWN_USER comes back, so that response timing does not reveal who exists.
        """
        if not math.isfinite(now):
            raise AuthError(f"now must be finite, got {now}")
        if credentials.realm != self.realm:
            return VerifyResult.WRONG_REALM
        issued_at = self._issued_at(credentials.nonce)
        if issued_at is None or issued_at > now:
            return VerifyResult.BAD_NONCE
        algo: _Algorithm | None = _ALGORITHMS.get(credentials.algorithm.lower())
        if algo is None or algo.name not in self.algorithms:
            return VerifyResult.BAD_ALGORITHM
        if credentials.qop is None or credentials.qop.lower() not in self.qop:
            return VerifyResult.BAD_QOP
        cnonce, nc = credentials.cnonce, credentials.nc
        if cnonce is None or nc is None or nc < 1 or credentials.userhash:
            return VerifyResult.MALFORMED
        if uri is not None and credentials.uri != uri:
            return VerifyResult.BAD_URI
        secret = lookup(credentials.username, self.realm, algo.base)
        if secret is None:  # the same work as a wrong password: no timing tells them apart
            ha1 = self._dummy_ha1[algo.base]
        elif isinstance(secret, HA1):
            ha1 = secret.digest.lower()
        else:
            ha1 = algo.hash(f"{credentials.username}:{self.realm}:{secret.value}")
        expected = _digest(
            algo,
            ha1,
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            qop=credentials.qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        matches = hmac.compare_digest(expected.encode(), credentials.response.lower().encode())
        if secret is None:
            return VerifyResult.UNKNOWN_USER
        if not matches:
            return VerifyResult.BAD_RESPONSE
        return self._record(credentials.nonce, issued_at, nc, now)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload + self.realm.encode(), hashlib.sha256).digest()

    def _issued_at(self, nonce: str) -> float | None:
        """When this server issued `nonce`, or None if it did not."""
        if not _NONCE_SHAPE.fullmatch(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce)
        payload, mac = raw[: _NONCE_PAYLOAD.size], raw[_NONCE_PAYLOAD.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        issued_at: float = _NONCE_PAYLOAD.unpack(payload)[0]
        return issued_at

    def _record(self, nonce: str, issued_at: float, nc: int, now: float) -> VerifyResult:
        """Freshness, then replay: accept each nc once per nonce."""
        if now - issued_at > self.nonce_lifetime:
            return VerifyResult.STALE
        use = self._uses.get(nonce)
        if use is None:
            self._evict(now)
            if issued_at <= self._floor:
                return VerifyResult.STALE
            use = self._uses[nonce] = _NonceUse(issued_at)
        return VerifyResult.OK if use.accept(nc) else VerifyResult.REPLAYED

    def _evict(self, now: float) -> None:
        """Drop expired nonces every lifetime or when full; if still full, raise the floor
        past the oldest quarter of the tracked nonces (they become stale: clients answer a
        fresh challenge). A quarter at a time keeps the cost amortised: a server at its
        limit under steady load must not rebuild the table for every new nonce."""
        if len(self._uses) < self.max_nonces and now < self._next_sweep:
            return
        self._next_sweep = now + self.nonce_lifetime
        live_since = now - self.nonce_lifetime
        self._uses = {n: u for n, u in self._uses.items() if u.issued_at >= live_since}
        if len(self._uses) >= self.max_nonces:
            issued = sorted(u.issued_at for u in self._uses.values())
            self._floor = max(self._floor, issued[len(issued) // 4])
            self._uses = {n: u for n, u in self._uses.items() if u.issued_at > self._floor}
