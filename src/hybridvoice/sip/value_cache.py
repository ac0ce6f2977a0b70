"""One bounded cache of parsed header values, handed to the parser by whoever builds it.

Typed header values (RFC 3261 §20: Via, name-addr/addr-spec of From, To, Contact, Route...,
CSeq, and URIs of §19.1) are immutable, and parsing them is a pure function of their text.
The same text recurs across the messages of a call (From, To, Via, the Request-URI) and
across calls (Contact, CSeq): parsing it once saves about a third of the parser's time on
a call's traffic (``benchmarks/parser.py``). No module keeps such a memo: a transport (or a
stream parser) owns one :class:`ValueCache` and passes it to
:func:`~hybridvoice.sip.parser.parse_message`; parsed messages carry it to their lazy views.
Failures are never stored. Bounded: values are attacker-chosen, so a table that reaches
``max_entries`` is cleared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .headers import Address, CSeq, Via
    from .uri import Uri

__all__ = ["DEFAULT_MAX_ENTRIES", "ValueCache"]

#: entries per kind of value in a transport's cache
DEFAULT_MAX_ENTRIES: Final = 8192


class ValueCache:
    """Parsed values by their exact text, one table per kind, each at most ``max_entries``."""

    __slots__ = ("address", "cseq", "max_entries", "uri", "via")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("a value cache holds at least one entry per kind")
        self.max_entries = max_entries
        self.via: dict[str, Via] = {}
        self.address: dict[str, Address] = {}
        self.cseq: dict[str, CSeq] = {}
        self.uri: dict[str, Uri] = {}

    def __len__(self) -> int:
        return len(self.via) + len(self.address) + len(self.cseq) + len(self.uri)

    def clear(self) -> None:
        for table in (self.via, self.address, self.cseq, self.uri):
            table.clear()
