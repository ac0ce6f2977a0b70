"""MRAS credentials: the TURN REST scheme (username ``expiry:user``, password
``base64(HMAC-SHA1(secret, username))``), as coturn's ``use-auth-secret`` checks them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from hybridvoice.media.mras import (
    CredentialsRejectedError,
    MrasIssuer,
    MrasVerifier,
    rest_password,
)
from hybridvoice.media.stun import long_term_key


def test_password_is_base64_hmac_sha1_of_the_username() -> None:
    expected = base64.b64encode(hmac.new(b"s", b"1700000000:alice", hashlib.sha1).digest())
    assert rest_password(b"s", "1700000000:alice") == expected.decode()


def test_issue_and_verify() -> None:
    creds = MrasIssuer(b"secret", ttl=3600).issue("alice", 1_700_000_000.5)
    assert creds.username == "1700003600:alice" and creds.expires == 1_700_003_600
    verifier = MrasVerifier(b"secret", wall=lambda: 1_700_003_600.0)
    assert verifier.password(creds.username) == creds.password
    assert verifier.key(creds.username, "r") == long_term_key(creds.username, "r", creds.password)
    assert verifier.user_of(creds.username) == "alice"
    assert verifier.user_of("1:a:b") == "a:b"


def test_expired_and_malformed_are_refused() -> None:
    verifier = MrasVerifier(b"secret", wall=lambda: 1_700_000_001.0)
    with pytest.raises(CredentialsRejectedError) as info:
        verifier.password("1700000000:alice")
    assert info.value.reason == "expired"
    for bad in ("alice", ":alice", "17x:alice", "1700000000:", "9" * 20 + ":a", "\u00b2:a"):
        with pytest.raises(CredentialsRejectedError) as info:
            verifier.password(bad)
        assert info.value.reason == "malformed"


def test_another_secret_gives_another_password() -> None:
    creds = MrasIssuer(b"secret").issue("alice", 0)
    assert MrasVerifier(b"other", wall=lambda: 0).password(creds.username) != creds.password


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        MrasIssuer(b"")
    with pytest.raises(ValueError):
        MrasIssuer(b"s", ttl=0)
    with pytest.raises(ValueError):
        MrasVerifier(b"", wall=lambda: 0)
    with pytest.raises(ValueError):
        MrasIssuer(b"s").issue("", 0)
