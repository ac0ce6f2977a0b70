"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and any other absolute URI.

``parse_uri`` gives a ``SipUri`` for ``sip:``/``sips:``, a ``TelUri`` for ``tel:`` and an
``AbsoluteUri`` (kept verbatim) for every other scheme, so that messages with unknown
schemes still parse (RFC 4475 §3.3.2-3.3.4) and the application decides (416).

Escapes are kept as written: ``str(parse_uri(s)) == s`` for every valid ``s``. The
``user_unescaped`` view and ``uri_equal`` (§19.1.4) resolve them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import unquote as _pct_unquote

from ._abnf import (
    ALPHA_SCHEME,
    Params,
    check_ipv6_reference,
    format_params,
    param_get,
    param_set,
    param_without,
    parse_number,
    parse_port,
)
from .errors import ParseError

if TYPE_CHECKING:
    from .value_cache import ValueCache

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "parse_uri", "uri_equal"]

_ESC: Final = r"%[0-9A-Fa-f]{2}"
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER: Final = rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|{_ESC})+"
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD: Final = rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|{_ESC})*"
# hostname / IPv4address / IPv6reference; hostnames are checked loosely ("_" is common)
_HOST: Final = r"[A-Za-z0-9\-_.]+|\[[0-9A-Fa-f:.]+\]"
# paramchar = param-unreserved / unreserved / escaped
_PCHAR: Final = rf"(?:[\[\]/:&+$A-Za-z0-9\-_.!~*'()]|{_ESC})+"
# hname / hvalue = *( hnv-unreserved / unreserved / escaped )
_HCHAR: Final = rf"(?:[\[\]/?:+$A-Za-z0-9\-_.!~*'()]|{_ESC})"
#: SIP-URI / SIPS-URI without parameters and headers (as in an addr-spec); groups:
#: scheme, user, password, host, port.
SIP_URI_BASE: Final = rf"(sips?):(?:({_USER})(?::({_PASSWORD}))?@)?({_HOST})(?::([0-9]+))?"
#: The whole SIP-URI / SIPS-URI grammar (§25.1) in one pass; groups: scheme, user,
#: password, host, port, params (with leading ";"), headers (without "?").
SIP_URI_FULL: Final = (
    SIP_URI_BASE + rf"((?:;{_PCHAR}(?:={_PCHAR})?)*)"
    rf"(?:\?({_HCHAR}+={_HCHAR}*(?:&{_HCHAR}+={_HCHAR}*)*))?"
)
_SIP_URI: Final = re.compile(SIP_URI_FULL, re.IGNORECASE)
_TEL: Final = re.compile(rf"(?:[0-9A-Fa-f*#+\-.()pPwW]|{_ESC})+")
_TEL_PARAMS: Final = re.compile(rf"(?:;{_PCHAR}(?:={_PCHAR})?)*")


