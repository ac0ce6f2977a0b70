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
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


class AuthError(ValueError):
    """Base class of every error raised by this module."""


class AuthSyntaxError(AuthError):
    """A value breaks the auth-param grammar or misses a required Digest parameter."""


class UnsupportedSchemeError(AuthError):
    """The value is well formed but its scheme is not Digest.

    A UAS answers such a request with 401 and a Digest challenge (RFC 4475 §3.3.7); the parsed
    generic form is kept in `value` and the scheme in `scheme`.
    """

    def __init__(self, value: AuthValue) -> None:
        super().__init__(f"unsupported authentication scheme {value.scheme!r}")
        self.value = value

    @property
    def scheme(self) -> str:
        return self.value.scheme


class UnsupportedChallengeError(AuthError):
    """A Digest challenge asks for an algorithm or qop this module cannot compute."""


# --- Grammar (RFC 7235 §2.1, RFC 7230 §3.2.6, RFC 3261 §25.1) -------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # tchar; SIP's token is a subset
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_FOLD = re.compile(r"[ \t]*\r?\n[ \t]+")  # LWS with a line fold is one SP (RFC 3261 §7.3.1)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # cannot appear in a quoted-string
_NC = re.compile(r"[0-9a-f]{8}")  # nc-value = 8LHEX


@dataclass(frozen=True, slots=True)
class AuthValue:
    """Any scheme's challenge or credentials in generic form (RFC 7235 §2.1).

    Either `token68` (e.g. Basic) or `params` (ordered name/value pairs, names as received,
    values unquoted) is set.
    """

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    def __post_init__(self) -> None:
        _check_token("scheme", self.scheme)
        if self.token68 is not None and (self.params or not _TOKEN68.fullmatch(self.token68)):
            raise AuthSyntaxError(f"bad token68 {self.token68!r}")
        _check_params(self.params, frozenset())

    def param(self, name: str) -> str | None:
        """The value of parameter `name` (case-insensitive), or None."""
        return next((v for n, v in self.params if n.lower() == name.lower()), None)

    @classmethod
    def parse(cls, value: str) -> AuthValue:
        """Parse `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`; raise AuthSyntaxError."""
        scheme, token68, params = _split_value(value)
        return cls(scheme, params, token68)

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        return _render(self.scheme, [(n, _token_or_quoted(v)) for n, v in self.params])


def _split_value(value: str) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """(scheme, token68, params) of `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`."""
    text = _FOLD.sub(" ", value).strip(" \t") if "\n" in value else value.strip(" \t")
    scheme = _TOKEN.match(text)
    if scheme is None:
        raise AuthSyntaxError(f"missing authentication scheme in {value!r}")
    rest = text[scheme.end() :]
    if not rest:
        return scheme.group(), None, ()
    if rest[0] not in " \t":
        raise AuthSyntaxError(f"expected whitespace after the scheme in {value!r}")
    rest = rest.lstrip(" \t")
    if _TOKEN68.fullmatch(rest):
        return scheme.group(), rest, ()
    return scheme.group(), None, _parse_params(rest)


# One auth-param with the separators around it: empty list elements are tolerated
# (RFC 7230 §7); groups: name, quoted value (without quotes), token value.
_AUTH_PARAM = re.compile(
    r"[ \t]*(?:,[ \t]*)*"
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*"
    # quoted-string, "unrolled" (Friedl) so the engine does not alternate per character
    r'(?:"([^"\\\x00-\x08\x0a-\x1f\x7f]*(?:\\[^\x00-\x08\x0a-\x1f\x7f][^"\\\x00-\x08\x0a-\x1f\x7f]*)*)"'
    r"|([!#$%&'*+\-.^_`|~0-9A-Za-z]+))"
    r"[ \t]*(?:,[ \t]*)*"
)


def _parse_params(text: str) -> tuple[tuple[str, str], ...]:
    """`#auth-param`, tolerating empty list elements (RFC 7230 §7). One regex match a param."""
    params: list[tuple[str, str]] = []
    pos = 0
    end = len(text)
    while pos < end:
        m = _AUTH_PARAM.match(text, pos)
        if m is None:
            raise AuthSyntaxError(f'expected name=token or name="text" at {text[pos:]!r}')
        name, quoted, token = m.groups()
        if quoted is not None:
            value = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            value = token
        # a value is followed by a comma or the end (the regex ate the commas)
        after = m.end()
        value_end = m.end(2) + 1 if quoted is not None else m.end(3)
        if after < end and "," not in text[value_end:after]:
            raise AuthSyntaxError(f"expected ',' at {text[value_end:]!r}")
        params.append((name, value))
        pos = after
    return tuple(params)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token_or_quoted(value: str) -> str:
    return value if _TOKEN.fullmatch(value) else _quote(value)


