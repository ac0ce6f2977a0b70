"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and any other absolute URI.

``parse_uri`` gives a ``SipUri`` for ``sip:``/``sips:``, a ``TelUri`` for ``tel:`` and an
``AbsoluteUri`` (kept verbatim) for every other scheme, so that messages with unknown
schemes still parse (RFC 4475 §3.3.2-3.3.4) and the application decides (416).

Escapes are kept as written: ``str(parse_uri(s)) == s`` for every valid ``s``. The
``user_unescaped`` view and ``uri_equal`` (§19.1.4) resolve them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import unquote as _pct_unquote

from ._abnf import ALPHA_SCHEME, Params, format_params, param_get, param_set, param_without
from .errors import ParseError

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "parse_uri", "uri_equal"]

# unreserved / escaped / user-unreserved ("&" "=" "+" "$" "," ";" "?" "/")
_USER: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# hostname / IPv4address / IPv6reference. Hostnames are checked loosely ("_" is common in
# the wild); IPv6 references are bracketed hex, colons and dots.
_HOST: Final = re.compile(r"[A-Za-z0-9\-_.]+|\[[0-9A-Fa-f:.]+\]")
# paramchar = param-unreserved / unreserved / escaped
_PARAMCHARS: Final = re.compile(r"(?:[\[\]/:&+$A-Za-z0-9\-_.!~*'()]|%[0-9A-Fa-f]{2})+")
# hname / hvalue = *( hnv-unreserved / unreserved / escaped )
_HCHARS: Final = re.compile(r"(?:[\[\]/?:+$A-Za-z0-9\-_.!~*'()]|%[0-9A-Fa-f]{2})*")
_TEL: Final = re.compile(r"[0-9A-Fa-f*#+\-.()pPwW]+|%[0-9A-Fa-f]{2}")


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user:password@host:port;params?headers`` (RFC 3261 §19.1.1)."""

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
        return replace(self, params=param_set(self.params, name, value))

    def without_param(self, name: str) -> SipUri:
        return replace(self, params=param_without(self.params, name))

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


@dataclass(frozen=True, slots=True)
class TelUri:
    """``tel:+1-201-555-0123;phone-context=...`` (RFC 3966)."""

    number: str
    params: Params = ()

    scheme: str = field(default="tel", init=False)

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return "".join(c for c in self.number if c not in "-.()")

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other absolute URI, kept verbatim (``scheme:rest``)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _split_params(text: str, what: str) -> Params:
    out: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name or not _PARAMCHARS.fullmatch(name):
            raise ParseError(f"malformed {what} parameter {item!r}")
        if eq:
            if not _PARAMCHARS.fullmatch(value):
                raise ParseError(f"malformed {what} parameter {item!r}")
            out.append((name, value))
        else:
            out.append((name, None))
    return tuple(out)


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo, hostpart = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not _USER.fullmatch(user):
            raise ParseError(f"malformed user part in URI {text!r}")
        if colon:
            if not _PASSWORD.fullmatch(pw):
                raise ParseError(f"malformed password in URI {text!r}")
            password = pw
    else:
        hostpart = rest
    hostport, qmark, headers_text = hostpart.partition("?")
    hostport, semi, params_text = hostport.partition(";")
    if hostport.startswith("["):
        close = hostport.find("]")
        host, port_text = hostport[: close + 1], hostport[close + 1 :]
        if close < 0 or (port_text and not port_text.startswith(":")):
            raise ParseError(f"malformed IPv6 reference in URI {text!r}")
        port_text = port_text[1:]
        has_port = close + 1 < len(hostport)
    else:
        host, colon, port_text = hostport.partition(":")
        has_port = bool(colon)
    if not _HOST.fullmatch(host):
        raise ParseError(f"malformed host in URI {text!r}")
    port = None
    if has_port:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            raise ParseError(f"malformed port in URI {text!r}")
        port = int(port_text)
    params = _split_params(params_text, "URI") if semi else ()
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        hs: list[tuple[str, str]] = []
        for item in headers_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq or not _HCHARS.fullmatch(name) or not _HCHARS.fullmatch(value):
                raise ParseError(f"malformed URI header {item!r} in {text!r}")
            hs.append((name, value))
        headers = tuple(hs)
    return SipUri(host, user, password, port, params, headers, scheme)


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI; raise ``ParseError`` (400) when it is malformed."""
    scheme, colon, rest = text.partition(":")
    if not colon or not ALPHA_SCHEME.fullmatch(scheme):
        raise ParseError(f"not an absolute URI: {text!r}")
    lscheme = scheme.lower()
    if lscheme in ("sip", "sips"):
        return _parse_sip(lscheme, rest, text)
    if lscheme == "tel":
        number, semi, params_text = rest.partition(";")
        if not number or not all(_TEL.fullmatch(c) for c in re.findall(r"%..|.", number)):
            raise ParseError(f"malformed tel URI {text!r}")
        return TelUri(number, _split_params(params_text, "tel") if semi else ())
    if not rest or any(c in rest for c in ' \t\r\n<>"'):
        raise ParseError(f"malformed URI {text!r}")
    return AbsoluteUri(scheme, rest)


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