class SipUri(NamedTuple):
    """``sip:user:password@host:port;params?headers`` (RFC 3261 §19.1.1).

    An immutable value (a named tuple: cheap to build on the hot path, hashable).
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else _pct_unquote(self.user, errors="surrogateescape")

    @property
    def transport(self) -> str | None:
        value = param_get(self.params, "transport")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        return param_get(self.params, "maddr")

    @property
    def lr(self) -> bool:
        return any(n.lower() == "lr" for n, _ in self.params)

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets, for socket calls."""
        h = self.host
        return h[1:-1] if h.startswith("[") else h

    def param(self, name: str) -> str | None:
        return param_get(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return self._replace(params=param_set(self.params, name, value))

    def without_param(self, name: str) -> SipUri:
        return self._replace(params=param_without(self.params, name))

    def replace(self, **changes: Any) -> SipUri:
        return self._replace(**changes)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts += ["?", "&".join(f"{n}={v}" for n, v in self.headers)]
        return "".join(parts)


class TelUri(NamedTuple):
    """``tel:+1-201-555-0123;phone-context=...`` (RFC 3966)."""

    number: str
    params: Params = ()

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return "".join(c for c in self.number if c not in "-.()")

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


class AbsoluteUri(NamedTuple):
    """Any other absolute URI, kept verbatim (``scheme:rest``)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _split_params(text: str) -> Params:
    """Split already-validated ``;name[=value]`` parameters."""
    out: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        out.append((name, value if eq else None))
    return tuple(out)


def parse_uri(text: str, cache: ValueCache | None = None) -> Uri:
    """Parse an absolute URI; raise ``ParseError`` (400) when it is malformed. With a
    ``cache`` (:mod:`.value_cache`) a text parsed before is not parsed again."""
    if cache is None:
        return _parse_uri_text(text)
    memo = cache.uri
    uri = memo.get(text)
    if uri is not None:
        return uri
    uri = _parse_uri_text(text)
    if len(memo) >= cache.max_entries:
        memo.clear()
    memo[text] = uri
    return uri


def _parse_uri_text(text: str) -> Uri:
    m = _SIP_URI.fullmatch(text)
    if m is not None:
        return sip_uri_from_groups(*m.groups())
    scheme, colon, rest = text.partition(":")
    if not colon or not ALPHA_SCHEME.fullmatch(scheme):
        raise ParseError(f"not an absolute URI: {text!r}")
    lscheme = scheme.lower()
    if lscheme in ("sip", "sips"):
        raise ParseError(f"malformed {lscheme} URI {text!r}")
    if lscheme == "tel":
        number, semi, params_text = rest.partition(";")
        if not _TEL.fullmatch(number) or not _TEL_PARAMS.fullmatch(semi + params_text):
            raise ParseError(f"malformed tel URI {text!r}")
        return TelUri(number, _split_params(semi + params_text) if semi else ())
    if not rest or any(c in rest for c in ' \t\r\n<>"'):
        raise ParseError(f"malformed URI {text!r}")
    return AbsoluteUri(scheme, rest)


def sip_uri_from_groups(  # noqa: PLR0917 - the regex groups, in order
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: str | None,
    params: str | None = None,
    headers: str | None = None,
) -> SipUri:
    """Build a ``SipUri`` from the groups of ``SIP_URI_FULL`` (or ``SIP_URI_BASE``)."""
    if host[0] == "[":
        check_ipv6_reference(host)
    split = _split_params(params) if params else ()
    if split:
        check_uri_params(split)
    return SipUri(
        host,
        user,
        password,
        None if port is None else int(port) if len(port) < 5 else parse_port(port, "URI port"),
        split,
        tuple(_split_header(h) for h in headers.split("&")) if headers else (),
        "sip" if scheme in ("sip", "SIP") else scheme.lower(),
    )


def check_uri_params(params: Params) -> None:
    """The uri-parameters with a grammar of their own (§19.1.1, §25.1): ``ttl`` is 0-255
    and ``maddr`` in brackets a real IPv6 address. Raises ``ParseError``."""
    for name, value in params:
        if value is None or len(name) not in (3, 5):  # neither "ttl" nor "maddr"
            continue
        lname = name.lower()
        if lname == "ttl":
            parse_number(value, "ttl URI parameter", 255)
        elif lname == "maddr" and value[:1] == "[":
            check_ipv6_reference(value)


def _split_header(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return name, value


# §19.1.4: these parameters must match when present in either URI.
_MUST_MATCH: Final = ("user", "ttl", "method", "maddr", "transport")


def uri_equal(a: Uri, b: Uri) -> bool:
    """URI equivalence per RFC 3261 §19.1.4 (sip/sips) and RFC 3966 §4 (tel)."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        if a.scheme != b.scheme or a.user_unescaped != b.user_unescaped:
            return False
        if a.password != b.password or a.port != b.port:
            return False
        if _pct_unquote(a.host).lower() != _pct_unquote(b.host).lower():
            return False
        pa = {n.lower(): v for n, v in a.params}
        pb = {n.lower(): v for n, v in b.params}
        for name in set(pa) | set(pb):
            in_both = name in pa and name in pb
            if name in _MUST_MATCH or in_both:
                va, vb = pa.get(name, "\0"), pb.get(name, "\0")
                if (va or "").lower() != (vb or "").lower():
                    return False
        ha = {n.lower(): _pct_unquote(v) for n, v in a.headers}
        hb = {n.lower(): _pct_unquote(v) for n, v in b.headers}
        return ha == hb
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        pa = {n.lower(): (v or "").lower() for n, v in a.params}
        pb = {n.lower(): (v or "").lower() for n, v in b.params}
        return a.digits.lower() == b.digits.lower() and pa == pb
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme.lower() == b.scheme.lower() and a.rest == b.rest
    return False
