"""Errors raised by the media core: RTP/RTCP parse failures (RFC 3550 §5.1, §6.4), ports."""

from __future__ import annotations

__all__ = ["MediaError", "MediaParseError", "PortsExhaustedError"]


class MediaError(Exception):
    """Base class of every error raised by ``hybridvoice.media``."""


class MediaParseError(MediaError, ValueError):
    """Received bytes are not a valid RTP, RTCP or telephone-event packet."""


class PortsExhaustedError(MediaError):
    """Every port block of the media port range is in use (no room for another relayed call)."""
