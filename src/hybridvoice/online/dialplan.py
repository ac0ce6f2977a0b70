"""The online dial plan: normalising what users dial into E.164 numbers.

* :func:`normalise` applies the tenant's normalisation rules (Skype for Business online dial
  plan: a regex pattern and a translation with ``$1`` / ``\\1`` group references), the first
  rule by priority whose pattern matches the whole dialled string; a string already in
  ``+E.164`` form passes unchanged.
* :func:`e164_of` finds the global number in a ``tel:`` URI (RFC 3966 §5.1.4, visual
  separators removed per §5.1.1), a SIP URI whose user part is a global number (RFC 3261
  §19.1.6, ``;user=phone`` or not) or plain text.
* :func:`is_international` compares an E.164 number's country code (ITU-T E.164) with the
  site's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote

from hybridvoice.sip.errors import ParseError
from hybridvoice.sip.uri import SipUri, TelUri, parse_uri

from .models import DialPlanRule

__all__ = ["e164_of", "is_international", "normalise"]

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_SEPARATORS: Final = str.maketrans("", "", "-.() \t")


def _clean(text: str) -> str:
    return text.strip().translate(_SEPARATORS)


def normalise(dialled: str, rules: Sequence[DialPlanRule]) -> str | None:
    """The number `dialled` stands for, or None when no rule matches.

    Visual separators (space, ``-``, ``.``, ``(``, ``)``) are dropped first. A ``+E.164``
    string passes; otherwise the rules are tried by (priority, name) and the first whose
    pattern matches the whole string gives the translation (which may be a short code such
    as an emergency number: it is returned as the rule writes it).
    """
    text = _clean(dialled)
    if _E164.fullmatch(text):
        return text
    for rule in sorted(rules, key=lambda r: (r.priority, r.name)):
        result = rule.apply(text)
        if result is not None:
            return result
    return None


def e164_of(text: str) -> str | None:
    """The ``+E.164`` number in a tel URI, a SIP URI's user part, or text; None otherwise."""
    candidate = text.strip()
    if candidate.startswith("<") and candidate.endswith(">"):
        candidate = candidate[1:-1]
    if ":" in candidate:
        try:
            uri = parse_uri(candidate)
        except ParseError:
            return None
        if isinstance(uri, TelUri):
            candidate = uri.number
        elif isinstance(uri, SipUri) and uri.user is not None:
            candidate = unquote(uri.user.partition(";")[0])  # drop ;isub= / ;ext= (§19.1.6)
        else:
            return None
    number = _clean(candidate)
    return number if _E164.fullmatch(number) else None


def is_international(e164: str, home_country_code: str) -> bool:
    """True when `e164` is outside the country with calling code `home_country_code`."""
    return not e164.startswith("+" + home_country_code.lstrip("+"))
