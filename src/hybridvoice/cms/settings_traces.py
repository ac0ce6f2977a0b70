"""``[Traces]`` (hybridvoice): the per-call SIP capture, its live HEPv3 export to a Homer
collector, and the call-quality (MOS) threshold.

Capture is on by default with a modest bound: ``MaxCalls`` calls, ``MaxCallKilobytes`` of SIP
per call and ``MaxMegabytes`` in total, the oldest calls evicted first. ``HepCollector``
(``host:port``, UDP; empty: off, the default) sends every captured message as it happens, with
``HepCaptureId`` and, when set, ``HepPassword`` as the HEP authentication key. A call whose
estimated MOS (ITU-T G.107) is below ``MosThreshold`` is flagged poor in its call record.
A bad value names its key and the reason (``Traces.HepCollector: must be host:port with a
port 1-65535, got 'homer'``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from .settings_values import _Section

__all__ = ["Traces"]


def _collector(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port 1-65535, got {value!r}")
    return value


class Traces(_Section):
    """``[Traces]``: see the module docstring."""

    capture: bool = True
    max_calls: int = Field(default=1000, ge=1, le=1_000_000)
    max_call_kilobytes: int = Field(default=256, ge=1, le=65536)
    max_megabytes: int = Field(default=32, ge=1, le=65536)
    hep_collector: Annotated[str, AfterValidator(_collector)] = ""
    hep_capture_id: int = Field(default=2001, ge=0, le=0xFFFFFFFF)
    hep_password: str | None = None
    mos_threshold: float = Field(default=3.6, ge=1.0, le=4.5)