def _render(scheme: str, pairs: Sequence[tuple[str, str]]) -> str:
    """`scheme name=value, ...` with values already rendered."""
    return (f"{scheme} " + ", ".join(f"{n}={v}" for n, v in pairs)) if pairs else scheme


def _check_token(what: str, value: str) -> None:
    if not _TOKEN.fullmatch(value):
        raise AuthSyntaxError(f"{what} must be a token, got {value!r}")


def _check_text(what: str, value: str | None) -> None:
    if value is not None and _CONTROL.search(value):
        raise AuthSyntaxError(f"{what} contains a control character: {value!r}")


def _check_params(params: tuple[tuple[str, str], ...], known: frozenset[str]) -> None:
    """Names are tokens, unique (RFC 7235 §2.1) and not one of the `known` Digest names."""
    seen: set[str] = set()
    for name, value in params:
        _check_token("parameter name", name)
        _check_text(name, value)
        if name.lower() in seen or name.lower() in known:
            raise AuthSyntaxError(f"duplicate or reserved parameter {name!r}")
        seen.add(name.lower())


# --- Algorithms (RFC 7616 §3.2, §6.1; RFC 8760 §2.2) --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Algorithm:
    name: str  # canonical spelling, as in the IANA registry
    hash_name: str  # hashlib name
    session: bool  # -sess: A1 includes nonce and cnonce (RFC 7616 §3.4.2)
    strength: int  # choose_challenge prefers higher

    @property
    def base(self) -> str:
        return self.name.removesuffix("-sess")

    def hash(self, data: str | bytes) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return hashlib.new(self.hash_name, raw).hexdigest()


