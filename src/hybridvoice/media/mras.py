"""MRAS: time-limited TURN credentials from a secret shared by the site.

The Media Relay Authentication Service hands clients long-term credentials (RFC 8489 §9.2)
that the relay can check without asking anyone: the scheme of the TURN REST API draft
(draft-uberti-behave-turn-rest-00 §2.2), which coturn implements as ``use-auth-secret``:

- username ``"<expiry>:<user>"``, ``expiry`` the Unix time (seconds) after which the
  credentials are refused;
- password ``base64(HMAC-SHA1(secret, username))``.

The issuer is for the online service (it hands credentials to its users' clients); the
verifier is for the relay: it recomputes the password from the username, refuses an expired
or malformed username, and a forged password then fails MESSAGE-INTEGRITY (401 either way,
RFC 8656 §7.2, RFC 8489 §9.2.4). Time is injected: ``wall`` returns the Unix time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .errors import MediaError
from .stun import long_term_key

__all__ = [
    "DEFAULT_TTL",
    "CredentialsRejectedError",
    "MrasCredentials",
    "MrasIssuer",
    "MrasVerifier",
    "rest_password",
]

#: Lifetime of issued credentials: 8 hours, as the original MRAS.
DEFAULT_TTL: Final = 8 * 3600
SEPARATOR: Final = ":"


class CredentialsRejectedError(MediaError):
    """A TURN username the verifier refuses; ``reason`` is ``"expired"`` or ``"malformed"``."""

    def __init__(self, reason: str, username: str) -> None:
        super().__init__(f"{reason} credentials: {username!r}")
        self.reason = reason
        self.username = username


def rest_password(secret: bytes, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``."""
    mac = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


@dataclass(frozen=True, slots=True)
class MrasCredentials:
    """What a client receives: username, password, and when they stop working."""

    username: str
    password: str
    expires: int
    user: str

    def __post_init__(self) -> None:
        if not self.username or not self.password:
            raise ValueError("empty TURN credentials")


class MrasIssuer:
    """Issues credentials for ``user`` valid ``ttl`` seconds from the Unix time ``now``."""

    __slots__ = ("_secret", "ttl")

    def __init__(self, secret: bytes, ttl: int = DEFAULT_TTL) -> None:
        if not secret:
            raise ValueError("empty MRAS secret")
        if ttl <= 0:
            raise ValueError(f"credential lifetime {ttl} must be positive")
        self._secret = secret
        self.ttl = ttl

    def issue(self, user: str, now: float) -> MrasCredentials:
        if not user:
            raise ValueError("empty user")
        expires = int(now) + self.ttl
        username = f"{expires}{SEPARATOR}{user}"
        return MrasCredentials(username, rest_password(self._secret, username), expires, user)


class MrasVerifier:
    """The relay's side: the long-term key of a username, or :class:`CredentialsRejectedError`."""

    __slots__ = ("_secret", "_wall")

    def __init__(self, secret: bytes, wall: Callable[[], float]) -> None:
        if not secret:
            raise ValueError("empty MRAS secret")
        self._secret = secret
        self._wall = wall

    def password(self, username: str) -> str:
        """The password that goes with ``username`` if it has not expired."""
        stamp, sep, user = username.partition(SEPARATOR)
        if not sep or not user or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
            raise CredentialsRejectedError("malformed", username)
        if int(stamp) < self._wall():
            raise CredentialsRejectedError("expired", username)
        return rest_password(self._secret, username)

    def key(self, username: str, realm: str) -> bytes:
        """The MESSAGE-INTEGRITY key for ``username`` in ``realm`` (RFC 8489 §9.2.2)."""
        return long_term_key(username, realm, self.password(username))

    @staticmethod
    def user_of(username: str) -> str:
        """The user part (for per-user quotas): what follows the expiry."""
        return username.partition(SEPARATOR)[2] or username
