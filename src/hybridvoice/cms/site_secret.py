"""The site's join secret and the encryption of the site CA's material in the store (sans-IO).

A site on etcd has one join secret, shown once when the site is made (``hybridvoice appliance
join --new-site``) and given to every appliance that joins (``--token``). The token is
``<site>:<secret>`` (32 random bytes, base64url). The key that encrypts the CA's material is
derived from the secret with scrypt (RFC 7914; ``cryptography``'s ``Scrypt``, n = 2^15, r = 8,
p = 1, a random salt kept in the store); the material is sealed with AES-256-GCM (NIST SP
800-38D), a fresh 96-bit nonce per record and the record's name as associated data, so a
ciphertext cannot be moved to another record. The store holds the salt, the parameters, a
sealed check value and ciphertexts: never the secret, the key or a plaintext.

A wrong token fails the check value's authentication: :class:`WrongTokenError`, before
anything is written.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["JoinTokenError", "SiteKey", "WrongTokenError", "new_join_token", "parse_join_token"]

_CHECK: Final = b"hybridvoice site join check v1"
_N: Final = 2**15
_R: Final = 8
_P: Final = 1


class JoinTokenError(ValueError):
    """The token is not ``<site>:<secret>`` as ``appliance join --new-site`` printed it."""


class WrongTokenError(ValueError):
    """The token is not the site's (or a record was tampered with): nothing was written."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise WrongTokenError(f"{what}: not base64 text")
    try:
        return _strict(text)
    except (binascii.Error, ValueError) as exc:
        raise WrongTokenError(f"{what}: not base64 ({exc})") from None


def _strict(text: str) -> bytes:
    """base64url without padding; any other character is an error (not skipped)."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def new_join_token(site: str) -> str:
    """A fresh join token for ``site``."""
    return f"{site}:{_b64(secrets.token_bytes(32))}"


def parse_join_token(token: str) -> tuple[str, bytes]:
    """(site, secret); :class:`JoinTokenError` naming what is wrong."""
    site, colon, text = token.strip().rpartition(":")
    if not colon or not site:
        raise JoinTokenError("--token: expected <site>:<secret>, as `hybridvoice appliance join "
                             "--new-site` printed it")  # fmt: skip
    try:
        secret = _strict(text)
    except (binascii.Error, ValueError):
        raise JoinTokenError(f"--token: the secret after '{site}:' is not base64url") from None
    if len(secret) != 32:
        raise JoinTokenError(f"--token: the secret is {len(secret)} bytes, 32 expected")
    return site, secret


class SiteKey:
    """The key derived from a site's join secret: seals and opens the CA's records."""

    __slots__ = ("_aead", "salt")

    def __init__(self, secret: bytes, salt: bytes) -> None:
        self.salt = salt
        key = Scrypt(salt=salt, length=32, n=_N, r=_R, p=_P).derive(secret)
        self._aead = AESGCM(key)

    @classmethod
    def new(cls, secret: bytes) -> SiteKey:
        return cls(secret, os.urandom(16))

    @classmethod
    def from_join_record(cls, secret: bytes, record: Mapping[str, Any]) -> SiteKey:
        """The key for ``record`` (the store's ``ca/join``); :class:`WrongTokenError` when
        ``secret`` is not the site's."""
        if record.get("kdf") != "scrypt" or (record.get("n"), record.get("r"),
                                              record.get("p")) != (_N, _R, _P):  # fmt: skip
            raise WrongTokenError(f"ca/join: unknown key derivation {record.get('kdf')!r}")
        key = cls(secret, _unb64(record.get("salt"), "ca/join salt"))
        if key.open("join", record.get("check")) != _CHECK:
            raise WrongTokenError("ca/join: the check value does not match")
        return key

    def join_record(self) -> dict[str, Any]:
        """What the store keeps to check a token and derive the key again."""
        return {"kdf": "scrypt", "n": _N, "r": _R, "p": _P, "salt": _b64(self.salt),
                "check": self.seal("join", _CHECK)}  # fmt: skip

    def seal(self, name: str, plaintext: bytes) -> str:
        nonce = os.urandom(12)
        return _b64(nonce + self._aead.encrypt(nonce, plaintext, name.encode()))

    def open(self, name: str, sealed: object) -> bytes:
        """The plaintext of record ``name``; :class:`WrongTokenError` when the key is not the
        one that sealed it or the record was changed."""
        data = _unb64(sealed, f"ca/{name}")
        try:
            return self._aead.decrypt(data[:12], data[12:], name.encode())
        except (InvalidTag, ValueError):
            raise WrongTokenError(
                f"ca/{name}: cannot decrypt: the token is not this site's join secret"
            ) from None
