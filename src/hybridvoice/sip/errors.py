"""Errors raised by the SIP core.

Like h11, errors carry a hint: the SIP status a server would answer with when the
error comes from a request it received (RFC 3261 §8.2, §21.4). A ``ParseError`` is a
problem in bytes we received; a ``LocalProtocolError`` is a misuse by our own code.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ParseError", "SipError"]


class SipError(Exception):
    """Base class of every error raised by ``hybridvoice.sip``."""


class ParseError(SipError, ValueError):
    """Received bytes are not a valid SIP message (RFC 3261 §25).

    ``status_hint`` is the response a UAS or proxy should send when the message is a
    request whose Via and start line could be read (400, 505, 416, 413, 513...). For
    responses the hint is informative only: a malformed response is dropped (§18.1.2).
    """

    #: The class of defect, from a small fixed set (a metric label for dropped messages):
    #: ``malformed``, ``bare_cr_lf``, ``bad_number``, ``bad_host``, ``bad_start_line``,
    #: ``bad_version``, ``bad_content_length``, ``oversized``, ``missing_header``.
    kind: str

    def __init__(self, message: str, status_hint: int = 400, *, kind: str = "malformed") -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.kind = kind

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else "Bad Request"


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol does not allow."""
