"""The lab pieces: an answering machine and a media echo that stand in for a PSTN gateway.

:mod:`.responder` is the application (what to answer, RFC 3261 §13.3 and RFC 3264 §6),
:mod:`.echo` the socket glue (the RTP echo, RFC 4961 symmetric RTP). Built and wired by
:mod:`hybridvoice.app` (``hybridvoice sip serve --answer`` and ``hybridvoice up``'s lab
gateway). The package sits in the roles layer: it uses the UA core of :mod:`hybridvoice.net`.
"""

from .echo import RtpEcho
from .responder import ANSWER_CODECS, MEDIA_PORTS, Responder, answer_sdp

__all__ = ["ANSWER_CODECS", "MEDIA_PORTS", "Responder", "RtpEcho", "answer_sdp"]
