"""SIP Digest values and the client side of Digest, sans-IO (``auth`` re-exports it).

Implements the auth-param grammar of RFC 7235 §2.1 and RFC 3261 §25.1 (tokens, quoted-strings
with backslash escapes, LWS and line folding per RFC 3261 §7.3.1); Digest challenges and
credentials of RFC 7616 §3.3-§3.4 as SIP uses them (RFC 3261 §22.4, RFC 8760): MD5, SHA-256
and their -sess variants, qop=auth and auth-int, userhash (RFC 7616 §3.4.4), the RFC 2069 path
(RFC 2617 §3.2.2.1); the algorithm table (RFC 7616 §3.2, RFC 8760 §2.2), the request-digest
(RFC 7616 §3.4.1) and the client's choice and answer (RFC 7616 §3.7, RFC 8760 §2.4).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthError",
    "AuthSyntaxError",
    "AuthValue",
    "Challenge",
    "Credentials",
    "UnsupportedChallengeError",
    "UnsupportedSchemeError",
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


_ALGORITHMS: Final[Mapping[str, _Algorithm]] = MappingProxyType(
    {
        a.name.lower(): a
        for a in (
            _Algorithm("SHA-256", "sha256", False, 2),
            _Algorithm("SHA-256-sess", "sha256", True, 2),
            _Algorithm("MD5", "md5", False, 1),
            _Algorithm("MD5-sess", "md5", True, 1),
        )
    }
)
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
