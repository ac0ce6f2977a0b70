"""Media settings shared by sections: ``MediaEncryption`` (SDES-SRTP, RFC 4568 / RFC 3711).

``[GatewayN] MediaEncryption`` and ``[MediationServer] ClientMediaEncryption`` take
``RTP`` (plain RTP offered), ``SRTP`` (RTP/SAVP with an ``a=crypto`` key offered, and
required from the peer) or ``Optional`` (RTP/AVP with an ``a=crypto`` key offered: SRTP
when the peer answers with its key, RTP otherwise). Case does not matter; anything else is
refused naming the key and the allowed values. See docs/mediation.md, "SRTP".
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BeforeValidator

__all__ = ["MEDIA_ENCRYPTION_VALUES", "MediaEncryption"]

MEDIA_ENCRYPTION_VALUES: Final = ("RTP", "SRTP", "Optional")


def _encryption(value: object) -> object:
    if not isinstance(value, str):
        return value
    for allowed in MEDIA_ENCRYPTION_VALUES:
        if value.strip().lower() == allowed.lower():
            return allowed
    raise ValueError(f"must be RTP, SRTP or Optional, got {value!r}")


MediaEncryption = Annotated[Literal["RTP", "SRTP", "Optional"], BeforeValidator(_encryption)]
