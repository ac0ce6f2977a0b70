"""Number translation rules and + E.164 on the cloud side (sans-IO).

Each gateway has four ordered rule lists (inbound/outbound x caller/callee), as Teams Direct
Routing gateways do. A rule is a regex and a replacement; the **first** rule whose regex
matches (``re.search``) is applied (``re.sub`` with ``count=1``, so an anchored pattern
rewrites the whole number) and the rest are skipped, as in Direct Routing. A number no rule
matches passes unchanged. Replacements take ``$1``/``${name}`` (Direct Routing style) or
``\\1``/``\\g<name>``.

Toward the cloud side the Request-URI carries the number in + E.164 (ITU-T E.164: a country
code and at most 15 digits): ``sip:+31201234567@domain;user=phone`` (RFC 3261 §19.1.6, the
user part a telephone-subscriber of RFC 3966 §5.1 without visual separators).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hybridvoice.cms.settings import Gateway, TranslationRule
from hybridvoice.sip.uri import SipUri, TelUri, Uri

__all__ = [
    "CompiledRule",
    "NumberError",
    "NumberTranslator",
    "apply_rules",
    "cloud_request_uri",
    "compile_rules",
    "number_of",
    "strip_visual",
    "to_e164",
]

_E164: Final = re.compile(r"\+[1-9][0-9]{0,14}")
#: RFC 3966 §5.1.1 visual separators, and the spaces people paste in.
_VISUAL: Final = str.maketrans("", "", "-.() \t")


class NumberError(ValueError):
    """A number cannot be put in + E.164 form."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A translation rule ready to apply."""

    pattern: re.Pattern[str]
    template: str

    def apply(self, number: str) -> str | None:
        """The translated number, or None when the rule does not match."""
        if self.pattern.search(number) is None:
            return None
        return self.pattern.sub(self.template, number, count=1)


def compile_rules(rules: Iterable[TranslationRule]) -> tuple[CompiledRule, ...]:
    """Compile validated settings rules (their replacement in Python syntax)."""
    return tuple(CompiledRule(re.compile(r.pattern), r.template) for r in rules)


def apply_rules(number: str, rules: Iterable[CompiledRule]) -> str:
    """``number`` rewritten by the first rule that matches; unchanged when none does."""
    for rule in rules:
        result = rule.apply(number)
        if result is not None:
            return result
    return number


class NumberTranslator:
    """One gateway's four rule lists.

    ``inbound_*`` apply to calls from the gateway (before the cloud side sees the numbers),
    ``outbound_*`` to calls to the gateway (after routing, which matches the untranslated
    destination).
    """

    __slots__ = ("_inbound_callee", "_inbound_caller", "_outbound_callee", "_outbound_caller")

    def __init__(
        self,
        *,
        inbound_caller: Iterable[TranslationRule] = (),
        inbound_callee: Iterable[TranslationRule] = (),
        outbound_caller: Iterable[TranslationRule] = (),
        outbound_callee: Iterable[TranslationRule] = (),
    ) -> None:
        self._inbound_caller = compile_rules(inbound_caller)
        self._inbound_callee = compile_rules(inbound_callee)
        self._outbound_caller = compile_rules(outbound_caller)
        self._outbound_callee = compile_rules(outbound_callee)

    @classmethod
    def for_gateway(cls, gateway: Gateway) -> NumberTranslator:
        return cls(
            inbound_caller=gateway.inbound_caller_rules,
            inbound_callee=gateway.inbound_callee_rules,
            outbound_caller=gateway.outbound_caller_rules,
            outbound_callee=gateway.outbound_callee_rules,
        )

    def inbound_caller(self, number: str) -> str:
        return apply_rules(number, self._inbound_caller)

    def inbound_callee(self, number: str) -> str:
        return apply_rules(number, self._inbound_callee)

    def outbound_caller(self, number: str) -> str:
        return apply_rules(number, self._outbound_caller)

    def outbound_callee(self, number: str) -> str:
        return apply_rules(number, self._outbound_callee)


# --- + E.164 on the cloud side ----------------------------------------------------------------


def strip_visual(number: str) -> str:
    """``+1 (201) 555-0123`` -> ``+12015550123`` (RFC 3966 §5.1.1 visual separators)."""
    return number.translate(_VISUAL)


def to_e164(number: str) -> str:
    """``number`` as + E.164, visual separators removed; :class:`NumberError` when it is not
    global (``+`` and 1-15 digits, no leading 0). National numbers must be made global by the
    gateway's inbound callee rules first (e.g. ``^0(\\d+)$`` -> ``+31$1``)."""
    digits = strip_visual(number)
    if not _E164.fullmatch(digits):
        raise NumberError(f"{number!r} is not + E.164 (add an inbound translation rule)")
    return digits


def number_of(uri: Uri) -> str | None:
    """The telephone number in a Request-URI, From or To: a ``tel:`` number, or the user part
    of a SIP URI without its parameters (``;phone-context=...``, ``;isub=...``); None when
    there is no user part."""
    if isinstance(uri, TelUri):
        return uri.number
    if isinstance(uri, SipUri):
        user = uri.user_unescaped
        return None if user is None else user.partition(";")[0]
    return None


def cloud_request_uri(number: str, host: str, port: int | None = None) -> SipUri:
    """The cloud-side Request-URI for ``number``: ``sip:+E164@host;user=phone``."""
    return SipUri(host=host, user=to_e164(number), port=port, params=(("user", "phone"),))