_ALGORITHMS = {
    a.name.lower(): a
    for a in (
        _Algorithm("SHA-256", "sha256", False, 2),
        _Algorithm("SHA-256-sess", "sha256", True, 2),
        _Algorithm("MD5", "md5", False, 1),
        _Algorithm("MD5-sess", "md5", True, 1),
    )
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(a.name for a in _ALGORITHMS.values())


def _canonical(algorithm: str) -> str:
    known = _ALGORITHMS.get(algorithm.lower())
    return known.name if known else algorithm


def _digest(
    algo: _Algorithm,
    ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: int,
    cnonce: str,
    body: bytes,
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (qop set) or RFC 2617 §3.2.2.1 (no qop).

    `ha1` is H(username ":" realm ":" password); the -sess step of §3.4.2 is applied here.
    """
    if algo.session:
        ha1 = algo.hash(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop is not None and qop.lower() == "auth-int":
        a2 += ":" + algo.hash(body)  # RFC 7616 §3.4.3
    if qop is None:
        return algo.hash(f"{ha1}:{nonce}:{algo.hash(a2)}")
    return algo.hash(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{algo.hash(a2)}")


# --- Challenge and Credentials (RFC 7616 §3.3, §3.4; RFC 3261 §25.1) ----------------------------

_CHALLENGE_NAMES = frozenset(
    {"realm", "nonce", "opaque", "algorithm", "qop", "stale", "domain", "userhash"}
)
_CREDENTIAL_NAMES = frozenset(
    {"username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop"}
    | {"nc", "userhash"}
)


def _digest_params(
    value: str, known: frozenset[str]
) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """Split a Digest value into known parameters (lower-cased names) and the others."""
    scheme, token68, params = _split_value(value)
    if scheme.lower() != "digest":
        raise UnsupportedSchemeError(AuthValue(scheme, params, token68))
    if token68 is not None:
        raise AuthSyntaxError("Digest takes auth-params, not a token68")
    digest: dict[str, str] = {}
    others: list[tuple[str, str]] = []
    for name, param_value in params:
        lname = name.lower()
        if lname in digest:
            raise AuthSyntaxError(f"duplicate parameter {name!r}")
        if lname in known:
            digest[lname] = param_value
        else:
            others.append((name, param_value))
    return digest, tuple(others)


def _require(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise AuthSyntaxError(f"Digest value lacks the {name!r} parameter")
    return params[name]


def _flag(value: str | None) -> bool:
    """`stale` and `userhash` are "true" / "false", case-insensitive; anything else is false."""
    return value is not None and value.lower() == "true"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A Digest challenge: a WWW-Authenticate or Proxy-Authenticate value (RFC 7616 §3.3).

    `qop` holds the offered qop-options (empty: RFC 2069 server); `algorithm` defaults to MD5
    when absent and known names are spelled canonically by `parse`; `params` keeps any other
    auth-params in order.
    """

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for what, text in (("realm", self.realm), ("nonce", self.nonce), ("opaque", self.opaque)):
            _check_text(what, text)
        _check_token("algorithm", self.algorithm)
        for option in self.qop:
            _check_token("qop option", option)
        for uri in self.domain:
            if not uri or " " in uri or "\t" in uri:
                raise AuthSyntaxError(f"bad domain URI {uri!r}")
            _check_text("domain", uri)
        _check_params(self.params, _CHALLENGE_NAMES)

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a challenge; raise UnsupportedSchemeError (not Digest) or AuthSyntaxError."""
        p, others = _digest_params(value, _CHALLENGE_NAMES)
        return cls(
            realm=_require(p, "realm"),
            nonce=_require(p, "nonce"),
            opaque=p.get("opaque"),
            algorithm=_canonical(p.get("algorithm", "MD5")),
            qop=tuple(q for q in (s.strip(" \t") for s in p.get("qop", "").split(",")) if q),
            stale=_flag(p.get("stale")),
            domain=tuple(u for u in re.split(r"[ \t]+", p.get("domain", "")) if u),
            userhash=_flag(p.get("userhash")),
            params=others,
        )

    def __str__(self) -> str:
        pairs = [("realm", _quote(self.realm))]
        if self.domain:
            pairs.append(("domain", _quote(" ".join(self.domain))))
        pairs.append(("nonce", _quote(self.nonce)))
        if self.opaque is not None:
            pairs.append(("opaque", _quote(self.opaque)))
        if self.stale:
            pairs.append(("stale", "true"))
        pairs.append(("algorithm", self.algorithm))
        if self.qop:
            pairs.append(("qop", _quote(",".join(self.qop))))
        if self.userhash:
            pairs.append(("userhash", "true"))
        pairs += [(n, _token_or_quoted(v)) for n, v in self.params]
        return _render("Digest", pairs)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials: an Authorization or Proxy-Authorization value (RFC 7616 §3.4).

    `nc` is the nonce-count as an integer (sent as 8 lowercase hex digits); `cnonce`, `qop`
    and `nc` are None on the RFC 2069 path. With `userhash`, `username` is
    H(username ":" realm) (RFC 7616 §3.4.4).
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None
    userhash: bool = False
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for what in ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque"):
            _check_text(what, getattr(self, what))
        _check_token("algorithm", self.algorithm)
        if self.qop is not None:
            _check_token("qop", self.qop)
        if self.nc is not None and not 0 <= self.nc <= 0xFFFFFFFF:
            raise AuthSyntaxError(f"nc out of range: {self.nc}")
        _check_params(self.params, _CREDENTIAL_NAMES)

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """Parse credentials; raise UnsupportedSchemeError (not Digest) or AuthSyntaxError."""
        p, others = _digest_params(value, _CREDENTIAL_NAMES)
        nc = p.get("nc")
        if nc is not None and not _NC.fullmatch(nc):
            raise AuthSyntaxError(f"nc must be 8 lowercase hex digits, got {nc!r}")
        return cls(
            username=_require(p, "username"),
            realm=_require(p, "realm"),
            nonce=_require(p, "nonce"),
            uri=_require(p, "uri"),
            response=_require(p, "response"),
            algorithm=_canonical(p.get("algorithm", "MD5")),
            cnonce=p.get("cnonce"),
            opaque=p.get("opaque"),
            qop=p.get("qop"),
            nc=None if nc is None else int(nc, 16),
            userhash=_flag(p.get("userhash")),
            params=others,
        )

    def __str__(self) -> str:
        """Quoting follows RFC 7616 §3.4: quoted username/realm/nonce/uri/response/cnonce/opaque,
        bare algorithm/qop/nc."""
        pairs = [(n, _quote(getattr(self, n))) for n in ("username", "realm", "nonce", "uri")]
        pairs += [("response", _quote(self.response)), ("algorithm", self.algorithm)]
        if self.cnonce is not None:
            pairs.append(("cnonce", _quote(self.cnonce)))
        if self.opaque is not None:
            pairs.append(("opaque", _quote(self.opaque)))
        if self.qop is not None:
            pairs.append(("qop", self.qop))
        if self.nc is not None:
            pairs.append(("nc", f"{self.nc:08x}"))
        if self.userhash:
            pairs.append(("userhash", "true"))
        pairs += [(n, _token_or_quoted(v)) for n, v in self.params]
        return _render("Digest", pairs)


# --- Client side (RFC 7616 §3.4, RFC 3261 §22.2-§22.3, RFC 8760 §2.4) ---------------------------


def _choose_qop(offered: tuple[str, ...]) -> str | None:
    """auth when offered, else auth-int, else None for an RFC 2069 challenge."""
    if not offered:
        return None
    lowered = {q.lower() for q in offered}
    for qop in ("auth", "auth-int"):
        if qop in lowered:
            return qop
    raise UnsupportedChallengeError(f"no supported qop among {offered}")


def _usable(challenge: Challenge) -> _Algorithm | None:
    algo = _ALGORITHMS.get(challenge.algorithm.lower())
    if algo is None or (algo.session and not challenge.qop):
        return None
    lowered = {q.lower() for q in challenge.qop}
    return algo if not challenge.qop or lowered & {"auth", "auth-int"} else None


def choose_challenge(challenges: Sequence[Challenge]) -> Challenge:
    """The strongest challenge this module can answer: SHA-256 before MD5.

    RFC 8760 §2.4 (after RFC 7616 §3.7) lets local policy override the server's order; ours
    ranks by hash strength and keeps the server's order among equals. For several realms
    (proxy and UAS, RFC 3261 §22.3) call this once per realm. Raise UnsupportedChallengeError
    when none is usable.
    """
    usable = [(algo.strength, c) for c in challenges if (algo := _usable(c)) is not None]
    if not usable:
        raise UnsupportedChallengeError("no challenge with a supported algorithm and qop")
    return max(usable, key=lambda pair: pair[0])[1]


def authorize(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str,
    nc: int = 1,
) -> Credentials:
    """Answer `challenge` for a request (RFC 7616 §3.4; RFC 3261 §22.2, §22.4).

    `uri` is the Request-URI, `body` the message body (used by qop=auth-int, chosen only when
    it is the sole option), `cnonce` a fresh random string and `nc` the count of requests sent
    with this nonce, from 1. Without qop the RFC 2069 digest is computed and cnonce/nc are not
    sent. Raise UnsupportedChallengeError for an unknown algorithm or qop.
    """
    algo = _ALGORITHMS.get(challenge.algorithm.lower())
    if algo is None:
        raise UnsupportedChallengeError(f"unsupported algorithm {challenge.algorithm!r}")
    qop = _choose_qop(challenge.qop)
    if qop is None and algo.session:
        raise UnsupportedChallengeError(f"{algo.name} needs qop (RFC 7616 §3.4.2)")
    if not 1 <= nc <= 0xFFFFFFFF:
        raise AuthError(f"nc out of range: {nc}")
    response = _digest(
        algo,
        algo.hash(f"{username}:{challenge.realm}:{password}"),
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    return Credentials(
        username=algo.hash(f"{username}:{challenge.realm}") if challenge.userhash else username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=None if qop is None else cnonce,
        opaque=challenge.opaque,
        qop=qop,
        nc=None if qop is None else nc,
        userhash=challenge.userhash,
    )


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


#: the HA1 verify checks against for a user it cannot find: a random-looking value no
#: password hashes to in practice, of the stored HA1s' length, so the work is the same
_DUMMY_HA1 = {
    name: hashlib.new(name.replace("-", "").lower(), b"hybridvoice:no such user").hexdigest()
    for name in ("MD5", "SHA-256")
}
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
        algo = _ALGORITHMS.get(credentials.algorithm.lower())
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
            ha1 = _DUMMY_HA1[algo.base]
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
